//! Verification keys, built once at load: each knows its family, curve and allowed `alg`, so a
//! token can only be checked with a key of the kind its `alg` names (no algorithm confusion).

pub mod jwks;
pub mod remote;
pub mod source;
pub mod store;

use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};

/// The kind of a verification key, with what matters for matching it to an `alg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

impl KeyKind {
    /// Whether a key of this kind may verify a token signed with `alg`.
    pub fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::EcP256 => alg == ES256,
            KeyKind::EcP384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
            KeyKind::Hmac => matches!(alg, HS256 | HS384 | HS512),
        }
    }

    /// A short name for logs and `check`.
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::EcP256 => "EC P-256",
            KeyKind::EcP384 => "EC P-384",
            KeyKind::Ed25519 => "Ed25519",
            KeyKind::Hmac => "HMAC",
        }
    }
}

/// One key a provider verifies with.
#[derive(Clone)]
pub struct VerifyKey {
    pub kid: Option<String>,
    pub kind: KeyKind,
    /// The only `alg` this key may verify, when its JWK or the config names one.
    pub alg: Option<Algorithm>,
    material: Material,
}

/// Key material, prepared once at load for every algorithm the key may verify.
#[derive(Clone)]
enum Material {
    /// An HMAC secret, checked by jsonwebtoken.
    Secret(DecodingKey),
    /// A public key parsed once per algorithm by aws-lc-rs (the library under jsonwebtoken's
    /// `aws_lc_rs` backend). jsonwebtoken's `crypto::verify` rebuilds the key on every call,
    /// Montgomery context included: 8 % of a request's instructions (see the README).
    Public(Arc<[(Algorithm, ParsedPublicKey)]>),
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Every algorithm a key may be asked to verify.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The aws-lc verification algorithm of a JWS `alg` (asymmetric ones only).
fn verification_algorithm(alg: Algorithm) -> Option<&'static dyn signature::VerificationAlgorithm> {
    use signature::*;
    Some(match alg {
        Algorithm::RS256 => &RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &ED25519,
        _ => return None,
    })
}

/// Largest signature decoded (RSA-8192).
const MAX_SIGNATURE_BYTES: usize = 1024;

impl VerifyKey {
    /// An HMAC key; with `alg`, it verifies only that algorithm (a JWK's `alg`).
    pub fn secret(secret: &[u8], kid: Option<String>, alg: Option<Algorithm>) -> VerifyKey {
        VerifyKey {
            kid,
            kind: KeyKind::Hmac,
            alg,
            material: Material::Secret(DecodingKey::from_secret(secret)),
        }
    }

    /// A public key of `kind`: SubjectPublicKeyInfo DER, or for EC the uncompressed point and
    /// for Ed25519 the raw 32 bytes. Parsed now for every algorithm it may verify; an error
    /// when it is not a valid key of that kind.
    pub fn public(
        kind: KeyKind,
        public: &[u8],
        kid: Option<String>,
        alg: Option<Algorithm>,
    ) -> Result<VerifyKey, String> {
        let mut prepared = Vec::new();
        for candidate in ASYMMETRIC {
            if !kind.fits(candidate) || alg.is_some_and(|a| a != candidate) {
                continue;
            }
            let Some(algorithm) = verification_algorithm(candidate) else {
                continue;
            };
            let parsed = ParsedPublicKey::new(algorithm, public)
                .map_err(|e| format!("not a valid {} key: {e}", kind.label()))?;
            prepared.push((candidate, parsed));
        }
        if prepared.is_empty() {
            let alg = alg.map_or_else(|| "any allowed algorithm".to_string(), |a| format!("{a:?}"));
            return Err(format!("a {} key cannot verify {alg}", kind.label()));
        }
        Ok(VerifyKey {
            kid,
            kind,
            alg,
            material: Material::Public(prepared.into()),
        })
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }

    /// Checks a base64url `signature` over `message` as `alg`; false for any failure.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &str) -> bool {
        match &self.material {
            Material::Secret(key) => matches!(
                jsonwebtoken::crypto::verify(signature, message, key, alg),
                Ok(true)
            ),
            Material::Public(prepared) => {
                let Some((_, key)) = prepared.iter().find(|(a, _)| *a == alg) else {
                    return false;
                };
                let mut buf = [0u8; MAX_SIGNATURE_BYTES];
                let Ok(len) = URL_SAFE_NO_PAD.decode_slice(signature, &mut buf) else {
                    return false;
                };
                key.verify_sig(message, &buf[..len]).is_ok()
            }
        }
    }
}

