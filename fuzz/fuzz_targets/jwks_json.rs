//! Arbitrary JSON as a JWKS document, for every algorithm allow-list shape: never a panic;
//! a key is kept only if it can verify one of the allowed algorithms, and an HMAC key only
//! when symmetric keys are allowed.
#![no_main]

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
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

fuzz_target!(init: portcullis_fuzz::seeds::write("jwks_json"), |data: &[u8]| {
    let Some((&choice, document)) = data.split_first() else {
        return;
    };
    let mask = u16::from(choice) | (u16::from(choice & 0x0f) << 8);
    let allowed: Vec<Algorithm> = ALGORITHMS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, a)| *a)
        .collect();
    let symmetric = choice & 0x80 != 0;
    let Ok(parsed) = portcullis::keys::jwks::parse(document, &allowed, symmetric) else {
        return;
    };
    for key in &parsed.keys {
        assert!(
            allowed.iter().any(|a| key.fits(*a)),
            "kept a key that fits no allowed algorithm: {key:?}"
        );
        let hmac = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
        if !symmetric {
            assert!(
                !hmac.iter().any(|a| key.fits(*a)),
                "an HMAC key from a remote set"
            );
        }
        // A signature of garbage never verifies, and never panics.
        for alg in &allowed {
            assert!(!key.verify(*alg, b"a.b", "AAAA"));
        }
    }
});
