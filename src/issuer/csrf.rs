//! CSRF on the issuer's POST endpoints: fetch metadata first (`Sec-Fetch-Site` must be
//! `same-origin` or `none`), else the `Origin` must be the issuer's own or an allowed one; and
//! in every case a static request header (a cross-site form cannot send one, a cross-site
//! `fetch` cannot without a CORS preflight Portcullis never grants).

use http::HeaderMap;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Sec-Fetch-Site` says another site sent it, and its `Origin` is not allowed.
    CrossSite,
    /// `Origin` is neither ours nor allowed.
    ForeignOrigin,
    /// The required request header is missing or not `1`.
    MissingHeader,
}

/// What the check needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// `scheme://host[:port]` of the issuer.
    pub own_origin: &'a str,
    pub allowed_origins: &'a [String],
    /// e.g. `x-portcullis-csrf`.
    pub header: &'a http::HeaderName,
}

pub fn check(headers: &HeaderMap, policy: Policy<'_>) -> Result<(), Refusal> {
    // An `Origin` that is not text, or sent twice, is no origin we allow (a browser sends one).
    let mut origins = headers.get_all(http::header::ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (None, _) => None,
        (Some(value), None) => Some(value.to_str().map_err(|_| Refusal::ForeignOrigin)?),
        (Some(_), Some(_)) => return Err(Refusal::ForeignOrigin),
    };
    let allowed = |o: &str| o == policy.own_origin || policy.allowed_origins.iter().any(|a| a == o);
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(b"same-origin" | b"none") => {}
        Some(_) => {
            if !origin.is_some_and(allowed) {
                return Err(Refusal::CrossSite);
            }
        }
        None => {
            if origin.is_some_and(|o| !allowed(o)) {
                return Err(Refusal::ForeignOrigin);
            }
        }
    }
    match headers.get(policy.header) {
        Some(v) if v.as_bytes() == b"1" => Ok(()),
        _ => Err(Refusal::MissingHeader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_metadata_then_origin_then_the_header() {
        let header = http::HeaderName::from_static("x-portcullis-csrf");
        let allowed = vec!["https://app.example".to_string()];
        let policy = Policy {
            own_origin: "https://auth.example",
            allowed_origins: &allowed,
            header: &header,
        };
        type Row = (&'static [(&'static str, &'static str)], Result<(), Refusal>);
        let rows: Vec<Row> = vec![
            (&[("x-portcullis-csrf", "1")], Ok(())),
            (&[], Err(Refusal::MissingHeader)),
            (&[("x-portcullis-csrf", "0")], Err(Refusal::MissingHeader)),
            (
                &[
                    ("sec-fetch-site", "same-origin"),
                    ("x-portcullis-csrf", "1"),
                ],
                Ok(()),
            ),
            (
                &[("sec-fetch-site", "none"), ("x-portcullis-csrf", "1")],
                Ok(()),
            ),
            (
                &[("sec-fetch-site", "cross-site"), ("x-portcullis-csrf", "1")],
                Err(Refusal::CrossSite),
            ),
            (
                &[("sec-fetch-site", "same-site"), ("x-portcullis-csrf", "1")],
                Err(Refusal::CrossSite),
            ),
            (
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://evil.example"),
                    ("x-portcullis-csrf", "1"),
                ],
                Err(Refusal::CrossSite),
            ),
            (
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://app.example"),
                    ("x-portcullis-csrf", "1"),
                ],
                Ok(()),
            ),
            (
                &[
                    ("origin", "https://evil.example"),
                    ("x-portcullis-csrf", "1"),
                ],
                Err(Refusal::ForeignOrigin),
            ),
            (
                &[
                    ("origin", "https://auth.example"),
                    ("x-portcullis-csrf", "1"),
                ],
                Ok(()),
            ),
            (
                &[("origin", "null"), ("x-portcullis-csrf", "1")],
                Err(Refusal::ForeignOrigin),
            ),
            (
                &[("sec-fetch-site", "same-origin")],
                Err(Refusal::MissingHeader),
            ),
        ];
        for (i, (pairs, expected)) in rows.into_iter().enumerate() {
            let mut headers = HeaderMap::new();
            for (n, v) in pairs {
                headers.insert(*n, v.parse().unwrap());
            }
            assert_eq!(check(&headers, policy), expected, "row {i}");
        }
        // Found by fuzz/issuer_inputs: an Origin that is not text passed as if absent.
        let odd = [
            &b"https://evil.example\xe9"[..],
            b"https://auth.example\xe9",
        ];
        for origin in odd {
            let mut headers = HeaderMap::new();
            headers.insert("origin", http::HeaderValue::from_bytes(origin).unwrap());
            headers.insert("x-portcullis-csrf", http::HeaderValue::from_static("1"));
            assert_eq!(check(&headers, policy), Err(Refusal::ForeignOrigin));
            headers.insert(
                "sec-fetch-site",
                http::HeaderValue::from_static("same-origin"),
            );
            assert_eq!(check(&headers, policy), Err(Refusal::ForeignOrigin));
        }
        let mut headers = HeaderMap::new();
        headers.append(
            "origin",
            http::HeaderValue::from_static("https://auth.example"),
        );
        headers.append(
            "origin",
            http::HeaderValue::from_static("https://evil.example"),
        );
        headers.insert("x-portcullis-csrf", http::HeaderValue::from_static("1"));
        assert_eq!(check(&headers, policy), Err(Refusal::ForeignOrigin));
    }
}
