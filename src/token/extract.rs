//! Step 5: find the bearer token. Only the `Authorization` header by default; a query parameter
//! or cookie only where the route enables it. Names are compared the way backends read them
//! (cookie names trimmed, query and cookie names percent-decoded), and a name that occurs twice
//! is refused, so the token verified is the one a backend would read.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::error::ExtractError;
use crate::percent;

/// Where a route may take its token from besides the `Authorization` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSources {
    /// Query parameter holding the token (off unless configured).
    pub query_param: Option<String>,
    /// Cookie holding the token (off unless configured).
    pub cookie: Option<String>,
}

/// Where a presented token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Header,
    Query,
    Cookie,
}

/// What a request presents. `Basic` credentials (meant for a backend) count as nothing; any
/// other scheme is a credential the gateway cannot check, refused on routes that read tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// No token (no `Authorization`, or `Basic`).
    Nothing,
    /// A bearer token and where it came from.
    Token(&'a str, Source),
    /// An `Authorization` scheme other than Bearer and Basic (`Token x`, `JWT x`): a
    /// credential the gateway cannot check, so never one to forward unchecked.
    UnsupportedScheme,
}

impl<'a> Presented<'a> {
    /// The token, if one was presented.
    pub fn token(self) -> Option<&'a str> {
        match self {
            Presented::Token(token, _) => Some(token),
            Presented::Nothing | Presented::UnsupportedScheme => None,
        }
    }

    /// Where the token came from, if one was presented.
    pub fn source(self) -> Option<Source> {
        match self {
            Presented::Token(_, source) => Some(source),
            Presented::Nothing | Presented::UnsupportedScheme => None,
        }
    }
}

/// What the `Authorization` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme<'a> {
    Bearer(&'a str),
    Basic,
    Other,
}

/// The presented credentials, or why they cannot be read. The `Authorization` header wins over
/// a cookie (the cookie is then removed before forwarding, see `proxy::headers`); a header and
/// a query token together, or a scheme other than Bearer and Basic, are refused.
pub fn extract<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    sources: &TokenSources,
) -> Result<Presented<'a>, ExtractError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let from_header = match (values.next(), values.next()) {
        (Some(_), Some(_)) => return Err(ExtractError::MultipleAuthorization),
        (Some(value), None) => match scheme(value.to_str().map_err(|_| ExtractError::NotText)?)? {
            Scheme::Bearer(token) => Some(token),
            Scheme::Basic => None,
            Scheme::Other => return Ok(Presented::UnsupportedScheme),
        },
        (None, _) => None,
    };
    let from_query = match (&sources.query_param, query) {
        (Some(name), Some(query)) => query_value(query, name)?,
        _ => None,
    };
    // Read (and so checked for duplicates) whenever the route names a cookie, even when the
    // header carries the token.
    let from_cookie = match &sources.cookie {
        Some(name) => cookie_value(headers, name)?,
        None => None,
    };
    Ok(match (from_header, from_query, from_cookie) {
        (Some(_), Some(_), _) => return Err(ExtractError::MultipleMethods),
        (Some(token), None, _) => Presented::Token(token, Source::Header),
        (None, Some(token), _) => Presented::Token(token, Source::Query),
        (None, None, Some(token)) => Presented::Token(token, Source::Cookie),
        (None, None, None) => Presented::Nothing,
    })
}

/// Reads an `Authorization` value. `Bearer <token>`: scheme in any case (RFC 9110 §11.1), one
/// or more spaces. A value that starts like `Bearer` but goes on with another separator
/// (tab, `:`, `,`, …) is refused: backends split such values in different ways.
fn scheme(value: &str) -> Result<Scheme<'_>, ExtractError> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let head = value.get(..6);
    if head.is_some_and(|h| h.eq_ignore_ascii_case("bearer")) {
        let rest = &value[6..];
        if rest.is_empty() {
            return Err(ExtractError::EmptyBearer);
        }
        let Some(token) = rest.strip_prefix(' ') else {
            return Err(ExtractError::BearerSeparator);
        };
        let token = token.trim_start_matches(' ');
        if token.is_empty() {
            return Err(ExtractError::EmptyBearer);
        }
        return Ok(Scheme::Bearer(token));
    }
    let name = value.split([' ', '\t']).next().unwrap_or("");
    if name.eq_ignore_ascii_case("basic") {
        Ok(Scheme::Basic)
    } else {
        Ok(Scheme::Other)
    }
}

