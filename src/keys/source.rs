//! Keys from local files: PEM public keys (parsed with `rustls-pki-types`, checked with
//! aws-lc-rs) and HMAC secrets.

use std::path::Path;

use aws_lc_rs::signature::{self, ParsedPublicKey};
use jsonwebtoken::Algorithm;
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;

use super::{KeyKind, VerifyKey};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Smallest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the hash size of HS256).
pub const MIN_HMAC_BYTES: usize = 32;

/// Reads a `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) file and finds its kind.
pub fn load_pem_public_key(
    path: &Path,
    kid: Option<String>,
    alg: Option<Algorithm>,
) -> Result<VerifyKey, String> {
    let spki = SubjectPublicKeyInfoDer::from_pem_file(path).map_err(|e| {
        format!(
            "cannot read a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) from {}: {e}",
            path.display()
        )
    })?;
    let der = spki.as_ref();
    let kind = classify_spki(der).ok_or_else(|| {
        format!(
            "{}: not an RSA ({MIN_RSA_BITS} bits or more), EC P-256, EC P-384 or Ed25519 public key",
            path.display()
        )
    })?;
    VerifyKey::public(kind, der, kid, alg).map_err(|e| format!("{}: {e}", path.display()))
}

/// The kind of a DER SubjectPublicKeyInfo, if it is a key we verify with.
fn classify_spki(der: &[u8]) -> Option<KeyKind> {
    if ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der).is_ok() {
        let bits = aws_lc_rs::rsa::PublicEncryptingKey::from_der(der)
            .ok()?
            .key_size_bits();
        return (bits >= MIN_RSA_BITS).then_some(KeyKind::Rsa);
    }
    [
        (
            KeyKind::EcP256,
            &signature::ECDSA_P256_SHA256_FIXED as &dyn signature::VerificationAlgorithm,
        ),
        (KeyKind::EcP384, &signature::ECDSA_P384_SHA384_FIXED),
        (KeyKind::Ed25519, &signature::ED25519),
    ]
    .into_iter()
    .find(|(_, alg)| ParsedPublicKey::new(*alg, der).is_ok())
    .map(|(kind, _)| kind)
}

/// Builds an HMAC key from secret bytes, refusing short secrets.
pub fn hmac_key(secret: &[u8], kid: Option<String>) -> Result<VerifyKey, String> {
    if secret.len() < MIN_HMAC_BYTES {
        return Err(format!(
            "the HMAC secret is {} bytes; at least {MIN_HMAC_BYTES} are required",
            secret.len()
        ));
    }
    Ok(VerifyKey::secret(secret, kid, None))
}

/// Signs probes with jsonwebtoken and checks them through `VerifyKey::verify`, the path every
/// request takes (HMAC via jsonwebtoken, public keys via aws-lc-rs), so that a build whose crypto
/// does not work fails at start-up rather than at the first request.
pub fn crypto_self_test() -> Result<(), &'static str> {
    use jsonwebtoken::{EncodingKey, crypto};
    let message = b"portcullis.self-test";
    let check = |key: &VerifyKey, alg: Algorithm, sig: &str| {
        if key.verify(alg, message, sig) && !key.verify(alg, b"forged", sig) {
            Ok(())
        } else {
            Err("verification gives wrong answers")
        }
    };
    let secret = [7u8; 32];
    let sig = crypto::sign(
        message,
        &EncodingKey::from_secret(&secret),
        Algorithm::HS256,
    )
    .map_err(|_| "HS256 signing failed")?;
    check(
        &VerifyKey::secret(&secret, None, None),
        Algorithm::HS256,
        &sig,
    )?;

    let rng = aws_lc_rs::rand::SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng)
        .map_err(|_| "EC key generation failed")?;
    let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref())
        .map_err(|_| "EC key generation failed")?;
    let public = signature::KeyPair::public_key(&pair).as_ref().to_vec();
    let sig = crypto::sign(
        message,
        &EncodingKey::from_ec_der(pkcs8.as_ref()),
        Algorithm::ES256,
    )
    .map_err(|_| "ES256 signing failed")?;
    let key = VerifyKey::public(KeyKind::EcP256, &public, None, None)
        .map_err(|_| "EC key parsing failed")?;
    check(&key, Algorithm::ES256, &sig)?;
    // A signature that is not base64url is a no, never a panic.
    if key.verify(Algorithm::ES256, message, "!!") {
        return Err("a garbage signature was accepted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_test_passes() {
        crypto_self_test().unwrap();
    }

    #[test]
    fn short_hmac_secret_refused() {
        assert!(hmac_key(&[1; 31], None).is_err());
        assert!(hmac_key(&[1; 32], None).is_ok());
    }
}
