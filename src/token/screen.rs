//! Step 6: the cheap screen, before any crypto. This is the only place that reads a token whose
//! signature has not been checked; what it reads stays behind the `Unverified*` types.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::Claims;
use crate::error::TokenError;

/// The JOSE header fields the gateway acts on, unverified.
#[derive(Debug)]
pub struct UnverifiedHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// `typ`, checked against the provider's `types` when it lists some.
    pub typ: Option<Typ>,
}

/// A header `typ`, kept inline (no allocation per token): values longer than `Typ::MAX` are
/// remembered only as "too long", which no provider's list accepts.
#[derive(Debug, Clone, Copy)]
pub struct Typ {
    bytes: [u8; Typ::MAX],
    /// `None` when the value was longer than `MAX`.
    len: Option<u8>,
}

impl Typ {
    pub const MAX: usize = 48;

    fn new(text: &str) -> Typ {
        let mut bytes = [0u8; Typ::MAX];
        let len = match bytes.get_mut(..text.len()) {
            Some(slot) => {
                slot.copy_from_slice(text.as_bytes());
                u8::try_from(text.len()).ok()
            }
            None => None,
        };
        Typ { bytes, len }
    }

    /// The value, if it was short enough to keep.
    pub fn as_str(&self) -> Option<&str> {
        let len = usize::from(self.len?);
        std::str::from_utf8(self.bytes.get(..len)?).ok()
    }
}

/// A token that passed the screen: its parts, its header and its claims, none of them verified.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    pub header: UnverifiedHeader,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    /// The base64url signature.
    pub signature: &'a str,
    /// The payload, parsed but not to be trusted until the signature is verified.
    claims: Claims,
}

impl UnverifiedToken<'_> {
    /// The unverified `iss`, used only to pick the provider whose keys then verify the token.
    pub fn issuer_hint(&self) -> Result<&str, TokenError> {
        match self.claims.get("iss") {
            None => Err(TokenError::MissingIssuer),
            Some(serde_json::Value::String(iss)) => Ok(iss),
            Some(_) => Err(TokenError::BadIssuer),
        }
    }

    /// Hands the claims out; `verify.rs` calls this only after the signature has verified.
    pub(super) fn into_claims_after_verification(self) -> Claims {
        self.claims
    }

    pub(super) fn claims_for_validation(&self) -> &Claims {
        &self.claims
    }
}

/// The header as sent. `crit` and the key parameters count when present with any value,
/// `null` included: a verifier that reads `"crit": null` as absent and one that refuses it
/// must not disagree about the same token.
#[derive(Deserialize)]
struct RawHeader<'h> {
    alg: String,
    kid: Option<String>,
    #[serde(borrow)]
    typ: Option<std::borrow::Cow<'h, str>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
}

/// True for a field that is there, whatever its value (serde calls this only then).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// A token whose form and header passed the screen; its payload is not read yet.
#[derive(Debug)]
pub struct ScreenedHeader<'a> {
    pub header: UnverifiedHeader,
    payload_b64: &'a str,
    signing_input: &'a str,
    signature: &'a str,
}

/// Screens a compact JWS: size, exactly two dots, base64url parts, a JSON header with a known
/// `alg` that is not `none`, no `crit` (no extension is understood), no embedded or remote key,
/// and a JSON object payload.
pub fn screen(token: &str, max_bytes: usize) -> Result<UnverifiedToken<'_>, TokenError> {
    screen_header(token, max_bytes)?.read_claims()
}