/// A name as a backend reads it: percent-decoded where that gives UTF-8, else as sent.
fn same_name(raw: &str, name: &str) -> bool {
    if raw == name {
        return true;
    }
    raw.contains('%') && percent::decode(raw).is_some_and(|decoded| decoded == name)
}

fn query_value<'a>(query: &'a str, name: &str) -> Result<Option<&'a str>, ExtractError> {
    let mut found = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if same_name(key, name) {
            if found.is_some() {
                return Err(ExtractError::DuplicateQueryToken);
            }
            found = Some(value);
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

/// `query` without the pairs named `name` (as `extract` compares names): itself when none is,
/// `None` when nothing is left.
pub fn without_query_param<'q>(query: &'q str, name: &str) -> Option<std::borrow::Cow<'q, str>> {
    let named = |pair: &&str| same_name(pair.split_once('=').map_or(*pair, |(k, _)| k), name);
    if !query.split('&').any(|pair| named(&pair)) {
        return Some(std::borrow::Cow::Borrowed(query));
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !named(pair) && !pair.is_empty())
        .collect();
    (!kept.is_empty()).then(|| std::borrow::Cow::Owned(kept.join("&")))
}

/// Whether a cookie pair (`name=value`, untrimmed) has the name `name`.
pub fn is_cookie_named(pair: &str, name: &str) -> bool {
    let key = pair.split_once('=').map_or(pair, |(k, _)| k);
    same_name(key.trim_matches([' ', '\t']), name)
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ExtractError> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        let text =
            std::str::from_utf8(header.as_bytes()).map_err(|_| ExtractError::CookieNotText)?;
        for pair in text.split(';') {
            if is_cookie_named(pair, name) {
                if found.is_some() {
                    return Err(ExtractError::DuplicateCookieToken);
                }
                let value = pair.split_once('=').map_or("", |(_, v)| v);
                found = Some(value.trim_matches([' ', '\t']).trim_matches('"'));
            }
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}
#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static [u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    #[test]
    fn without_query_param_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("a=1&access_token=t&b=2", Some("a=1&b=2")),
            ("access_token=t", None),
            ("access%5Ftoken=x&access_token=t", None),
            ("a=1&b=2", Some("a=1&b=2")),
            ("access_tokens=1", Some("access_tokens=1")),
        ];
        for (query, want) in cases {
            assert_eq!(
                without_query_param(query, "access_token").as_deref(),
                *want,
                "{query}"
            );
        }
    }

    #[test]
    fn extract_table() {
        use Presented::{Nothing, Token, UnsupportedScheme};
        use Source::{Cookie, Header, Query};
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
            &'a [(&'static str, &'static [u8])],
            Option<&'a str>,
            &'a TokenSources,
            Result<Presented<'a>, ExtractError>,
        );
        let auth = "authorization";
        let cases: &[Case] = &[
            (
                &[(auth, b"Bearer abc")],
                None,
                &none,
                Ok(Token("abc", Header)),
            ),
            (
                &[(auth, b"bearer abc")],
                None,
                &none,
                Ok(Token("abc", Header)),
            ),
            (
                &[(auth, b"BEARER   abc ")],
                None,
                &none,
                Ok(Token("abc", Header)),
            ),
            (&[(auth, b"Basic dXNlcjpw")], None, &none, Ok(Nothing)),
            (&[(auth, b"basic")], None, &none, Ok(Nothing)),
            // Other schemes are credentials the gateway cannot check.
            (&[(auth, b"Token abc")], None, &none, Ok(UnsupportedScheme)),
            (&[(auth, b"JWT abc")], None, &none, Ok(UnsupportedScheme)),
            (&[(auth, b"Digest x=1")], None, &none, Ok(UnsupportedScheme)),
            // Bearer-like values with another separator are refused, never "no token".
            (
                &[(auth, b"Bearer\tabc")],
                None,
                &none,
                Err(ExtractError::BearerSeparator),
            ),
            (
                &[(auth, b"bearer:abc")],
                None,
                &none,
                Err(ExtractError::BearerSeparator),
            ),
            (
                &[(auth, b"Bearer,abc")],
                None,
                &none,
                Err(ExtractError::BearerSeparator),
            ),
            (
                &[(auth, b"Bearerabc")],
                None,
                &none,
                Err(ExtractError::BearerSeparator),
            ),
            (
                &[(auth, b"Bearer=abc")],
                None,
                &none,
                Err(ExtractError::BearerSeparator),
            ),
            (
                &[(auth, b"Bearer")],
                None,
                &none,
                Err(ExtractError::EmptyBearer),
            ),
            (
                &[(auth, b"Bearer ")],
                None,
                &none,
                Err(ExtractError::EmptyBearer),
            ),
            (
                &[(auth, b"Bearer \xff")],
                None,
                &none,
                Err(ExtractError::NotText),
            ),
            (
                &[(auth, b"Bearer a"), (auth, b"Bearer b")],
                None,
                &none,
                Err(ExtractError::MultipleAuthorization),
            ),
            (&[], None, &none, Ok(Nothing)),
            (&[], Some("access_token=abc"), &none, Ok(Nothing)),
            (
                &[],
                Some("x=1&access_token=abc"),
                &query,
                Ok(Token("abc", Query)),
            ),
            (
                &[],
                Some("access_token=a&access_token=b"),
                &query,
                Err(ExtractError::DuplicateQueryToken),
            ),
            // A backend decodes the name: the first spelling would be the one it reads.
            (
                &[],
                Some("access%5Ftoken=forged&access_token=valid"),
                &query,
                Err(ExtractError::DuplicateQueryToken),
            ),
            (
                &[],
                Some("access%5Ftoken=abc"),
                &query,
                Ok(Token("abc", Query)),
            ),
            (
                &[(auth, b"Bearer abc")],
                Some("access_token=abc"),
                &query,
                Err(ExtractError::MultipleMethods),
            ),
            (
                &[("cookie", b"a=1; at=tok; b=2")],
                None,
                &cookie,
                Ok(Token("tok", Cookie)),
            ),
            (&[("cookie", b"at=tok")], None, &none, Ok(Nothing)),
            (
                &[(auth, b"Bearer hdr"), ("cookie", b"at=tok")],
                None,
                &cookie,
                Ok(Token("hdr", Header)),
            ),
            (
                &[("cookie", b"at=a"), ("cookie", b"at=b")],
                None,
                &cookie,
                Err(ExtractError::DuplicateCookieToken),
            ),
            // Node, Go and Werkzeug trim names: `at ` is `at`.
            (
                &[("cookie", b"at =forged; at=valid")],
                None,
                &cookie,
                Err(ExtractError::DuplicateCookieToken),
            ),
            (
                &[("cookie", b"a%74=forged; at=valid")],
                None,
                &cookie,
                Err(ExtractError::DuplicateCookieToken),
            ),
            // Duplicates are refused even when the header carries the token.
            (
                &[(auth, b"Bearer hdr"), ("cookie", b"at=a; at=b")],
                None,
                &cookie,
                Err(ExtractError::DuplicateCookieToken),
            ),
            (
                &[("cookie", b"at=tok; x=\xff")],
                None,
                &cookie,
                Err(ExtractError::CookieNotText),
            ),
            // A route that reads no cookie does not look at them.
            (&[("cookie", b"x=\xff")], None, &none, Ok(Nothing)),
        ];
        for (pairs, q, sources, want) in cases {
            let map = headers(pairs);
            assert_eq!(extract(&map, *q, sources), *want, "{pairs:?} {q:?}");
        }
    }
}
