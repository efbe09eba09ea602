//! JWKS documents → verification keys. A key that cannot or may not be used is skipped with a
//! warning naming its kid; the rest of the set stays usable.

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::source::{MIN_HMAC_BYTES, MIN_RSA_BITS};
use super::{KeyKind, VerifyKey};

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

/// The usable keys of a JWKS and a warning for each key left out.
#[derive(Debug, Default)]
pub struct ParsedJwks {
    pub keys: Vec<VerifyKey>,
    pub skipped: Vec<String>,
}

/// Parses a JWKS document. `allowed` is the provider's algorithm allow-list; `symmetric` lets
/// `oct` (HMAC) keys in, which only a local file may carry.
pub fn parse(
    document: &[u8],
    allowed: &[Algorithm],
    symmetric: bool,
) -> Result<ParsedJwks, String> {
    let raw: RawJwks = serde_json::from_slice(document)
        .map_err(|e| format!("not a JWKS document ({{\"keys\": [...]}}): {e}"))?;
    let mut parsed = ParsedJwks::default();
    for (index, value) in raw.keys.into_iter().enumerate() {
        let jwk: RawJwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(e) => {
                parsed.skipped.push(format!("key #{index}: not a JWK: {e}"));
                continue;
            }
        };
        let name = jwk.kid.clone().map_or_else(
            || format!("key #{index} (no kid)"),
            |k| format!("kid {k:?}"),
        );
        match key_from_jwk(jwk, allowed, symmetric) {
            Ok(key) => parsed.keys.push(key),
            Err(why) => parsed.skipped.push(format!("{name}: {why}")),
        }
    }
    Ok(parsed)
}

fn key_from_jwk(jwk: RawJwk, allowed: &[Algorithm], symmetric: bool) -> Result<VerifyKey, String> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!(
            "use {:?} is not \"sig\"",
            jwk.use_.unwrap_or_default()
        ));
    }
    if let Some(ops) = &jwk.key_ops
        && !ops.iter().any(|o| o == "verify")
    {
        return Err("key_ops does not include \"verify\"".into());
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(text) => {
            let alg: Algorithm = text
                .parse()
                .map_err(|_| format!("alg {text:?} is not supported"))?;
            if !allowed.contains(&alg) {
                return Err(format!("alg {text} is not in the provider's algorithms"));
            }
            Some(alg)
        }
    };
    let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
        let text = v.as_deref().ok_or_else(|| format!("missing {name}"))?;
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| format!("{name} is not base64url"))
    };
    let (kind, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let n = field(&jwk.n, "n")?;
            let e = field(&jwk.e, "e")?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA modulus of about {bits} bits is below {MIN_RSA_BITS}"
                ));
            }
            if e.is_empty() {
                return Err("empty RSA exponent".into());
            }
            let spki = aws_lc_rs::rsa::PublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .as_der()
            .map_err(|_| "not a valid RSA public key".to_string())?;
            (KeyKind::Rsa, spki.as_ref().to_vec())
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (kind, size) = match crv {
                "P-256" => (KeyKind::EcP256, 32),
                _ => (KeyKind::EcP384, 48),
            };
            let x = field(&jwk.x, "x")?;
            let y = field(&jwk.y, "y")?;
            if x.len() != size || y.len() != size {
                return Err(format!("x and y must be {size} bytes for {crv}"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, point)
        }
        ("OKP", Some("Ed25519")) => {
            let x = field(&jwk.x, "x")?;
            (KeyKind::Ed25519, x)
        }
        ("oct", _) if symmetric => {
            let k = field(&jwk.k, "k")?;
            if k.len() < MIN_HMAC_BYTES {
                return Err(format!("HMAC key shorter than {MIN_HMAC_BYTES} bytes"));
            }
            (KeyKind::Hmac, k)
        }
        ("oct", _) => return Err("symmetric (oct) keys are not accepted from this source".into()),
        (kty, crv) => {
            return Err(match crv {
                Some(crv) => format!("kty {kty} with crv {crv} is not supported"),
                None => format!("kty {kty:?} is not supported"),
            });
        }
    };
    if !allowed.iter().any(|a| kind.fits(*a)) {
        return Err(format!(
            "none of the provider's algorithms uses a {} key",
            kind.label()
        ));
    }
    if kind == KeyKind::Hmac {
        if alg.is_some_and(|a| !kind.fits(a)) {
            return Err("an oct key's alg must be HS256, HS384 or HS512".into());
        }
        return Ok(VerifyKey::secret(&key, jwk.kid, alg));
    }
    // Parses the key for every algorithm it may verify: a point off the curve, or an `alg` of
    // another key kind, is refused there.
    VerifyKey::public(kind, &key, jwk.kid, alg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Algorithm::*;

    const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn jwks(keys: &str) -> Vec<u8> {
        format!("{{\"keys\": [{keys}]}}").into_bytes()
    }

    #[test]
    fn skips_what_it_cannot_use() {
        let ec =
            format!(r#"{{"kty":"EC","crv":"P-256","kid":"ec","x":"{P256_X}","y":"{P256_Y}"}}"#);
        let ec_as_384 = format!(
            r#"{{"kty":"EC","crv":"P-384","kid":"bad-crv","x":"{P256_X}","y":"{P256_Y}"}}"#
        );
        let enc = format!(
            r#"{{"kty":"EC","crv":"P-256","kid":"enc","use":"enc","x":"{P256_X}","y":"{P256_Y}"}}"#
        );
        let wrong_alg = format!(
            r#"{{"kty":"EC","crv":"P-256","kid":"rs","alg":"RS256","x":"{P256_X}","y":"{P256_Y}"}}"#
        );
        let doc = jwks(
            &[
                ec.as_str(),
                &ec_as_384,
                &enc,
                &wrong_alg,
                r#"{"kty":"EC","crv":"P-521","kid":"p521","x":"AA","y":"AA"}"#,
                r#"{"kty":"RSA","kid":"small","n":"AQAB","e":"AQAB"}"#,
                r#"{"kty":"oct","kid":"hmac","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"}"#,
                r#"{"kty":"XYZ","kid":"alien"}"#,
                r#""not an object""#,
            ]
            .join(","),
        );
        let parsed = parse(&doc, &[ES256, RS256], false).unwrap();
        let kids: Vec<_> = parsed.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["ec"]);
        assert_eq!(parsed.skipped.len(), 8, "{:?}", parsed.skipped);
        for kid in ["bad-crv", "enc", "rs", "p521", "small", "hmac", "alien"] {
            assert!(
                parsed.skipped.iter().any(|s| s.contains(kid)),
                "{kid} not named in {:?}",
                parsed.skipped
            );
        }
    }

    #[test]
    fn key_alg_is_kept_and_checked_against_allow_list() {
        let doc = jwks(&format!(
            r#"{{"kty":"EC","crv":"P-256","kid":"ec","alg":"ES256","x":"{P256_X}","y":"{P256_Y}"}}"#
        ));
        let parsed = parse(&doc, &[ES256], false).unwrap();
        assert_eq!(parsed.keys[0].alg, Some(ES256));
        let parsed = parse(&doc, &[RS256], false).unwrap();
        assert!(parsed.keys.is_empty());
    }

    #[test]
    fn rejects_non_jwks() {
        assert!(parse(b"[]", &[RS256], false).is_err());
        assert!(parse(b"{\"keys\": 5}", &[RS256], false).is_err());
    }
}
