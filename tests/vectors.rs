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
    let symmetric = algorithms.iter().any(|a| matches!(a, Algorithm::HS256));
    let keys = jwks::parse(document.as_bytes(), algorithms, symmetric)
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

/// RFC 7520 §3.3: the RSA public key of bilbo.baggins@hobbiton.example.
const RFC7520_RSA_JWK: &str = concat!(
    r#"{"keys":[{"kty":"RSA","kid":"bilbo.baggins@hobbiton.example","use":"sig","e":"AQAB","n":""#,
    "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT",
    "-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqV",
    "wGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-",
    "oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde",
    "3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuC",
    "LqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5g",
    r#"HdrNP5zw"}]}"#
);

/// RFC 7520 §3.1: the P-521 public key (ES512, which Portcullis does not support).
const RFC7520_EC_JWK: &str = concat!(
    r#"{"keys":[{"kty":"EC","kid":"bilbo.baggins@hobbiton.example","use":"sig","crv":"P-521","x":""#,
    "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
    r#"","y":""#,
    "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1",
    r#""}]}"#
);

/// RFC 7520 §3.5: the HMAC key.
const RFC7520_HMAC_JWK: &str = r#"{"keys":[{"kty":"oct","kid":"018c0ae5-4d9b-471b-bfd6-eef314bc7037","use":"sig","alg":"HS256","k":"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}]}"#;

/// RFC 7520 §4: the payload (a Tolkien quotation, not claims) every §4 example signs.
const RFC7520_PAYLOAD: &str = concat!(
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH",
    "lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk",
    "b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm",
    "UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"
);

/// RFC 7520 §4.1 (RS256), §4.2 (PS384), §4.4 (HS256): protected header and signature.
const RFC7520_SIGNED: [(Algorithm, &str, &str, &str); 3] = [
    (
        Algorithm::RS256,
        RFC7520_RSA_JWK,
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
        concat!(
            "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmK",
            "ZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4J",
            "IwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8w",
            "W1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluP",
            "xUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_f",
            "cIe8u9ipH84ogoree7vjbU5y18kDquDg"
        ),
    ),
    (
        Algorithm::PS384,
        RFC7520_RSA_JWK,
        "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
        concat!(
            "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2I",
            "pN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXU",
            "vdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRX",
            "e8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT",
            "0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a",
            "6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw"
        ),
    ),
    (
        Algorithm::HS256,
        RFC7520_HMAC_JWK,
        "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9",
        "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0",
    ),
];

#[test]
fn rfc7520_section4_signatures_verify_exactly_under_their_algorithm() {
    // The payload is text, not claims, so the examples are checked at the signature step: the
    // key as the JWKS parser builds it for an allow-list, then the signature over the input.
    let others = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::HS256,
        Algorithm::HS512,
        Algorithm::ES256,
    ];
    for (alg, jwk, header, signature) in RFC7520_SIGNED {
        let input = format!("{header}.{RFC7520_PAYLOAD}");
        let symmetric = matches!(alg, Algorithm::HS256);
        let keys = jwks::parse(jwk.as_bytes(), &[alg], symmetric).unwrap().keys;
        assert_eq!(keys.len(), 1, "{alg:?}: the key is usable");
        assert!(
            keys[0].verify(alg, input.as_bytes(), signature),
            "{alg:?} verifies"
        );
        let sig_len = signature.len();
        for index in [0, sig_len / 2, sig_len - 2] {
            let tampered = flipped(&format!("x.{signature}"), index);
            let tampered = tampered.split_once('.').unwrap().1;
            assert!(
                !keys[0].verify(alg, input.as_bytes(), tampered),
                "{alg:?} byte {index}"
            );
        }
        // Checked as any other algorithm, by the key of any other allow-list, the signature
        // never verifies. (Which algorithms a token may use at all is the provider's
        // allow-list, checked before any key: the A.3 test above.)
        for other in others.iter().filter(|o| **o != alg) {
            let keys = jwks::parse(jwk.as_bytes(), &[*other], true).unwrap().keys;
            for key in &keys {
                assert!(
                    !key.verify(*other, input.as_bytes(), signature),
                    "{alg:?} as {other:?}"
                );
            }
        }
    }
    // The HMAC key from a remote set (symmetric keys refused there) is skipped.
    let remote = jwks::parse(RFC7520_HMAC_JWK.as_bytes(), &[Algorithm::HS256], false).unwrap();
    assert!(remote.keys.is_empty());
}

