//! The refresh cookie: `__Host-` prefixed, `Secure; HttpOnly; SameSite=Strict; Path=/`, no
//! `Domain`; `Max-Age` is the family's remaining absolute lifetime. Cleared with the same name,
//! path and attributes. Proxied requests lose it, and upstream responses may not set it.

use http::HeaderMap;
use http::header::COOKIE;

/// The default cookie name.
pub const DEFAULT_NAME: &str = "__Host-portcullis-refresh";

/// `Set-Cookie` carrying `value` for `max_age` seconds.
pub fn set(name: &str, value: &str, max_age: u64) -> String {
    format!("{name}={value}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// `Set-Cookie` removing the cookie (same name, path and attributes).
pub fn clear(name: &str) -> String {
    set(name, "", 0)
}

/// The value of cookie `name` in the request's `Cookie` headers: `None` when absent, and also
/// when sent twice (which of two is meant cannot be told).
pub fn read<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut found = None;
    for value in headers.get_all(COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((n, v)) = pair.trim().split_once('=')
                && n == name
            {
                if found.is_some() {
                    return None;
                }
                found = Some(v);
            }
        }
    }
    found
}

/// A `Cookie` header value without the cookies named in `names` (`None`: nothing left).
pub fn without(value: &str, names: &[&str]) -> Option<String> {
    let kept: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            !pair.is_empty() && !names.contains(&name)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// The cookie name a `Set-Cookie` value sets.
pub fn set_name(value: &str) -> &str {
    value
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map_or(value, |(name, _)| name.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_clear_share_name_path_and_attributes() {
        assert_eq!(
            set(DEFAULT_NAME, "abc", 60),
            "__Host-portcullis-refresh=abc; Max-Age=60; Path=/; Secure; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            clear(DEFAULT_NAME),
            "__Host-portcullis-refresh=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict"
        );
    }

    #[test]
    fn reading_and_removing_the_cookie() {
        let rows: Vec<(Vec<&str>, Option<&str>, Option<&str>)> = vec![
            (
                vec!["a=1; __Host-p=tok; b=2"],
                Some("tok"),
                Some("a=1; b=2"),
            ),
            (vec!["__Host-p=tok"], Some("tok"), None),
            (vec!["a=1", "__Host-p=tok"], Some("tok"), Some("a=1")),
            (vec!["__Host-p=one; __Host-p=two"], None, None),
            (vec!["x__Host-p=tok"], None, Some("x__Host-p=tok")),
            (vec![], None, None),
        ];
        for (values, read_as, rest) in rows {
            let mut headers = HeaderMap::new();
            for v in &values {
                headers.append(COOKIE, v.parse().unwrap());
            }
            assert_eq!(read(&headers, "__Host-p"), read_as, "{values:?}");
            let joined = values.join("; ");
            if !joined.is_empty() {
                assert_eq!(
                    without(&joined, &["__Host-p"]).as_deref(),
                    rest,
                    "{values:?}"
                );
            }
        }
        assert_eq!(set_name("__Host-p=x; Path=/"), "__Host-p");
        assert_eq!(set_name(" sid = y"), "sid");
    }
}
