//! Pure host, path and method matchers that return a comparable score: the most specific route
//! wins and the first declared wins ties.
//!
//! Specificity, most significant first:
//! 1. host: an exact host beats a wildcard (`*.example.com`, longer suffix first), which beats
//!    a route without `host`;
//! 2. path kind: an exact path beats a template without `{*rest}`, which beats a prefix or a
//!    template ending in `{*rest}`;
//! 3. segments left to right: a literal segment beats a parameter at the first place they
//!    differ, then more segments beat fewer, then more literal bytes beat fewer.

use http::Method;

use super::path::strip_segments;

/// A route's score for one request; higher is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score {
    host: (u8, usize),
    kind: u8,
    /// Bit `63 - i` set when segment `i` is literal.
    literal_mask: u64,
    segments: usize,
    literal_bytes: usize,
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Param(String),
}

/// A path template such as `/users/{id}/posts` or `/files/{*rest}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
    /// `{*name}` at the end: zero or more further segments.
    pub rest: Option<String>,
}

/// How a route matches the (normalised) request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatcher {
    /// The path must be exactly this.
    Exact(String),
    /// The path must be this, or start with it followed by `/`. Stored without a trailing
    /// slash; `/` alone matches every path.
    Prefix(String),
    /// Segment by segment: literals equal, `{name}` any one non-empty segment, a final
    /// `{*name}` any rest (also none).
    Template(Template),
}

impl PathMatcher {
    /// Builds a prefix matcher; a trailing `/` is dropped so that `/api/` and `/api` agree.
    pub fn prefix(prefix: &str) -> PathMatcher {
        PathMatcher::Prefix(prefix.trim_end_matches('/').to_string())
    }

