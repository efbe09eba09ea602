//! Published JOSE examples through the gateway's own verify path: accepted exactly when their
//! algorithm is allowed, refused once a byte changes. (Each vector was also checked with an
//! independent library, Python's `cryptography`, before it was written down here.)

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use portcullis::error::TokenError;
use portcullis::keys::jwks;
use portcullis::keys::store::ProviderKeys;
use portcullis::token::verify::{Provider, Providers, verify_once};

/// RFC 7515 Appendix A.3: ES256 over `{"iss":"joe","exp":1300819380,…}` (the header has no
/// `kid`), with the P-256 key of A.3.1.
const RFC7515_A3_JWK: &str = r#"{"keys":[{"kty":"EC","crv":"P-256",
    "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
const RFC7515_A3_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/// RFC 8037 Appendix A.4: EdDSA (Ed25519) over the text "Example of Ed25519 signing", with the
/// public key of A.2.
const RFC8037_JWK: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519",
    "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
const RFC8037_INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
const RFC8037_SIGNATURE: &str =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/// Before the A.3 token's `exp`.
const A3_NOW: f64 = 1_300_819_000.0;

fn providers(document: &str, algorithms: &[Algorithm]) -> Providers {
    let keys = jwks::parse(document.as_bytes(), algorithms, false)
        .unwrap()
        .keys;
    Providers::new(vec![Provider {
        name: "rfc".into(),
        issuer: "joe".into(),
        // The examples carry no `aud`: the `audiences: none` setting.
        audiences: None,
        algorithms: algorithms.to_vec(),
        keys: Arc::new(ProviderKeys::local(keys)),
        leeway: 0,
        require_exp: true,
        types: None,
        clients: None,
    }])
}

/// The token with the byte at `index` of its signature segment changed.
fn flipped(token: &str, index: usize) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = signature.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
    format!("{input}.{}", String::from_utf8(bytes).unwrap())
}

#[test]
fn rfc7515_a3_es256_is_accepted_exactly_when_es256_is_allowed() {
    let allowed = providers(RFC7515_A3_JWK, &[Algorithm::ES256]);
    let verified = verify_once(RFC7515_A3_JWS, &allowed, None, 8192, A3_NOW)
        .unwrap_or_else(|f| panic!("refused: {:?}", f.error));
    assert_eq!(verified.claims["iss"], "joe");
    assert_eq!(verified.claims["http://example.com/is_root"], true);

    // Another algorithm list: refused before any key is tried.
    let other = providers(
        r#"{"keys":[{"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA"}]}"#,
        &[Algorithm::ES384],
    );
    let refused = verify_once(RFC7515_A3_JWS, &other, None, 8192, A3_NOW).unwrap_err();
    assert_eq!(refused.error, TokenError::AlgorithmNotAllowed);

    // Past its exp, the same token is expired; a changed signature never verifies.
    let later = verify_once(RFC7515_A3_JWS, &allowed, None, 8192, 1_300_819_381.0).unwrap_err();
    assert_eq!(later.error, TokenError::Expired);
    let sig_len = RFC7515_A3_JWS.rsplit_once('.').unwrap().1.len();
    for index in [0, sig_len / 2, sig_len - 2] {
        let tampered = flipped(RFC7515_A3_JWS, index);
        let refused = verify_once(&tampered, &allowed, None, 8192, A3_NOW).unwrap_err();
        assert_eq!(refused.error, TokenError::BadSignature, "byte {index}");
    }
}

#[test]
fn rfc8037_a4_ed25519_signature_verifies_with_its_key_only() {
    // The example's payload is text, not claims, so it is checked at the signature step, the
    // one the token path calls.
    let keys = jwks::parse(RFC8037_JWK.as_bytes(), &[Algorithm::EdDSA], false)
        .unwrap()
        .keys;
    let key = &keys[0];
    assert!(key.fits(Algorithm::EdDSA));
    assert!(!key.fits(Algorithm::ES256));
    assert!(key.verify(
        Algorithm::EdDSA,
        RFC8037_INPUT.as_bytes(),
        RFC8037_SIGNATURE
    ));
    let tampered = flipped(&format!("x.{RFC8037_SIGNATURE}"), 5);
    let tampered = tampered.split_once('.').unwrap().1;
    assert!(!key.verify(Algorithm::EdDSA, RFC8037_INPUT.as_bytes(), tampered));
    assert!(!key.verify(
        Algorithm::EdDSA,
        b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmd",
        RFC8037_SIGNATURE
    ));
}
