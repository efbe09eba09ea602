//! Arbitrary `Authorization` values: extract + screen never panic, and the pipeline lets a
//! request through an authenticated route only with a token whose RS256 signature verifies
//! (checked again here with aws-lc-rs directly) for the provider's issuer and audience.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use portcullis::http::pipeline::TokenCheck;
use portcullis::token::{extract, screen};
use portcullis_fuzz as harness;

fuzz_target!(init: portcullis_fuzz::seeds::write("authorization"), |data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    if let Ok(presented) = extract::extract(&headers, None, &Default::default())
        && let Some(token) = presented.token()
    {
        let _ = screen::screen(token, 8192);
    }
    let uri = Uri::from_static("https://api.example.com/api/orders");
    let (result, _) =
        harness::authorize(Method::GET, uri, headers.clone(), TokenCheck::Verify(None));
    if let Ok(authorized) = result {
        harness::assert_well_formed(&authorized);
        let text = headers[AUTHORIZATION].to_str().expect("accepted, so text");
        // The value as a parser hands it over: surrounding whitespace is not part of it.
        let token = text
            .trim()
            .split_once(' ')
            .map(|(_, t)| t.trim())
            .expect("a scheme and a token");
        assert!(
            independently_valid(token),
            "accepted a token that does not verify: {token}"
        );
    }
});

/// The signature checked with aws-lc-rs over the exact signing input, then iss and aud.
fn independently_valid(token: &str) -> bool {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    let key = public_key();
    let message = format!("{header}.{payload}");
    if UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
        .verify(message.as_bytes(), &signature)
        .is_err()
    {
        return false;
    }
    let Ok(claims) = URL_SAFE_NO_PAD.decode(payload) else {
        return false;
    };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&claims) else {
        return false;
    };
    claims["iss"] == harness::ISSUER
        && (claims["aud"] == harness::AUDIENCE
            || claims["aud"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == harness::AUDIENCE)))
}

/// The demo key's RSAPublicKey DER (PKCS#1), as aws-lc-rs wants it.
fn public_key() -> &'static [u8] {
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let jwks: serde_json::Value = serde_json::from_slice(
            &std::fs::read(harness::repo().join("certs/demo-jwks.json")).expect("jwks"),
        )
        .expect("json");
        let n = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["n"].as_str().expect("n"))
            .expect("n");
        let e = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["e"].as_str().expect("e"))
            .expect("e");
        rsa_public_key_der(&n, &e)
    })
}

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let mut body = bytes.to_vec();
        if body.first().is_some_and(|b| b & 0x80 != 0) {
            body.insert(0, 0);
        }
        tlv(0x02, &body)
    }
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = body.len();
        if len < 128 {
            out.push(len as u8);
        } else if len < 256 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(body);
        out
    }
    let mut body = integer(n);
    body.extend(integer(e));
    tlv(0x30, &body)
}
