//! Arbitrary request targets and Host headers through normalise + route match + rewrite.
//! Property: a request that passes was matched on a normalised path (a fixed point of the
//! normaliser, no dot segment), matching that path again picks the same route, and the path
//! forwarded is exactly that path with the route's own rewrite. Every path the normaliser
//! accepts under any options is a fixed point and never climbs above `/`.
#![no_main]

use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use portcullis::http::pipeline::upstream_path;
use portcullis::routes::path::{
    DotSegments, EmptySegments, EncodedSlash, PathOptions, PathParameters, WindowsSegments,
    normalize,
};
use portcullis_fuzz as harness;

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "get",
];

fuzz_target!(init: portcullis_fuzz::seeds::write("request_target"), |data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let (host, target) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    if let Ok(text) = std::str::from_utf8(target) {
        let path = text.split('?').next().unwrap_or_default();
        check_normaliser(path, options(choice));
    }
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let method = Method::from_bytes(METHODS[usize::from(choice) % METHODS.len()].as_bytes())
        .expect("a method");
    let mut headers = HeaderMap::new();
    if let Some(host) = host.and_then(|h| HeaderValue::from_bytes(h).ok()) {
        headers.insert(http::header::HOST, host);
    }
    let (result, seen) = harness::authorize(
        method.clone(),
        uri,
        headers,
        harness::assume(harness::allowed_claims()),
    );
    let Ok(authorized) = result else {
        return;
    };
    harness::assert_well_formed(&authorized);
    let snapshot = harness::snapshot();
    let path = seen.path.as_deref().expect("a matched request has a path");
    let again = normalize(path, &snapshot.paths).expect("the matched path normalises");
    assert_eq!(again, path, "the matched path is not normal");
    assert!(
        !path.split('/').any(|s| s == "." || s == ".."),
        "dot segment in the matched path {path:?}"
    );
    let route = snapshot
        .routes
        .find(&method, seen.host.as_deref(), path)
        .expect("the matched path matches again");
    assert!(
        std::ptr::eq(route, authorized.route),
        "{path:?} matched {} but again {}",
        authorized.route.name,
        route.name
    );
    assert_eq!(
        authorized.path_and_query.path(),
        upstream_path(route, path),
        "forwarded path differs from the approved one"
    );
});

fn options(choice: u8) -> PathOptions {
    let bit = |n: u8| choice & (1 << n) != 0;
    PathOptions {
        dot_segments: if bit(0) {
            DotSegments::Reject
        } else {
            DotSegments::Resolve
        },
        empty_segments: if bit(1) {
            EmptySegments::Merge
        } else {
            EmptySegments::Reject
        },
        encoded_slash: if bit(2) {
            EncodedSlash::Keep
        } else {
            EncodedSlash::Reject
        },
        path_parameters: if bit(3) {
            PathParameters::Strip
        } else {
            PathParameters::Reject
        },
        windows_segments: if bit(4) {
            WindowsSegments::Keep
        } else {
            WindowsSegments::Reject
        },
    }
}

fn check_normaliser(path: &str, options: PathOptions) {
    if let Ok(normal) = normalize(path, &options) {
        assert_eq!(
            normalize(&normal, &options).as_deref().ok(),
            Some(&*normal),
            "not idempotent: {path:?} -> {normal:?}"
        );
        assert!(
            !normal.split('/').any(|s| s == ".."),
            "climbs: {path:?} -> {normal:?}"
        );
    }
}