#[test]
fn rfc7520_4_3_es512_is_refused_cleanly() {
    // ES512 (P-521) is not supported: its key is skipped with a reason, and its token is
    // refused at the screen, before any key is looked for.
    let parsed = jwks::parse(
        RFC7520_EC_JWK.as_bytes(),
        &[Algorithm::ES256, Algorithm::ES384],
        false,
    )
    .unwrap();
    assert!(parsed.keys.is_empty());
    assert_eq!(parsed.skipped.len(), 1, "{:?}", parsed.skipped);
    let header = "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";
    let signature = concat!(
        "AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvb",
        "u9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kv",
        "AD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2"
    );
    let token = format!("{header}.{RFC7520_PAYLOAD}.{signature}");
    let allowed = providers(RFC7515_A3_JWK, &[Algorithm::ES256, Algorithm::ES384]);
    let refused = verify_once(&token, &allowed, None, 8192, A3_NOW).unwrap_err();
    assert_eq!(refused.error, TokenError::UnsupportedAlgorithm);
}

/// The vendored Wycheproof files (tests/vectors/wycheproof/README.md), their SHA-256 pins and
/// the JWS algorithm each one's vectors are checked as.
const WYCHEPROOF: [(&str, &str, Algorithm); 6] = [
    (
        "ecdsa_secp256r1_sha256_p1363_test.json",
        "c60de693930e386c3a5472d08081623ef8504decc54b38ac01ec6b2a2575c986",
        Algorithm::ES256,
    ),
    (
        "ecdsa_secp384r1_sha384_p1363_test.json",
        "e27344bf6daae75fa19663620883809f91c79fc4b4420eff9eae8036b34476be",
        Algorithm::ES384,
    ),
    (
        "rsa_signature_2048_sha256_test.json",
        "94a917b01ff50fb874cfc05bf29b4af44868d944a6558201cf18380da93fb393",
        Algorithm::RS256,
    ),
    (
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        "7f6efafc160f4816b96cbf1c12188a31051d7e3f001e27505d9edb5f2a0e325c",
        Algorithm::PS256,
    ),
    (
        "rsa_pss_2048_sha384_mgf1_48_test.json",
        "66d464778b0b2f683a1d1a20e94f77e9472b8cc393b45f423fa08a48e677063c",
        Algorithm::PS384,
    ),
    (
        "ed25519_test.json",
        "752d2ea7d7c6cf4736381b6cbacb61f8182b126ab7cd9b058f00c50084975536",
        Algorithm::EdDSA,
    ),
];

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A JWK for a Wycheproof `EcPublicKey` (`wx`, `wy` in hex, possibly with a leading zero).
fn ec_jwk(key: &serde_json::Value) -> serde_json::Value {
    use base64::Engine;
    let (crv, size) = match key["curve"].as_str().unwrap() {
        "secp256r1" => ("P-256", 32),
        "secp384r1" => ("P-384", 48),
        other => panic!("curve {other}"),
    };
    let coordinate = |name: &str| {
        let bytes = hex_decode(key[name].as_str().unwrap());
        let bytes = &bytes[bytes.len().saturating_sub(size)..];
        let mut full = vec![0u8; size - bytes.len()];
        full.extend_from_slice(bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(full)
    };
    serde_json::json!({"kty": "EC", "crv": crv, "x": coordinate("wx"), "y": coordinate("wy")})
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn wycheproof_valid_vectors_verify_and_invalid_ones_never_do() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/wycheproof");
    let mut total = 0;
    for (file, pin, alg) in WYCHEPROOF {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
        assert_eq!(hex(digest.as_ref()), pin, "{file}: not the pinned file");
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let (mut valid, mut invalid, mut acceptable) = (0, 0, 0);
        for group in doc["testGroups"].as_array().unwrap() {
            // The key as a JWKS document would carry it, through the gateway's parser. A few
            // EC groups come without a JWK: it is written from the point, each coordinate at
            // the curve's full size (RFC 7518 §6.2.1.2).
            let jwk = match group.get("publicKeyJwk").or(group.get("keyJwk")) {
                Some(jwk) => jwk.clone(),
                None => ec_jwk(&group["publicKey"]),
            };
            let set = serde_json::json!({ "keys": [jwk] }).to_string();
            let parsed = jwks::parse(set.as_bytes(), &[alg], false).unwrap();
            let key = parsed.keys.first();
            for test in group["tests"].as_array().unwrap() {
                let message = hex_decode(test["msg"].as_str().unwrap());
                let signature = URL_SAFE_NO_PAD.encode(hex_decode(test["sig"].as_str().unwrap()));
                let accepted = key.is_some_and(|k| k.verify(alg, &message, &signature));
                let id = &test["tcId"];
                match test["result"].as_str().unwrap() {
                    "valid" => {
                        assert!(
                            accepted,
                            "{file} #{id} valid but refused: {}",
                            test["comment"]
                        );
                        valid += 1;
                    }
                    "invalid" => {
                        assert!(
                            !accepted,
                            "{file} #{id} invalid but accepted: {}",
                            test["comment"]
                        );
                        invalid += 1;
                    }
                    _ => acceptable += 1,
                }
            }
        }
        eprintln!(
            "{file}: {valid} valid accepted, {invalid} invalid refused, {acceptable} acceptable"
        );
        assert!(valid > 0 && invalid > 0, "{file}: no vectors read");
        total += valid + invalid + acceptable;
    }
    assert!(total > 1000, "{total} vectors");
}

/// RFC 7515 A.1 (HS256, with the key of A.1.1), A.2 (RS256, the key of A.2.1) and A.5 (the
/// unsecured JWS): the same claims as A.3.
const RFC7515_A1_JWK: &str = r#"{"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;
const RFC7515_A1_JWS: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC7515_A2_JWK: &str = concat!(
    r#"{"keys":[{"kty":"RSA","e":"AQAB","n":""#,
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx",
    "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs",
    "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH",
    "SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV",
    "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8",
    r#"NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}]}"#
);
const RFC7515_A2_JWS: &str = concat!(
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.",
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5",
    "jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb",
    "1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QO",
    "YEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
);
const RFC7515_A5_JWS: &str = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.";

#[test]
fn rfc7515_a1_a2_are_accepted_exactly_under_their_algorithm_and_a5_never() {
    for (jwk, jws, alg, other) in [
        (
            RFC7515_A1_JWK,
            RFC7515_A1_JWS,
            Algorithm::HS256,
            Algorithm::RS256,
        ),
        (
            RFC7515_A2_JWK,
            RFC7515_A2_JWS,
            Algorithm::RS256,
            Algorithm::PS256,
        ),
    ] {
        let allowed = providers(jwk, &[alg]);
        let verified = verify_once(jws, &allowed, None, 8192, A3_NOW)
            .unwrap_or_else(|f| panic!("{alg:?} refused: {:?}", f.error));
        assert_eq!(verified.claims["iss"], "joe");
        let refused = verify_once(jws, &providers(jwk, &[other]), None, 8192, A3_NOW).unwrap_err();
        assert_eq!(refused.error, TokenError::AlgorithmNotAllowed, "{alg:?}");
        let tampered = flipped(jws, 3);
        let refused = verify_once(&tampered, &allowed, None, 8192, A3_NOW).unwrap_err();
        assert_eq!(refused.error, TokenError::BadSignature, "{alg:?}");
    }
    // The unsecured JWS is refused whatever the provider allows (more `alg: none` shapes:
    // tests/attacks/tokens-algorithm.tsv).
    for (jwk, alg) in [
        (RFC7515_A1_JWK, Algorithm::HS256),
        (RFC7515_A2_JWK, Algorithm::RS256),
    ] {
        let refused = verify_once(RFC7515_A5_JWS, &providers(jwk, &[alg]), None, 8192, A3_NOW);
        // Its empty signature segment is refused at the screen, before `alg` is read.
        assert_eq!(refused.unwrap_err().error, TokenError::Malformed);
    }
}
