//! The issuer's signing keys: ES256 (P-256) or EdDSA (Ed25519) from PKCS#8 PEM files; each
//! published as a public JWK (`kid`, `alg`, `use: sig`, never private material), the `kid`
//! being the RFC 7638 thumbprint unless the config names one. Access tokens are signed here
//! with aws-lc-rs and verified by the gateway's ordinary provider code path.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One signing key.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pair: Pair,
    /// The public JWK.
    pub jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The RFC 7638 thumbprint of a public JWK's required members.
fn thumbprint(members: &str) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, members.as_bytes()).as_ref())
}

impl SigningKey {
    /// The key in `pem` (PKCS#8, or SEC1 for P-256), under `kid` or its thumbprint.
    pub fn from_pem(pem: &[u8], kid: Option<&str>) -> Result<SigningKey, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("not a PEM private key: {e}"))?;
        let bytes = der.secret_der();
        if let Ok(ec) = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, bytes)
        {
            let point = ec.public_key().as_ref();
            let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
            let kid = kid.map_or_else(
                || {
                    thumbprint(&format!(
                        r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
                    ))
                },
                str::to_string,
            );
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
            return Ok(SigningKey {
                kid,
                alg: Algorithm::ES256,
                pair: Pair::Ec(ec),
                jwk,
            });
        }
        if let Ok(ed) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes) {
            let x = b64(ed.public_key().as_ref());
            let kid = kid.map_or_else(
                || thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#)),
                str::to_string,
            );
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
            return Ok(SigningKey {
                kid,
                alg: Algorithm::EdDSA,
                pair: Pair::Ed(ed),
                jwk,
            });
        }
        Err("not a P-256 (ES256) or Ed25519 (EdDSA) private key".into())
    }

    /// `header.claims.signature`, compact JWS.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let alg = match self.alg {
            Algorithm::EdDSA => "EdDSA",
            _ => "ES256",
        };
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match &self.pair {
            Pair::Ec(ec) => ec
                .sign(&SystemRandom::new(), input.as_bytes())
                .map_err(|_| "signing failed".to_string())?
                .as_ref()
                .to_vec(),
            Pair::Ed(ed) => ed.sign(input.as_bytes()).as_ref().to_vec(),
        };
        Ok(format!("{input}.{}", b64(&signature)))
    }
}

/// A new P-256 key as PKCS#8 PEM (for a single node's first start).
pub fn generate_es256_pem() -> Result<String, String> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| "key generation failed".to_string())?;
    let body = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    Ok(format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    ))
}

/// Which key signs at `now` (Unix ms), given when each was first seen by any replica: the
/// newest one published for at least `publish_ahead`; before any is, the oldest (a first
/// start, with nobody holding an older key set). `None` only for an empty list.
pub fn signer(first_seen: &[i64], now: i64, publish_ahead_ms: i64) -> Option<usize> {
    let ready = first_seen
        .iter()
        .enumerate()
        .filter(|(_, seen)| **seen + publish_ahead_ms <= now)
        .max_by_key(|(i, seen)| (**seen, std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    ready.or_else(|| {
        first_seen
            .iter()
            .enumerate()
            .min_by_key(|(i, seen)| (**seen, *i))
            .map(|(i, _)| i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_key_published_long_enough_signs() {
        let hour = 3_600_000;
        // (first seen, now, expected signer)
        let rows: Vec<(Vec<i64>, i64, Option<usize>)> = vec![
            (vec![], 0, None),
            (vec![0], 0, Some(0)),
            (vec![0, 10 * hour], 10 * hour, Some(0)),
            (vec![0, 10 * hour], 11 * hour - 1, Some(0)),
            (vec![0, 10 * hour], 11 * hour, Some(1)),
            (vec![10 * hour, 0], 11 * hour, Some(0)),
            (vec![5, 9], 7, Some(0)),
        ];
        for (seen, now, expected) in rows {
            assert_eq!(signer(&seen, now, hour), expected, "{seen:?} at {now}");
        }
    }

    #[test]
    fn generated_keys_sign_and_publish_public_parts_only() {
        let pem = generate_es256_pem().unwrap();
        let key = SigningKey::from_pem(pem.as_bytes(), None).unwrap();
        assert_eq!(key.alg, Algorithm::ES256);
        assert_eq!(key.jwk["kid"], key.kid.as_str());
        assert!(key.jwk.get("d").is_none());
        assert_eq!(key.jwk["use"], "sig");
        let token = key.sign(&json!({"sub": "a"})).unwrap();
        assert_eq!(token.split('.').count(), 3);
        let named = SigningKey::from_pem(pem.as_bytes(), Some("k1")).unwrap();
        assert_eq!(named.jwk["kid"], "k1");
        assert!(SigningKey::from_pem(b"nope", None).is_err());
    }
}