/// The first half of [`screen`]: everything but the payload, which costs the most to read.
pub fn screen_header(token: &str, max_bytes: usize) -> Result<ScreenedHeader<'_>, TokenError> {
    if token.len() > max_bytes {
        return Err(TokenError::Oversize);
    }
    let (only_base64url, dots) = scan(token.as_bytes());
    if dots != 2 || !only_base64url {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if header_b64.is_empty() || payload_b64.is_empty() || signature.is_empty() {
        return Err(TokenError::Malformed);
    }
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::BadHeader)?;
    let raw: RawHeader = serde_json::from_slice(&header_json).map_err(|_| TokenError::BadHeader)?;
    if raw.alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone);
    }
    let alg: Algorithm = raw
        .alg
        .parse()
        .map_err(|_| TokenError::UnsupportedAlgorithm)?;
    if raw.crit {
        return Err(TokenError::UnsupportedCrit);
    }
    if raw.jwk || raw.jku || raw.x5u || raw.x5c {
        return Err(TokenError::EmbeddedKey);
    }
    Ok(ScreenedHeader {
        header: UnverifiedHeader {
            alg,
            kid: raw.kid,
            typ: raw.typ.as_deref().map(Typ::new),
        },
        payload_b64,
        signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
        signature,
    })
}

impl<'a> ScreenedHeader<'a> {
    /// The second half of [`screen`]: decodes and parses the payload (a JSON object).
    pub fn read_claims(self) -> Result<UnverifiedToken<'a>, TokenError> {
        let payload = URL_SAFE_NO_PAD
            .decode(self.payload_b64)
            .map_err(|_| TokenError::BadPayload)?;
        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::BadPayload)?;
        Ok(UnverifiedToken {
            header: self.header,
            signing_input: self.signing_input,
            signature: self.signature,
            claims,
        })
    }
}

