//! What a client sends the issuer: login bodies (JSON or form, any content type), `Cookie`
//! headers, refresh tokens and the CSRF headers. Never a panic; credentials come out only
//! within their bounds; a refresh token opens only if it is the key's own canonical encoding;
//! the refresh cookie never survives the strip that runs before proxying; CSRF passes only
//! with the header and a same-origin or allowed origin.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis::issuer::{cookie, credentials, csrf, password, refresh::RefreshKey, users};

const COOKIE_NAME: &str = "__Host-portcullis-refresh";
const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "Application/X-WWW-Form-Urlencoded; charset=utf-8",
    "text/plain",
];

fuzz_target!(init: portcullis_fuzz::seeds::write("issuer_inputs"), |data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let mut fields = rest.split(|b| *b == 0xff);
    let body = fields.next().unwrap_or_default();
    let cookies: Vec<&[u8]> = fields
        .next()
        .unwrap_or_default()
        .split(|b| *b == 0xfe)
        .collect();
    let origin = fields.next();
    let fetch_site = fields.next();

    let content_type = (choice & 4 == 0).then(|| CONTENT_TYPES[usize::from(choice & 3)]);
    if let Some((username, password)) = credentials::read(content_type, body) {
        assert!(!username.is_empty() && username.len() <= users::MAX_USERNAME);
        assert!((password::MIN_PASSWORD..=password::MAX_PASSWORD).contains(&password.len()));
    }

    let key = RefreshKey::new(b"fuzzing refresh key, 32 bytes or more");
    let mut headers = HeaderMap::new();
    for value in &cookies {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(http::header::COOKIE, value);
        }
    }
    if let Some(token) = cookie::read(&headers, COOKIE_NAME)
        && let Some(presented) = key.open(token)
    {
        assert_eq!(
            key.token(&presented.family, presented.generation)
                .as_deref(),
            Some(token),
            "a refresh token opened that the key would not have written"
        );
    }
    for value in &cookies {
        if let Ok(text) = std::str::from_utf8(value)
            && let Some(presented) = key.open(text)
        {
            assert_eq!(
                key.token(&presented.family, presented.generation)
                    .as_deref(),
                Some(text)
            );
        }
    }
    let before: Vec<String> = pairs(&headers);
    portcullis::issuer::strip_cookie(&mut headers, COOKIE_NAME);
    assert_eq!(cookie::read(&headers, COOKIE_NAME), None);
    for pair in pairs(&headers) {
        let name = pair.split_once('=').map_or(&*pair, |(n, _)| n);
        assert_ne!(name, COOKIE_NAME, "the refresh cookie survived the strip");
        assert!(before.contains(&pair), "the strip invented {pair:?}");
    }

    let mut request = HeaderMap::new();
    if let Some(origin) = origin.and_then(|o| HeaderValue::from_bytes(o).ok()) {
        request.insert(http::header::ORIGIN, origin);
    }
    if let Some(site) = fetch_site.and_then(|s| HeaderValue::from_bytes(s).ok()) {
        request.insert("sec-fetch-site", site);
    }
    if choice & 8 != 0 {
        request.insert("x-portcullis-csrf", HeaderValue::from_static("1"));
    }
    let header = HeaderName::from_static("x-portcullis-csrf");
    let allowed = ["https://app.example.com".to_string()];
    let policy = csrf::Policy {
        own_origin: "https://login.example.com",
        allowed_origins: &allowed,
        header: &header,
    };
    if csrf::check(&request, policy).is_ok() {
        assert_eq!(
            request.get(&header).map(HeaderValue::as_bytes),
            Some(&b"1"[..])
        );
        let site = request.get("sec-fetch-site").map(HeaderValue::as_bytes);
        let origin = request.get(http::header::ORIGIN).map(HeaderValue::as_bytes);
        let origin_ok = origin
            .is_some_and(|o| o == b"https://login.example.com" || o == b"https://app.example.com");
        match site {
            Some(b"same-origin" | b"none") => {}
            Some(_) => assert!(origin_ok, "cross-site passed"),
            None => assert!(origin.is_none() || origin_ok, "a foreign origin passed"),
        }
    }
});

/// Every `name=value` pair of the `Cookie` headers, trimmed.
fn pairs(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|t| t.split(';').map(|p| p.trim().to_string()))
        .filter(|p| !p.is_empty())
        .collect()
}
