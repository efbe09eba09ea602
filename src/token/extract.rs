//! Step 5: find the bearer token. Only the `Authorization` header by default; a query parameter
//! or cookie only where the route enables it.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::routes::TokenSources;

/// Why the credentials could not be read (400 `invalid_request`, RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractError {
    MultipleAuthorization,
    MultipleMethods,
    EmptyBearer,
    NotText,
}

impl ExtractError {
    pub fn describe(self) -> &'static str {
        match self {
            ExtractError::MultipleAuthorization => "more than one Authorization header",
            ExtractError::MultipleMethods => "token sent by more than one method",
            ExtractError::EmptyBearer => "Bearer scheme without a token",
            ExtractError::NotText => "Authorization header is not visible ASCII",
        }
    }
}

/// The presented token, `None` when the request carries none. A non-Bearer `Authorization`
/// scheme (for example Basic, meant for the backend) counts as no token.
pub fn extract<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    sources: &TokenSources,
) -> Result<Option<&'a str>, ExtractError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let from_header = match (values.next(), values.next()) {
        (Some(_), Some(_)) => return Err(ExtractError::MultipleAuthorization),
        (Some(value), None) => bearer(value.to_str().map_err(|_| ExtractError::NotText)?)?,
        (None, _) => None,
    };
    let from_query = match (&sources.query_param, query) {
        (Some(name), Some(query)) => query_value(query, name)?,
        _ => None,
    };
    match (from_header, from_query) {
        (Some(_), Some(_)) => Err(ExtractError::MultipleMethods),
        (Some(token), None) | (None, Some(token)) => Ok(Some(token)),
        (None, None) => match &sources.cookie {
            Some(name) => cookie_value(headers, name),
            None => Ok(None),
        },
    }
}

/// `Bearer <token>`, scheme case-insensitive (RFC 9110 §11.1), one or more spaces.
fn bearer(value: &str) -> Result<Option<&str>, ExtractError> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(ExtractError::EmptyBearer);
    }
    Ok(Some(token))
}

fn query_value<'a>(query: &'a str, name: &str) -> Result<Option<&'a str>, ExtractError> {
    let mut found = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            if found.is_some() {
                return Err(ExtractError::MultipleMethods);
            }
            found = Some(value);
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ExtractError> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            let (key, value) = pair.trim().split_once('=').unwrap_or((pair.trim(), ""));
            if key == name {
                if found.is_some() {
                    return Err(ExtractError::MultipleMethods);
                }
                found = Some(value.trim_matches('"'));
            }
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn extract_table() {
        let none = TokenSources::default();
        let query = TokenSources {
            query_param: Some("access_token".into()),
            cookie: None,
        };
        let cookie = TokenSources {
            query_param: None,
            cookie: Some("at".into()),
        };
        type Case<'a> = (
            &'a [(&'static str, &'static str)],
            Option<&'a str>,
            &'a TokenSources,
            Result<Option<&'a str>, ExtractError>,
        );
        let cases: &[Case] = &[
            (
                &[("authorization", "Bearer abc")],
                None,
                &none,
                Ok(Some("abc")),
            ),
            (
                &[("authorization", "bearer abc")],
                None,
                &none,
                Ok(Some("abc")),
            ),
            (
                &[("authorization", "BEARER   abc ")],
                None,
                &none,
                Ok(Some("abc")),
            ),
            (
                &[("authorization", "Basic dXNlcjpw")],
                None,
                &none,
                Ok(None),
            ),
            (
                &[("authorization", "Bearer")],
                None,
                &none,
                Err(ExtractError::EmptyBearer),
            ),
            (
                &[("authorization", "Bearer ")],
                None,
                &none,
                Err(ExtractError::EmptyBearer),
            ),
            (
                &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
                None,
                &none,
                Err(ExtractError::MultipleAuthorization),
            ),
            (&[], None, &none, Ok(None)),
            (&[], Some("access_token=abc"), &none, Ok(None)),
            (&[], Some("x=1&access_token=abc"), &query, Ok(Some("abc"))),
            (
                &[],
                Some("access_token=a&access_token=b"),
                &query,
                Err(ExtractError::MultipleMethods),
            ),
            (
                &[("authorization", "Bearer abc")],
                Some("access_token=abc"),
                &query,
                Err(ExtractError::MultipleMethods),
            ),
            (
                &[("cookie", "a=1; at=tok; b=2")],
                None,
                &cookie,
                Ok(Some("tok")),
            ),
            (&[("cookie", "at=tok")], None, &none, Ok(None)),
            (
                &[("authorization", "Bearer hdr"), ("cookie", "at=tok")],
                None,
                &cookie,
                Ok(Some("hdr")),
            ),
            (
                &[("cookie", "at=a"), ("cookie", "at=b")],
                None,
                &cookie,
                Err(ExtractError::MultipleMethods),
            ),
        ];
        for (pairs, q, sources, want) in cases {
            let map = headers(pairs);
            assert_eq!(extract(&map, *q, sources), *want, "{pairs:?} {q:?}");
        }
    }
}