/// Whether every byte is base64url or `.`, and how many `.` there are. Written for vector
/// code: no early exit, byte-wide counters over 64-byte chunks (a token is about 1 KiB).
fn scan(token: &[u8]) -> (bool, usize) {
    let mut bad = 0u8;
    let mut dots = 0usize;
    for chunk in token.chunks(64) {
        let mut chunk_dots = 0u8;
        for &b in chunk {
            let letter = (b | 0x20).wrapping_sub(b'a') < 26;
            let digit = b.wrapping_sub(b'0') < 10;
            let dot = b == b'.';
            bad |= u8::from(!(letter | digit | dot | (b == b'-') | (b == b'_')));
            chunk_dots += u8::from(dot);
        }
        dots += usize::from(chunk_dots);
    }
    (bad == 0, dots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(payload))
    }

    #[test]
    fn scan_matches_the_plain_definition() {
        let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        for b in 0..=255u8 {
            assert_eq!(scan(&[b]).0, plain(b), "byte {b:#04x}");
        }
        assert_eq!(scan(b"a.b.c"), (true, 2));
        assert_eq!(scan(b"..x.."), (true, 4));
        assert_eq!(scan(b"a.b+c"), (false, 1));
        assert_eq!(scan(b""), (true, 0));
    }

    #[test]
    fn screen_table() {
        let ok_payload = r#"{"iss":"i","exp":1}"#;
        let cases: Vec<(String, Result<Algorithm, TokenError>)> = vec![
            (
                token(r#"{"alg":"RS256","kid":"k"}"#, ok_payload),
                Ok(Algorithm::RS256),
            ),
            (
                token(r#"{"alg":"ES256","typ":"JWT","x5t":"abc"}"#, ok_payload),
                Ok(Algorithm::ES256),
            ),
            (
                token(r#"{"alg":"EdDSA"}"#, ok_payload),
                Ok(Algorithm::EdDSA),
            ),
            (
                token(r#"{"alg":"none"}"#, ok_payload),
                Err(TokenError::AlgNone),
            ),
            (
                token(r#"{"alg":"NoNe"}"#, ok_payload),
                Err(TokenError::AlgNone),
            ),
            (
                token(r#"{"alg":"rs256"}"#, ok_payload),
                Err(TokenError::UnsupportedAlgorithm),
            ),
            (
                token(r#"{"alg":"ES512"}"#, ok_payload),
                Err(TokenError::UnsupportedAlgorithm),
            ),
            (
                token(r#"{"kid":"k"}"#, ok_payload),
                Err(TokenError::BadHeader),
            ),
            (
                token(r#"{"alg":"RS256","alg":"HS256"}"#, ok_payload),
                Err(TokenError::BadHeader),
            ),
            (
                token(r#"{"alg":"RS256","crit":["exp"]}"#, ok_payload),
                Err(TokenError::UnsupportedCrit),
            ),
            (
                token(r#"{"alg":"RS256","crit":[]}"#, ok_payload),
                Err(TokenError::UnsupportedCrit),
            ),
            (
                token(r#"{"alg":"RS256","crit":null}"#, ok_payload),
                Err(TokenError::UnsupportedCrit),
            ),
            (
                token(r#"{"alg":"RS256","jwk":{"kty":"oct"}}"#, ok_payload),
                Err(TokenError::EmbeddedKey),
            ),
            (
                token(r#"{"alg":"RS256","jwk":null}"#, ok_payload),
                Err(TokenError::EmbeddedKey),
            ),
            (
                token(r#"{"alg":"RS256","jku":null}"#, ok_payload),
                Err(TokenError::EmbeddedKey),
            ),
            (
                token(r#"{"alg":"RS256","x5c":null}"#, ok_payload),
                Err(TokenError::EmbeddedKey),
            ),
            (
                token(r#"{"alg":"RS256","jku":"https://evil"}"#, ok_payload),
                Err(TokenError::EmbeddedKey),
            ),
            (
                token(r#"{"alg":"RS256","x5u":"https://evil"}"#, ok_payload),
                Err(TokenError::EmbeddedKey),
            ),
            (
                token(r#"{"alg":"RS256","x5c":["MII"]}"#, ok_payload),
                Err(TokenError::EmbeddedKey),
            ),
            (token(r#"[1]"#, ok_payload), Err(TokenError::BadHeader)),
            (
                token(r#"{"alg":"RS256"}"#, "[1,2]"),
                Err(TokenError::BadPayload),
            ),
            (
                token(r#"{"alg":"RS256"}"#, "not json"),
                Err(TokenError::BadPayload),
            ),
            (
                format!("{}.{}.", b64(r#"{"alg":"RS256"}"#), b64(ok_payload)),
                Err(TokenError::Malformed),
            ),
            ("a.b".into(), Err(TokenError::Malformed)),
            ("a.b.c.d".into(), Err(TokenError::Malformed)),
            ("a..c".into(), Err(TokenError::Malformed)),
            (
                format!("{}=", token(r#"{"alg":"RS256"}"#, ok_payload)),
                Err(TokenError::Malformed),
            ),
            (
                format!(
                    "{}.{}.sig",
                    b64(r#"{"alg":"RS256"}"#).replace('e', "+"),
                    b64(ok_payload)
                ),
                Err(TokenError::Malformed),
            ),
            ("x".repeat(9000), Err(TokenError::Oversize)),
        ];
        for (tok, want) in cases {
            let got = screen(&tok, 8192).map(|t| t.header.alg);
            assert_eq!(got, want, "{tok}");
        }
    }

    #[test]
    fn signing_input_and_issuer() {
        let tok = token(r#"{"alg":"HS256"}"#, r#"{"iss":"https://id"}"#);
        let screened = screen(&tok, 8192).unwrap();
        assert_eq!(screened.signing_input, &tok[..tok.rfind('.').unwrap()]);
        assert_eq!(screened.signature, "c2ln");
        assert_eq!(screened.issuer_hint(), Ok("https://id"));
        let no_iss = token(r#"{"alg":"HS256"}"#, r#"{"sub":"x"}"#);
        assert_eq!(
            screen(&no_iss, 8192).unwrap().issuer_hint(),
            Err(TokenError::MissingIssuer)
        );
        let num_iss = token(r#"{"alg":"HS256"}"#, r#"{"iss":5}"#);
        assert_eq!(
            screen(&num_iss, 8192).unwrap().issuer_hint(),
            Err(TokenError::BadIssuer)
        );
    }
}
