//! Arbitrary header sets from an untrusted peer on allowed requests (Host fixed). Property:
//! no client copy of a claim header, forwarding header or look-alike survives in any spelling
//! (`_` for `-`, any case), the claim headers are exactly the token's, a header a rule reads
//! is the one the rule saw, and no value carries CR, LF or NUL.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use portcullis_fuzz as harness;

/// Names worth trying, in the spellings backends fold together.
const NAMES: [&str; 24] = [
    "x-user-id",
    "x_user_id",
    "X-USER-ROLES",
    "x-user_tenant",
    "x-forwarded-for",
    "x_forwarded_for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "forwarded",
    "x-real-ip",
    "x_real_ip",
    "true-client-ip",
    "x-original-url",
    "x-http-method-override",
    "x-original-host",
    "x_original_host",
    "connection",
    "te",
    "keep-alive",
    "x-tenant",
    "x_tenant",
    "cookie",
    "authorization",
    "x-scope",
];

fuzz_target!(init: portcullis_fuzz::seeds::write("header_rewrite"), |data: &[u8]| {
    let Some((&choice, mut rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::HOST,
        HeaderValue::from_static("api.example.com"),
    );
    while let Some((&selector, tail)) = rest.split_first() {
        let end = tail.iter().position(|b| *b == 0xff).unwrap_or(tail.len());
        let (field, next) = tail.split_at(end);
        rest = next.get(1..).unwrap_or_default();
        let (name, value) = if selector < 0xe0 {
            (NAMES[usize::from(selector) % NAMES.len()].as_bytes(), field)
        } else {
            let split = usize::from(selector - 0xe0).min(field.len());
            field.split_at(split)
        };
        let Ok(name) = HeaderName::from_bytes(name) else {
            continue;
        };
        if name == http::header::HOST {
            continue;
        }
        // A Connection list names headers and X-Tenant is what a rule compares; other values
        // are marked.
        let raw = name == http::header::CONNECTION || harness::folded(&name) == "x-tenant";
        let value = if raw {
            HeaderValue::from_bytes(value).unwrap_or(HeaderValue::from_static("close"))
        } else {
            harness::spoof_value(value)
        };
        headers.append(name, value);
    }
    let target = ["/api/orders", "/tenants/t1/orders", "/reports/7"][usize::from(choice) % 3];
    let (result, _) = harness::authorize(
        Method::GET,
        Uri::from_static(target),
        headers.clone(),
        harness::assume(harness::allowed_claims()),
    );
    let Ok(authorized) = result else {
        return;
    };
    harness::assert_well_formed(&authorized);
    let forwarded = &authorized.parts.headers;
    let protected = harness::protected_headers();
    for (name, value) in forwarded {
        let folded = harness::folded(name);
        if protected.contains(&folded) {
            assert!(
                !value.as_bytes().starts_with(b"spoof-"),
                "a client's {name} reached the backend"
            );
        }
    }
    for claim_header in &authorized.route.claim_headers {
        let values: Vec<_> = forwarded.get_all(&claim_header.name).iter().collect();
        assert!(values.len() <= 1, "{} twice", claim_header.name);
    }
    if authorized.route.name.as_ref() == "tenant-data" {
        // The rule read X-Tenant and allowed it: it was t1, alone, and is forwarded as it was.
        let values: Vec<_> = forwarded.get_all("x-tenant").iter().collect();
        assert_eq!(values, [&HeaderValue::from_static("t1")], "X-Tenant");
        assert!(
            !forwarded.contains_key("x_tenant"),
            "a _ spelling of X-Tenant"
        );
    }
    assert_eq!(
        forwarded.get(http::header::HOST),
        Some(&HeaderValue::from_static("api.example.com")),
        "Host changed"
    );
});