    /// Parses a `path:` value: a template when it has `{`, else an exact path.
    pub fn path(text: &str) -> Result<PathMatcher, String> {
        if !text.contains(['{', '}']) {
            return Ok(PathMatcher::Exact(text.to_string()));
        }
        let mut segments = Vec::new();
        let mut rest = None;
        let parts: Vec<&str> = text[1..].split('/').collect();
        let mut names: Vec<&str> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let inner = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'));
            let Some(inner) = inner else {
                if part.contains(['{', '}']) {
                    return Err(format!(
                        "segment {part:?}: a parameter must be a whole segment such as {{id}}"
                    ));
                }
                segments.push(Segment::Literal(part.to_string()));
                continue;
            };
            let (name, catch_all) = match inner.strip_prefix('*') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(format!(
                    "parameter {part:?}: expected a name of letters, digits, _ or -"
                ));
            }
            if names.contains(&name) {
                return Err(format!("parameter {{{name}}} appears twice"));
            }
            names.push(name);
            if catch_all {
                if i != parts.len() - 1 {
                    return Err(format!("{{*{name}}} must be the last segment"));
                }
                rest = Some(name.to_string());
            } else {
                segments.push(Segment::Param(name.to_string()));
            }
        }
        Ok(PathMatcher::Template(Template { segments, rest }))
    }

    /// Whether `path` matches, and how specifically (without the host part of the score).
    pub fn score(&self, path: &str, case_sensitive: bool) -> Option<Score> {
        let eq = |a: &str, b: &str| {
            if case_sensitive {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        match self {
            PathMatcher::Exact(p) => eq(p, path).then(|| {
                let n = count_segments(p);
                score(3, mask(n), n, literal_bytes(p))
            }),
            PathMatcher::Prefix(p) => strip_segments(path, p, case_sensitive).map(|_| {
                let n = count_segments(p);
                score(1, mask(n), n, literal_bytes(p))
            }),
            PathMatcher::Template(t) => t.score(path, eq),
        }
    }

    /// The value of the `index`-th parameter of a template (in declaration order, `{*rest}`
    /// last) in a path it matches, still percent-encoded.
    pub fn capture<'p>(&self, path: &'p str, index: usize) -> Option<&'p str> {
        let PathMatcher::Template(t) = self else {
            return None;
        };
        let mut seen = 0;
        let mut parts = path[1..].split('/');
        let mut consumed = 1;
        for segment in &t.segments {
            let part = parts.next()?;
            if matches!(segment, Segment::Param(_)) {
                if seen == index {
                    return Some(part);
                }
                seen += 1;
            }
            consumed += part.len() + 1;
        }
        (t.rest.is_some() && seen == index).then(|| path.get(consumed..).unwrap_or(""))
    }

    /// Names of the parameters, in the order `capture` numbers them.
    pub fn param_names(&self) -> Vec<&str> {
        match self {
            PathMatcher::Template(t) => t
                .segments
                .iter()
                .filter_map(|s| match s {
                    Segment::Param(n) => Some(n.as_str()),
                    Segment::Literal(_) => None,
                })
                .chain(t.rest.as_deref())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A key equal for two matchers that match exactly the same paths (case-folded when
    /// `case_sensitive` is false); used to find routes that shadow each other.
    pub fn shape(&self, case_sensitive: bool) -> String {
        let fold = |s: &str| {
            if case_sensitive {
                s.to_string()
            } else {
                s.to_ascii_lowercase()
            }
        };
        match self {
            PathMatcher::Exact(p) => format!("= {}", fold(p)),
            PathMatcher::Prefix(p) => format!("prefix {}", fold(p)),
            PathMatcher::Template(t) => {
                let mut out = String::new();
                for s in &t.segments {
                    out.push('/');
                    match s {
                        Segment::Literal(l) => out.push_str(&fold(l)),
                        Segment::Param(_) => out.push_str("{}"),
                    }
                }
                if t.rest.is_some() {
                    // `/a/{*rest}` matches exactly what prefix `/a` matches.
                    return format!("prefix {out}");
                }
                format!("= {out}")
            }
        }
    }
}

impl std::fmt::Display for PathMatcher {
    /// `/login` (exact), `/api/*` (prefix) or the template as written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathMatcher::Exact(p) => write!(f, "{p}"),
            PathMatcher::Prefix(p) => write!(f, "{p}/*"),
            PathMatcher::Template(t) => {
                for s in &t.segments {
                    match s {
                        Segment::Literal(l) => write!(f, "/{l}")?,
                        Segment::Param(n) => write!(f, "/{{{n}}}")?,
                    }
                }
                match &t.rest {
                    Some(rest) => write!(f, "/{{*{rest}}}"),
                    None if t.segments.is_empty() => write!(f, "/"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Template {
    fn score(&self, path: &str, eq: impl Fn(&str, &str) -> bool) -> Option<Score> {
        let mut parts = path[1..].split('/');
        let mut literal_mask = 0u64;
        let mut literal_bytes = 0;
        for (i, segment) in self.segments.iter().enumerate() {
            let part = parts.next()?;
            match segment {
                Segment::Literal(l) => {
                    if !eq(l, part) {
                        return None;
                    }
                    if i < 64 {
                        literal_mask |= 1 << (63 - i);
                    }
                    literal_bytes += l.len();
                }
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(_) => {}
            }
        }
        let kind = if self.rest.is_some() {
            1
        } else {
            if parts.next().is_some() {
                return None;
            }
            2
        };
        Some(score(
            kind,
            literal_mask,
            self.segments.len(),
            literal_bytes,
        ))
    }
}

fn score(kind: u8, literal_mask: u64, segments: usize, literal_bytes: usize) -> Score {
    Score {
        host: (0, 0),
        kind,
        literal_mask,
        segments,
        literal_bytes,
    }
}

/// Bytes of a literal path outside its `/` separators (as a template counts them).
fn literal_bytes(path: &str) -> usize {
    path.len() - path.bytes().filter(|b| *b == b'/').count()
}

fn count_segments(path: &str) -> usize {
    path.split('/').filter(|s| !s.is_empty()).count()
}

fn mask(literal_segments: usize) -> u64 {
    match literal_segments {
        0 => 0,
        n if n >= 64 => u64::MAX,
        n => !(u64::MAX >> n),
    }
}

/// The hosts a route answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host (stored lower-case, without port).
    Exact(String),
    /// Any host ending in this suffix (stored lower-case with its leading dot:
    /// `*.example.com` → `.example.com`); at least one label must precede it.
    Suffix(String),
}

impl HostPattern {
    /// Parses `api.example.com` or `*.example.com`.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let (wild, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
            return Err(format!(
                "expected a host name such as api.example.com or *.example.com (no port, no scheme), found {text:?}"
            ));
        }
        let name = name.to_ascii_lowercase();
        Ok(if wild {
            HostPattern::Suffix(format!(".{name}"))
        } else {
            HostPattern::Exact(name)
        })
    }

    /// The host score of `host` (already without port and trailing dot), if it matches.
    pub fn score(&self, host: &str) -> Option<(u8, usize)> {
        match self {
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host).then_some((2, h.len())),
            HostPattern::Suffix(s) => {
                let cut = host.len().checked_sub(s.len())?;
                (cut > 0 && host.is_char_boundary(cut) && host[cut..].eq_ignore_ascii_case(s))
                    .then_some((1, s.len()))
            }
        }
    }

    /// The pattern as written in the config.
    pub fn text(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Suffix(s) => format!("*{s}"),
        }
    }
}

/// A route's hosts; empty means any host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSet(pub Vec<HostPattern>);

impl HostSet {
    /// The best host score for `host`, `(0, 0)` for a route without hosts, `None` when it does
    /// not match (a request without a host matches only routes without hosts).
    pub fn score(&self, host: Option<&str>) -> Option<(u8, usize)> {
        if self.0.is_empty() {
            return Some((0, 0));
        }
        let host = host?;
        self.0.iter().filter_map(|p| p.score(host)).max()
    }
}

/// Adds the host part to a path score.
pub fn with_host(mut score: Score, host: (u8, usize)) -> Score {
    score.host = host;
    score
}

/// The methods a route accepts; `None` means any method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSet(pub Option<Vec<Method>>);

impl MethodSet {
    /// Whether `method` is accepted.
    pub fn allows(&self, method: &Method) -> bool {
        self.0.as_ref().is_none_or(|list| list.contains(method))
    }

    /// Whether `method` is listed by name (`ANY` lists none).
    pub fn names(&self, method: &Method) -> bool {
        self.0.as_ref().is_some_and(|list| list.contains(method))
    }

    /// Whether every method accepted by `other` is accepted here.
    pub fn covers(&self, other: &MethodSet) -> bool {
        match (&self.0, &other.0) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.iter().all(|m| mine.contains(m)),
        }
    }

    /// `GET,POST` or `ANY`.
    pub fn describe(&self) -> String {
        match &self.0 {
            None => "ANY".to_string(),
            Some(list) => list
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_and_segments(s: Option<Score>) -> Option<(u8, usize)> {
        s.map(|s| (s.kind, s.segments))
    }

    #[test]
    fn path_matcher_table() {
        let exact = PathMatcher::Exact("/login".into());
        let api = PathMatcher::prefix("/api/");
        let root = PathMatcher::prefix("/");
        let user = PathMatcher::path("/users/{id}").unwrap();
        let posts = PathMatcher::path("/users/{id}/posts/{post}").unwrap();
        let files = PathMatcher::path("/files/{*rest}").unwrap();
        type Case<'a> = (&'a PathMatcher, &'a str, Option<(u8, usize)>);
        let cases: &[Case] = &[
            (&exact, "/login", Some((3, 1))),
            (&exact, "/login/", None),
            (&exact, "/logins", None),
            (&exact, "/LOGIN", None),
            (&api, "/api", Some((1, 1))),
            (&api, "/api/", Some((1, 1))),
            (&api, "/api/orders", Some((1, 1))),
            (&api, "/apix", None),
            (&api, "/ap", None),
            (&root, "/", Some((1, 0))),
            (&root, "/anything/at/all", Some((1, 0))),
            (&user, "/users/42", Some((2, 2))),
            (&user, "/users/", None),
            (&user, "/users", None),
            (&user, "/users/42/", None),
            (&user, "/users/42/x", None),
            (&posts, "/users/7/posts/9", Some((2, 4))),
            (&posts, "/users/7/posts", None),
            (&files, "/files", Some((1, 1))),
            (&files, "/files/", Some((1, 1))),
            (&files, "/files/a/b/c.txt", Some((1, 1))),
            (&files, "/filesx", None),
        ];
        for (matcher, path, want) in cases {
            assert_eq!(
                kind_and_segments(matcher.score(path, true)),
                *want,
                "{matcher:?} {path}"
            );
        }
    }

    #[test]
    fn case_insensitive_matching() {
        let exact = PathMatcher::Exact("/Admin".into());
        let prefix = PathMatcher::prefix("/admin");
        let template = PathMatcher::path("/admin/{x}").unwrap();
        assert!(exact.score("/aDMIN", false).is_some());
        assert!(exact.score("/aDMIN", true).is_none());
        assert!(prefix.score("/ADMIN/users", false).is_some());
        assert!(prefix.score("/ADMIN/users", true).is_none());
        assert!(template.score("/ADMIN/users", false).is_some());
        assert!(prefix.score("/é", false).is_none());
        assert!(PathMatcher::prefix("/a").score("/é", false).is_none());
    }

    #[test]
    fn specificity_order() {
        let s = |m: &PathMatcher, p: &str| m.score(p, true).unwrap();
        let exact = PathMatcher::Exact("/users/me".into());
        let template = PathMatcher::path("/users/{id}").unwrap();
        let prefix_long = PathMatcher::prefix("/users/me");
        let prefix = PathMatcher::prefix("/users");
        let rest = PathMatcher::path("/users/{*rest}").unwrap();
        assert!(s(&exact, "/users/me") > s(&template, "/users/me"));
        assert!(s(&template, "/users/me") > s(&prefix_long, "/users/me"));
        assert!(s(&prefix_long, "/users/me/x") > s(&prefix, "/users/me/x"));
        assert!(s(&prefix_long, "/users/me/x") > s(&rest, "/users/me/x"));
        assert_eq!(s(&prefix, "/users/x"), s(&rest, "/users/x"));
        // Leftmost literal wins between templates.
        let a = PathMatcher::path("/users/me/{x}").unwrap();
        let b = PathMatcher::path("/users/{id}/posts").unwrap();
        assert!(s(&a, "/users/me/posts") > s(&b, "/users/me/posts"));
        // Host outranks path.
        let host = with_host(s(&prefix, "/users/x"), (2, 11));
        assert!(host > s(&exact, "/users/me"));
    }

    #[test]
    fn template_parse_errors() {
        for bad in [
            "/users/{}",
            "/users/{id",
            "/users/x{id}",
            "/files/{*rest}/x",
            "/a/{id}/{id}",
            "/a/{i d}",
        ] {
            assert!(PathMatcher::path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capture_table() {
        let posts = PathMatcher::path("/users/{id}/posts/{post}").unwrap();
        assert_eq!(posts.capture("/users/7/posts/9", 0), Some("7"));
        assert_eq!(posts.capture("/users/7/posts/9", 1), Some("9"));
        assert_eq!(posts.capture("/users/7/posts/9", 2), None);
        let files = PathMatcher::path("/files/{owner}/{*rest}").unwrap();
        assert_eq!(files.capture("/files/al/a/b.txt", 0), Some("al"));
        assert_eq!(files.capture("/files/al/a/b.txt", 1), Some("a/b.txt"));
        assert_eq!(files.capture("/files/al", 1), Some(""));
        assert_eq!(files.param_names(), vec!["owner", "rest"]);
    }

    #[test]
    fn host_table() {
        let exact = HostPattern::parse("API.example.com").unwrap();
        let wild = HostPattern::parse("*.example.com").unwrap();
        let cases: &[(&HostPattern, &str, bool)] = &[
            (&exact, "api.example.com", true),
            (&exact, "API.EXAMPLE.COM", true),
            (&exact, "www.example.com", false),
            (&wild, "a.example.com", true),
            (&wild, "a.b.example.com", true),
            (&wild, "example.com", false),
            (&wild, "evilexample.com", false),
            (&wild, ".example.com", false),
        ];
        for (p, host, want) in cases {
            assert_eq!(p.score(host).is_some(), *want, "{p:?} {host}");
        }
        for bad in ["", "a..b", "http://a", "a:80", "*", "*.", "a b"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(HostSet::default().score(None), Some((0, 0)));
        assert_eq!(HostSet(vec![exact.clone()]).score(None), None);
        assert!(
            HostSet(vec![wild.clone(), exact.clone()]).score(Some("api.example.com"))
                > HostSet(vec![wild]).score(Some("api.example.com"))
        );
    }

    #[test]
    fn method_set_table() {
        let get = MethodSet(Some(vec![Method::GET]));
        let get_post = MethodSet(Some(vec![Method::GET, Method::POST]));
        let any = MethodSet(None);
        assert!(get.allows(&Method::GET));
        assert!(!get.allows(&Method::POST));
        assert!(!get.allows(&Method::HEAD));
        assert!(any.allows(&Method::DELETE));
        assert!(any.covers(&get) && get_post.covers(&get));
        assert!(!get.covers(&get_post) && !get.covers(&any));
    }
}
