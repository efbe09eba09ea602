//! Arbitrary claims (any JSON: numbers of every size, nesting, types) through the example
//! rules and claim headers. Never a panic; an allowed request satisfies the rule as read here
//! independently, and every claim header forwarded is exactly the claim's value (one copy).
#![no_main]

use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use portcullis::proxy::headers::claim_header_value;
use portcullis::token::Claims;
use portcullis_fuzz as harness;
use serde_json::Value;

fuzz_target!(init: portcullis_fuzz::seeds::write("claims_rules"), |data: &[u8]| {
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for (uri, headers) in requests() {
        let (result, _) = harness::authorize(
            Method::GET,
            uri.clone(),
            headers.clone(),
            harness::assume(claims.clone()),
        );
        let Ok(authorized) = result else {
            continue;
        };
        harness::assert_well_formed(&authorized);
        let oracle = match &*authorized.route.name {
            "admin-console" => contains(&claims["roles"], "admin"),
            "tenant-data" => {
                contains(claims.get("tenants").unwrap_or(&Value::Null), "t1")
                    && claims.get("tenant") == Some(&Value::from("t1"))
                    && claims.get("suspended") != Some(&Value::Bool(true))
            }
            "payroll" => claims
                .get("loa")
                .and_then(Value::as_f64)
                .is_some_and(|l| l >= 2.0),
            _ => true,
        };
        assert!(oracle, "{} allowed {claims:?}", authorized.route.name);
        check_claim_headers(&authorized, &claims);
    }
});

fn contains(value: &Value, want: &str) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| v == want),
        other => other == want,
    }
}

fn check_claim_headers(authorized: &portcullis::http::pipeline::Authorized<'_>, claims: &Claims) {
    let headers = &authorized.parts.headers;
    for claim_header in &authorized.route.claim_headers {
        let values: Vec<&HeaderValue> = headers.get_all(&claim_header.name).iter().collect();
        let expected = claim_header
            .claim
            .lookup(claims)
            .and_then(claim_header_value);
        match expected {
            Some(expected) => assert_eq!(values, [&expected], "{}", claim_header.name),
            None => assert!(values.is_empty(), "{} without its claim", claim_header.name),
        }
    }
}

fn requests() -> &'static [(Uri, HeaderMap)] {
    static REQUESTS: std::sync::OnceLock<Vec<(Uri, HeaderMap)>> = std::sync::OnceLock::new();
    REQUESTS.get_or_init(|| {
        let with = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            headers
        };
        [
            ("https://api.example.com/admin/users", HeaderMap::new()),
            (
                "https://api.example.com/users/alice/profile",
                HeaderMap::new(),
            ),
            (
                "https://api.example.com/tenants/t1/orders",
                with("x-tenant", "t1"),
            ),
            ("https://api.example.com/invoices/2026/1", HeaderMap::new()),
            ("https://payroll.example.com/march", HeaderMap::new()),
            ("https://api.example.com/api/orders", HeaderMap::new()),
            ("https://api.example.com/reports/7", HeaderMap::new()),
        ]
        .into_iter()
        .map(|(uri, headers)| (Uri::from_static(uri), headers))
        .collect()
    })
}
