//! Step 4: the route table. A request is matched on host, normalised path and method, the most
//! specific route winning (see `matcher`); anything that matches no route is denied and never
//! forwarded.

pub mod matcher;
pub mod path;
pub mod policy;

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, Method};

use crate::metrics::RouteStats;
use crate::token::ClaimPath;
use crate::token::extract::TokenSources;
use matcher::{HostSet, MethodSet, PathMatcher, Score};
use policy::Policy;

/// A request header filled from a claim of the verified token.
#[derive(Debug, Clone)]
pub struct ClaimHeader {
    pub name: HeaderName,
    pub claim: ClaimPath,
}

/// Where a route was declared, for diagnostics, lint and `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOrigin {
    pub file: Arc<std::path::Path>,
    /// 1-based line and column of the route's first key (0 when unknown).
    pub line: u64,
    pub column: u64,
    /// Position in the file's `routes` list.
    pub index: usize,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: Arc<str>,
    /// Hosts the route answers for; empty means any.
    pub hosts: HostSet,
    pub path: PathMatcher,
    /// Compare the path case-sensitively (default true).
    pub case_sensitive: bool,
    pub methods: MethodSet,
    /// Index into the snapshot's upstreams; `None` for `policy: deny` routes and local ones.
    pub upstream: Option<usize>,
    /// Answered by the gateway itself (the issuer's endpoints) instead of an upstream.
    pub local: Option<crate::issuer::Endpoint>,
    pub policy: Policy,
    /// Indices of the providers whose tokens this route accepts; `None` means all.
    pub providers: Option<Vec<usize>>,
    pub claim_headers: Vec<ClaimHeader>,
    /// Request headers the route's conditions read (`{header: NAME}`): a `Connection` list
    /// cannot remove them, `_` spellings are removed, and two copies are refused.
    pub bound_headers: Vec<HeaderName>,
    /// Remove `Authorization` before forwarding (default: keep).
    pub strip_authorization: bool,
    pub token_sources: TokenSources,
    /// Largest request body forwarded, in bytes (`None`: no limit); larger: 413.
    pub max_body_bytes: Option<u64>,
    /// Removed from the start of the path before forwarding (whole segments).
    pub strip_prefix: Option<String>,
    /// Put in front of the path before forwarding, after `strip_prefix`.
    pub add_prefix: Option<String>,
    /// Protocols an HTTP/1.1 `Upgrade` may switch to (lower-case, e.g. `websocket`); empty:
    /// `Upgrade` is removed like any hop-by-hop header.
    pub upgrades: Vec<String>,
    /// Close a tunnel when the token that opened it expires (default false).
    pub close_at_token_expiry: bool,
    pub origin: RuleOrigin,
    /// What its requests are counted into (the registry's, by route name, once live).
    pub stats: Arc<RouteStats>,
}

impl Route {
    /// What the route matches, as `check` and `explain` print it:
    /// `api.example.com GET,HEAD /users/{id} (any case)`.
    pub fn describe_match(&self) -> String {
        let mut out = String::new();
        let hosts: Vec<String> = self.hosts.0.iter().map(|h| h.text()).collect();
        if !hosts.is_empty() {
            out.push_str(&hosts.join(","));
            out.push(' ');
        }
        out.push_str(&format!("{} {}", self.methods.describe(), self.path));
        if !self.case_sensitive {
            out.push_str(" (any case)");
        }
        out
    }

    /// The route's score for `host` and `path` (method aside), if both match.
    pub fn score(&self, host: Option<&str>, path: &str) -> Option<Score> {
        let host = self.hosts.score(host)?;
        let path = self.path.score(path, self.case_sensitive)?;
        Some(matcher::with_host(path, host))
    }
}

/// Why no route was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No route's host and path match.
    NoRoute,
    /// Some route's host and path match, but none of those accepts the method.
    MethodNotAllowed,
}

/// What `find` saw of one route (for `explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    HostMismatch,
    PathMismatch,
    MethodNotAllowed(Score),
    Matched(Score),
}

/// The routes of one config: those of the main file, then those of each rule file.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    identity_headers: Vec<HeaderName>,
    index: FirstSegmentIndex,
}

