//! Step 4: the route table. A request is matched on method and normalised path; anything that
//! matches no route is denied and never forwarded.

pub mod matcher;
pub mod path;
pub mod policy;

use std::sync::Arc;

use http::{HeaderName, Method};

use crate::token::ClaimPath;
use matcher::{MethodSet, PathMatcher};
use policy::Policy;

/// Where a route may take its token from besides the `Authorization` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSources {
    /// Query parameter holding the token (off unless configured).
    pub query_param: Option<String>,
    /// Cookie holding the token (off unless configured).
    pub cookie: Option<String>,
}

/// A request header filled from a claim of the verified token.
#[derive(Debug, Clone)]
pub struct ClaimHeader {
    pub name: HeaderName,
    pub claim: ClaimPath,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: Arc<str>,
    pub path: PathMatcher,
    pub methods: MethodSet,
    /// Index into the snapshot's upstreams.
    pub upstream: usize,
    pub policy: Policy,
    /// Indices of the providers whose tokens this route accepts; `None` means all.
    pub providers: Option<Vec<usize>>,
    pub claim_headers: Vec<ClaimHeader>,
    /// Remove `Authorization` before forwarding (default: keep).
    pub strip_authorization: bool,
    pub token_sources: TokenSources,
}

/// Why no route was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No route's path matches.
    NoRoute,
    /// Some route's path matches, but none of those accepts the method.
    MethodNotAllowed,
}

/// The routes of one config, in declaration order.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    identity_headers: Vec<HeaderName>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        let mut identity_headers: Vec<HeaderName> = Vec::new();
        for h in routes.iter().flat_map(|r| &r.claim_headers) {
            if !identity_headers.contains(&h.name) {
                identity_headers.push(h.name.clone());
            }
        }
        RouteTable {
            routes,
            identity_headers,
        }
    }

    /// Every header some route fills from claims; removed from every incoming request.
    pub fn identity_headers(&self) -> &[HeaderName] {
        &self.identity_headers
    }

    /// The most specific route whose path matches and which accepts `method`; the first declared
    /// wins a tie.
    pub fn find(&self, method: &Method, path: &str) -> Result<&Route, Miss> {
        let mut best: Option<(matcher::Score, &Route)> = None;
        let mut path_matched = false;
        for route in &self.routes {
            let Some(score) = route.path.score(path) else {
                continue;
            };
            path_matched = true;
            if !route.methods.allows(method) {
                continue;
            }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, path: PathMatcher, methods: Option<Vec<Method>>) -> Route {
        Route {
            name: name.into(),
            path,
            methods: MethodSet(methods),
            upstream: 0,
            policy: Policy::Public,
            providers: None,
            claim_headers: Vec::new(),
            strip_authorization: false,
            token_sources: TokenSources::default(),
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
            let got = table.find(method, path).map(|r| &*r.name);
            assert_eq!(got, *want, "{method} {path}");
        }
    }
}
