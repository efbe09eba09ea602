//! Pure path and method matchers that return a comparable score: the best score wins and the
//! first declared route wins ties.

use http::Method;

/// How a route matches the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatcher {
    /// The path must be exactly this.
    Exact(String),
    /// The path must be this, or start with it followed by `/`. Stored without a trailing
    /// slash; `/` alone matches every path.
    Prefix(String),
}

/// Higher is more specific: any exact match beats any prefix, a longer prefix beats a shorter.
pub type Score = (u8, usize);

impl PathMatcher {
    /// Builds a prefix matcher; a trailing `/` is dropped so that `/api/` and `/api` agree.
    pub fn prefix(prefix: &str) -> PathMatcher {
        PathMatcher::Prefix(prefix.trim_end_matches('/').to_string())
    }

    /// The score of `path` against this matcher, or `None` when it does not match.
    pub fn score(&self, path: &str) -> Option<Score> {
        match self {
            PathMatcher::Exact(p) => (p == path).then_some((2, p.len())),
            PathMatcher::Prefix(p) => {
                let rest = path.strip_prefix(p.as_str())?;
                (rest.is_empty() || rest.starts_with('/') || p.is_empty()).then_some((1, p.len()))
            }
        }
    }
}

/// The methods a route accepts; `None` means any method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSet(pub Option<Vec<Method>>);

impl MethodSet {
    /// Whether `method` is accepted.
    pub fn allows(&self, method: &Method) -> bool {
        self.0.as_ref().is_none_or(|list| list.contains(method))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matcher_table() {
        let exact = PathMatcher::Exact("/login".into());
        let api = PathMatcher::prefix("/api/");
        let root = PathMatcher::prefix("/");
        let cases: &[(&PathMatcher, &str, Option<Score>)] = &[
            (&exact, "/login", Some((2, 6))),
            (&exact, "/login/", None),
            (&exact, "/logins", None),
            (&api, "/api", Some((1, 4))),
            (&api, "/api/", Some((1, 4))),
            (&api, "/api/orders", Some((1, 4))),
            (&api, "/apix", None),
            (&api, "/ap", None),
            (&root, "/", Some((1, 0))),
            (&root, "/anything/at/all", Some((1, 0))),
        ];
        for (matcher, path, want) in cases {
            assert_eq!(matcher.score(path), *want, "{matcher:?} {path}");
        }
    }

    #[test]
    fn method_set_table() {
        let get = MethodSet(Some(vec![Method::GET]));
        let any = MethodSet(None);
        assert!(get.allows(&Method::GET));
        assert!(!get.allows(&Method::POST));
        assert!(!get.allows(&Method::HEAD));
        assert!(any.allows(&Method::DELETE));
    }
}