/// Narrows the routes `find` scores to those that can match the request's first path segment:
/// routes whose path starts with a literal segment are filed under it (lower-case), the rest
/// (prefix `/`, a leading `{param}`) are always scored. Only a pre-filter: every candidate is
/// still matched by `Route::score`, in declaration order.
#[derive(Debug, Clone, Default)]
struct FirstSegmentIndex {
    by_segment: HashMap<Box<str>, Vec<usize>>,
    always: Vec<usize>,
}

impl FirstSegmentIndex {
    fn new(routes: &[Route]) -> Self {
        let mut index = FirstSegmentIndex::default();
        for (i, route) in routes.iter().enumerate() {
            match first_literal(&route.path) {
                Some(segment) => index
                    .by_segment
                    .entry(segment.to_ascii_lowercase().into())
                    .or_default()
                    .push(i),
                None => index.always.push(i),
            }
        }
        index
    }

    /// Route indices worth scoring for `path`, ascending.
    fn candidates(&self, path: &str) -> impl Iterator<Item = usize> + '_ {
        let first = path[1.min(path.len())..].split('/').next().unwrap_or("");
        let filed = if first.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_segment.get(first.to_ascii_lowercase().as_str())
        } else {
            self.by_segment.get(first)
        };
        merge_ascending(filed.map_or(&[][..], Vec::as_slice), &self.always)
    }
}

/// The first path segment every path a matcher accepts starts with, if it is a literal.
fn first_literal(path: &PathMatcher) -> Option<&str> {
    match path {
        PathMatcher::Prefix(p) if p.is_empty() => None,
        PathMatcher::Exact(p) | PathMatcher::Prefix(p) => p.get(1..)?.split('/').next(),
        PathMatcher::Template(t) => match t.segments.first() {
            Some(matcher::Segment::Literal(l)) => Some(l.as_str()),
            _ => None,
        },
    }
}