/// Why a token found no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMiss {
    /// No key has the token's `kid` (or, without a kid, none fits the alg).
    Unknown,
    /// The key named by `kid` is of another kind than the token's `alg`.
    Mismatch,
}

/// The keys of one provider.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
}

/// The most keys tried for a token without `kid`.
const MAX_KEYS_WITHOUT_KID: usize = 4;

impl KeySet {
    pub fn new(keys: Vec<VerifyKey>) -> Self {
        KeySet { keys }
    }

    pub fn keys(&self) -> &[VerifyKey] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key has this `kid`.
    pub fn knows_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys to try for a token: the one with its `kid`, which must fit `alg`. Without a
    /// kid: the only key of a one-key set, else only keys that have no kid themselves (a few at
    /// most) — never every key of the set, which would let one token try each in turn.
    pub fn candidates(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<&VerifyKey>, KeyMiss> {
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                named.peek().ok_or(KeyMiss::Unknown)?;
                let fitting: Vec<_> = named.filter(|k| k.fits(alg)).collect();
                if fitting.is_empty() {
                    Err(KeyMiss::Mismatch)
                } else {
                    Ok(fitting)
                }
            }
            None => {
                let single = self.keys.len() == 1;
                let fitting: Vec<_> = self
                    .keys
                    .iter()
                    .filter(|k| (single || k.kid.is_none()) && k.fits(alg))
                    .take(MAX_KEYS_WITHOUT_KID)
                    .collect();
                if fitting.is_empty() {
                    Err(KeyMiss::Unknown)
                } else {
                    Ok(fitting)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Algorithm::*;

    #[test]
    fn kind_fits_table() {
        let all = [
            HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
        ];
        let table: &[(KeyKind, &[Algorithm])] = &[
            (KeyKind::Rsa, &[RS256, RS384, RS512, PS256, PS384, PS512]),
            (KeyKind::EcP256, &[ES256]),
            (KeyKind::EcP384, &[ES384]),
            (KeyKind::Ed25519, &[EdDSA]),
            (KeyKind::Hmac, &[HS256, HS384, HS512]),
        ];
        for (kind, fitting) in table {
            for alg in all {
                assert_eq!(kind.fits(alg), fitting.contains(&alg), "{kind:?} {alg:?}");
            }
        }
    }

    fn key(kid: Option<&str>, kind: KeyKind, alg: Option<Algorithm>) -> VerifyKey {
        let material = Material::Secret(DecodingKey::from_secret(b"x"));
        VerifyKey {
            kid: kid.map(str::to_string),
            kind,
            alg,
            material,
        }
    }

    #[test]
    fn candidates_table() {
        let set = KeySet::new(vec![
            key(Some("rsa"), KeyKind::Rsa, Some(RS256)),
            key(Some("ec"), KeyKind::EcP256, None),
            key(None, KeyKind::Rsa, None),
        ]);
        let count = |kid, alg| set.candidates(kid, alg).map(|c| c.len());
        assert_eq!(count(Some("rsa"), RS256), Ok(1));
        assert_eq!(count(Some("rsa"), PS256), Err(KeyMiss::Mismatch));
        assert_eq!(count(Some("rsa"), HS256), Err(KeyMiss::Mismatch));
        assert_eq!(count(Some("ec"), ES256), Ok(1));
        assert_eq!(count(Some("ec"), ES384), Err(KeyMiss::Mismatch));
        assert_eq!(count(Some("nope"), RS256), Err(KeyMiss::Unknown));
        // Without a kid, only the keys without one.
        assert_eq!(count(None, RS256), Ok(1));
        assert_eq!(count(None, PS256), Ok(1));
        assert_eq!(count(None, ES256), Err(KeyMiss::Unknown));
        assert_eq!(count(None, EdDSA), Err(KeyMiss::Unknown));
        // A one-key set: that key, kid or not.
        let one = KeySet::new(vec![key(Some("only"), KeyKind::EcP256, None)]);
        assert_eq!(one.candidates(None, ES256).map(|c| c.len()), Ok(1));
        assert_eq!(
            one.candidates(None, RS256).map(|c| c.len()),
            Err(KeyMiss::Unknown)
        );
    }

    #[test]
    fn hmac_key_alg_is_honoured() {
        let key = VerifyKey::secret(b"0123456789abcdef0123456789abcdef", None, Some(HS256));
        assert!(key.fits(HS256));
        assert!(!key.fits(HS512));
        assert!(VerifyKey::secret(b"k", None, None).fits(HS512));
    }
}