/// Merges two ascending index lists into one ascending sequence.
fn merge_ascending<'a>(a: &'a [usize], b: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || match (a.get(i), b.get(j)) {
        (Some(&x), Some(&y)) if x < y => {
            i += 1;
            Some(x)
        }
        (_, Some(&y)) => {
            j += 1;
            Some(y)
        }
        (Some(&x), None) => {
            i += 1;
            Some(x)
        }
        (None, None) => None,
    })
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        let mut identity_headers: Vec<HeaderName> = Vec::new();
        for h in routes.iter().flat_map(|r| &r.claim_headers) {
            if !identity_headers.contains(&h.name) {
                identity_headers.push(h.name.clone());
            }
        }
        let index = FirstSegmentIndex::new(&routes);
        RouteTable {
            routes,
            identity_headers,
            index,
        }
    }

    /// Every header some route fills from claims; removed from every incoming request.
    pub fn identity_headers(&self) -> &[HeaderName] {
        &self.identity_headers
    }

    /// The most specific route whose host and path match and which accepts `method`; the first
    /// declared wins a tie. `host` is the request's host without port, if it has one.
    pub fn find(&self, method: &Method, host: Option<&str>, path: &str) -> Result<&Route, Miss> {
        let candidates = self.index.candidates(path);
        self.select(candidates, method, host, path, |_, _| {})
    }

    /// `find` without the index, telling `seen` what it found for every route, in declaration
    /// order (for `explain`).
    pub fn find_traced<'t>(
        &'t self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        seen: impl FnMut(&'t Route, Candidate),
    ) -> Result<&'t Route, Miss> {
        self.select(0..self.routes.len(), method, host, path, seen)
    }

    /// The one selection loop: best score wins, the first declared wins ties.
    fn select<'t>(
        &'t self,
        candidates: impl Iterator<Item = usize>,
        method: &Method,
        host: Option<&str>,
        path: &str,
        mut seen: impl FnMut(&'t Route, Candidate),
    ) -> Result<&'t Route, Miss> {
        let mut best: Option<(Score, &Route)> = None;
        let mut path_matched = false;
        for route in candidates.map(|i| &self.routes[i]) {
            let Some(host_score) = route.hosts.score(host) else {
                seen(route, Candidate::HostMismatch);
                continue;
            };
            let Some(score) = route.path.score(path, route.case_sensitive) else {
                seen(route, Candidate::PathMismatch);
                continue;
            };
            let score = matcher::with_host(score, host_score);
            path_matched = true;
            if !route.methods.allows(method) {
                seen(route, Candidate::MethodNotAllowed(score));
                continue;
            }
            seen(route, Candidate::Matched(score));
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, route));
            }
        }
        match best {
            Some((_, route)) => Ok(route),
            None if path_matched => Err(Miss::MethodNotAllowed),
            None => Err(Miss::NoRoute),
        }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Each route's stats, to be replaced by the registry's (matching is not affected).
    pub fn stats_mut(&mut self) -> impl Iterator<Item = (&str, &mut Arc<RouteStats>)> {
        self.routes.iter_mut().map(|r| (&*r.name, &mut r.stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, path: PathMatcher, methods: Option<Vec<Method>>) -> Route {
        Route {
            name: name.into(),
            hosts: HostSet::default(),
            path,
            case_sensitive: true,
            methods: MethodSet(methods),
            upstream: Some(0),
            policy: Policy::Public,
            providers: None,
            claim_headers: Vec::new(),
            bound_headers: Vec::new(),
            strip_authorization: false,
            token_sources: TokenSources::default(),
            max_body_bytes: None,
            upgrades: Vec::new(),
            close_at_token_expiry: false,
            local: None,
            strip_prefix: None,
            add_prefix: None,
            stats: RouteStats::new(),
            origin: RuleOrigin {
                file: Arc::from(std::path::Path::new("test.yaml")),
                line: 0,
                column: 0,
                index: 0,
            },
        }
    }

    #[test]
    fn find_table() {
        let table = RouteTable::new(vec![
            route("api", PathMatcher::prefix("/api"), None),
            route("api-admin", PathMatcher::prefix("/api/admin"), None),
            route(
                "api-admin-get",
                PathMatcher::prefix("/api/admin"),
                Some(vec![Method::GET]),
            ),
            route(
                "login",
                PathMatcher::Exact("/api/login".into()),
                Some(vec![Method::POST]),
            ),
            route(
                "health",
                PathMatcher::Exact("/healthz".into()),
                Some(vec![Method::GET]),
            ),
            route("first", PathMatcher::prefix("/dup"), None),
            route("second", PathMatcher::prefix("/dup"), None),
        ]);
        let cases: &[(Method, &str, Result<&str, Miss>)] = &[
            (Method::GET, "/api/orders", Ok("api")),
            (Method::GET, "/api/admin/users", Ok("api-admin")),
            (Method::POST, "/api/login", Ok("login")),
            (Method::GET, "/api/login", Ok("api")),
            (Method::GET, "/healthz", Ok("health")),
            (Method::POST, "/healthz", Err(Miss::MethodNotAllowed)),
            (Method::GET, "/healthz/x", Err(Miss::NoRoute)),
            (Method::GET, "/other", Err(Miss::NoRoute)),
            (Method::GET, "/apiary", Err(Miss::NoRoute)),
            (Method::GET, "/dup/x", Ok("first")),
        ];
        for (method, path, want) in cases {
            let got = table.find(method, None, path).map(|r| &*r.name);
            assert_eq!(got, *want, "{method} {path}");
        }
    }

    #[test]
    fn host_routes_table() {
        use matcher::HostPattern;
        let mk = |name: &str, hosts: &[&str], path: PathMatcher| {
            let mut r = route(name, path, None);
            r.hosts = HostSet(
                hosts
                    .iter()
                    .map(|h| HostPattern::parse(h).unwrap())
                    .collect(),
            );
            r
        };
        let table = RouteTable::new(vec![
            mk("any", &[], PathMatcher::prefix("/")),
            mk("wild", &["*.example.com"], PathMatcher::prefix("/")),
            mk("api", &["api.example.com"], PathMatcher::prefix("/")),
            mk(
                "api-users",
                &["api.example.com"],
                PathMatcher::path("/users/{id}").unwrap(),
            ),
            mk("deep-wild", &["*.eu.example.com"], PathMatcher::prefix("/")),
        ]);
        let cases: &[(Option<&str>, &str, &str)] = &[
            (None, "/users/1", "any"),
            (Some("other.org"), "/users/1", "any"),
            (Some("www.example.com"), "/users/1", "wild"),
            (Some("API.example.com"), "/x", "api"),
            (Some("api.example.com"), "/users/1", "api-users"),
            (Some("a.eu.example.com"), "/x", "deep-wild"),
            (Some("example.com"), "/x", "any"),
        ];
        for (host, path, want) in cases {
            let got = table.find(&Method::GET, *host, path).map(|r| &*r.name);
            assert_eq!(got, Ok(*want), "{host:?} {path}");
        }
    }

    #[test]
    fn index_agrees_with_a_full_scan() {
        let mut insensitive = route("reports", PathMatcher::Exact("/Reports".into()), None);
        insensitive.case_sensitive = false;
        let table = RouteTable::new(vec![
            route("root", PathMatcher::prefix("/"), Some(vec![Method::POST])),
            route("api", PathMatcher::prefix("/api"), None),
            route("user", PathMatcher::path("/users/{id}").unwrap(), None),
            route(
                "any-first",
                PathMatcher::path("/{tenant}/data").unwrap(),
                None,
            ),
            route("exact-root", PathMatcher::Exact("/".into()), None),
            insensitive,
            route(
                "api-get",
                PathMatcher::prefix("/api"),
                Some(vec![Method::GET]),
            ),
        ]);
        let paths = [
            "/",
            "/api",
            "/api/x",
            "/API/x",
            "/users/1",
            "/users",
            "/acme/data",
            "/api/data",
            "/reports",
            "/REPORTS",
            "/Reports/",
            "/other",
            "/users/1/x",
        ];
        for path in paths {
            for method in [Method::GET, Method::POST] {
                let indexed = table.find(&method, None, path).map(|r| &*r.name);
                let scanned = table
                    .find_traced(&method, None, path, |_, _| {})
                    .map(|r| &*r.name);
                assert_eq!(indexed, scanned, "{method} {path}");
            }
        }
    }

    /// Route shapes for the property below: prefixes, exact paths and templates that overlap.
    const SHAPES: [(&str, bool); 9] = [
        ("/", true),
        ("/a", true),
        ("/a/b", true),
        ("/a/b/c", true),
        ("/b", true),
        ("/a/b", false),
        ("/a/{id}", false),
        ("/a/{id}/c", false),
        ("/b/{id}", false),
    ];
    const PROBES: [&str; 10] = [
        "/", "/a", "/a/", "/a/b", "/a/b/c", "/a/x", "/a/x/c", "/b", "/b/1", "/c",
    ];

    fn shaped(shape: usize, methods: usize) -> Route {
        let (text, prefix) = SHAPES[shape];
        let path = if prefix {
            PathMatcher::prefix(text)
        } else {
            PathMatcher::path(text).unwrap()
        };
        let list = [None, Some(vec![Method::GET]), Some(vec![Method::POST])][methods].clone();
        route(&format!("{shape}-{methods}"), path, list)
    }

    proptest::proptest! {
        /// Which route a request gets does not depend on the order routes are written in
        /// (except between routes that tie, where the first written wins), and the index finds
        /// what a scan of every route finds.
        #[test]
        fn the_choice_depends_on_specificity_not_order(
            specs in proptest::collection::btree_set((0..SHAPES.len(), 0usize..3), 1..12),
            shift in 0usize..12,
            probes in proptest::collection::vec((0..PROBES.len(), 0usize..3), 1..24),
        ) {
            let specs: Vec<_> = specs.into_iter().collect();
            let mut rotated = specs.clone();
            rotated.rotate_left(shift % specs.len());
            let mut reversed = specs.clone();
            reversed.reverse();
            let tables = [&specs, &rotated, &reversed]
                .map(|list| RouteTable::new(list.iter().map(|&(s, m)| shaped(s, m)).collect()));
            for (probe, m) in probes {
                let (path, method) = (PROBES[probe], [Method::GET, Method::POST, Method::PUT][m].clone());
                let name = |t: &RouteTable| t.find(&method, None, path).map(|r| r.name.clone());
                let scanned = tables[0]
                    .find_traced(&method, None, path, |_, _| {})
                    .map(|r| r.name.clone());
                proptest::prop_assert_eq!(&name(&tables[0]), &scanned, "index vs scan: {} {}", method, path);
                // A tie: two allowed routes with the best score.
                let scores: Vec<_> = tables[0]
                    .routes()
                    .iter()
                    .filter(|r| r.methods.allows(&method))
                    .filter_map(|r| r.path.score(path, true))
                    .collect();
                let best = scores.iter().max();
                let tie = best.is_some_and(|b| scores.iter().filter(|s| *s == b).count() > 1);
                if !tie {
                    for t in &tables[1..] {
                        proptest::prop_assert_eq!(&name(t), &scanned, "order changed the choice: {} {} in {:?}", method, path, specs);
                    }
                }
            }
        }
    }
}
