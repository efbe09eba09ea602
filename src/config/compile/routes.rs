//! `routes:` of the main file and of each rule file: matchers, upstream, token sources,
//! path rewrites, upgrades and claim headers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use http::{HeaderName, Method};
use serde_saphyr::{Location, Spanned};

use super::conditions::compile_policy;
use crate::config::diagnostic::Collector;
use crate::config::raw::{RawPolicy, RawRoute, StringOrList};
use crate::keys::store::KeysSpec;
use crate::metrics::RouteStats;
use crate::proxy::client::UpstreamSpec;
use crate::proxy::headers::is_reserved_for_injection;
use crate::routes::matcher::{HostPattern, HostSet, MethodSet, PathMatcher};
use crate::routes::path::PathOptions;
use crate::routes::policy::Policy;
use crate::routes::{ClaimHeader, Route, RuleOrigin};
use crate::token::ClaimPath;
use crate::token::extract::TokenSources;
use crate::token::verify::Provider;

/// Compiles the routes of the main file and of each rule file, in that order.
pub(super) struct RouteCompiler<'a> {
    pub(super) upstreams: &'a HashMap<String, usize>,
    pub(super) upstream_list: &'a [UpstreamSpec],
    pub(super) providers: &'a [Provider<KeysSpec>],
    pub(super) default_case_sensitive: bool,
    pub(super) default_max_body_bytes: Option<u64>,
    pub(super) paths: PathOptions,
    /// Route name → where it was first declared.
    pub(super) names: HashMap<String, (PathBuf, u64)>,
    pub(super) out: Vec<Route>,
}

impl RouteCompiler<'_> {
    pub(super) fn compile_file(
        &mut self,
        file: &Path,
        raw: &[Spanned<RawRoute>],
        c: &mut Collector,
    ) {
        let file: Arc<Path> = Arc::from(file);
        for (i, spanned) in raw.iter().enumerate() {
            c.rule = Some(spanned.value.name.clone());
            if let Some(route) = self.compile_route(&file, i, spanned, c) {
                self.out.push(route);
            }
            c.rule = None;
        }
    }

    fn compile_route(
        &mut self,
        file: &Arc<Path>,
        i: usize,
        spanned: &Spanned<RawRoute>,
        c: &mut Collector,
    ) -> Option<Route> {
        let at = Some(&spanned.referenced);
        let r = &spanned.value;
        let key = format!("routes[{i}]");
        let line = spanned.referenced.line();
        self.check_name(r, file, line, &key, at, c);
        let hosts = compile_hosts(r.host.as_ref(), &key, at, c);
        let path = self.compile_path(r, &key, at, c);
        let methods = compile_methods(r.methods.as_deref(), &key, at, c);
        let upstream = self.resolve_upstream(r, &key, at, c);
        check_deny_fields(r, &key, at, c);
        let params = path
            .as_ref()
            .map(PathMatcher::param_names)
            .unwrap_or_default();
        let policy = compile_policy(r, &key, at, &params, c);
        self.check_token_needs_providers(policy.as_ref(), &key, at, c);
        let allowed = self.resolve_providers(r, &key, at, c);
        let claim_headers = compile_claim_headers(&r.claim_headers, &key, at, c);
        if matches!(policy, Some(Policy::Public)) && !claim_headers.is_empty() {
            c.error(
                at,
                format!("{key}.claim_headers"),
                "a public route has no claims to put into headers",
            );
        }
        check_token_sources(r, &key, at, c);
        check_rewrites(r, path.as_ref(), &key, at, c);
        self.check_upgrades(r, upstream.flatten(), &key, at, c);
        check_limits(r, &key, at, c);
        let (path, upstream, policy) = (path?, upstream?, policy?);
        let mut bound_headers = Vec::new();
        if let Policy::Authenticated(Some(condition)) = &policy {
            condition.bound_headers(&mut bound_headers);
        }
        Some(Route {
            name: r.name.as_str().into(),
            hosts,
            path,
            case_sensitive: r.case_sensitive.unwrap_or(self.default_case_sensitive),
            methods,
            upstream,
            policy,
            providers: allowed,
            claim_headers,
            bound_headers,
            strip_authorization: r.strip_authorization,
            token_sources: TokenSources {
                query_param: r.token_query_param.clone(),
                cookie: r.token_cookie.clone(),
            },
            max_body_bytes: r.max_body_bytes.or(self.default_max_body_bytes),
            upgrades: r.upgrades.iter().map(|u| u.to_ascii_lowercase()).collect(),
            close_at_token_expiry: r.close_at_token_expiry,
            local: None,
            strip_prefix: r
                .strip_prefix
                .as_deref()
                .map(|p| p.trim_end_matches('/').to_string()),
            add_prefix: r
                .add_prefix
                .as_deref()
                .map(|p| p.trim_end_matches('/').to_string()),
            stats: RouteStats::new(),
            origin: RuleOrigin {
                file: file.clone(),
                line,
                column: spanned.referenced.column(),
                index: i,
            },
        })
    }

    /// Route names are unique across the main file and every rule file.
    fn check_name(
        &mut self,
        r: &RawRoute,
        file: &Arc<Path>,
        line: u64,
        key: &str,
        at: Option<&Location>,
        c: &mut Collector,
    ) {
        if r.name.is_empty() {
            c.error(at, format!("{key}.name"), "expected a non-empty name");
        } else if let Some((first_file, first_line)) = self.names.get(&r.name) {
            c.error(
                at,
                format!("{key}.name"),
                format!(
                    "route name {:?} is already used at {}:{first_line}; every route needs its own name",
                    r.name,
                    first_file.display()
                ),
            );
        } else {
            self.names
                .insert(r.name.clone(), (file.to_path_buf(), line));
        }
    }

    /// `path` (exact or template) or `prefix`, written in the normal form requests are
    /// matched in.
    fn compile_path(
        &self,
        r: &RawRoute,
        key: &str,
        at: Option<&Location>,
        c: &mut Collector,
    ) -> Option<PathMatcher> {
        match (&r.path, &r.prefix) {
            (Some(p), None) => check_route_path(p, &self.paths, &format!("{key}.path"), at, c)
                .and_then(|p| {
                    PathMatcher::path(p)
                        .map_err(|e| c.error(at, format!("{key}.path"), e))
                        .ok()
                }),
            (None, Some(p)) => {
                if p.contains(['{', '}']) {
                    c.error(
                        at,
                        format!("{key}.prefix"),
                        "a prefix takes no parameters; use path: /a/{id}/{*rest} for a template",
                    );
                    None
                } else {
                    check_route_path(p, &self.paths, &format!("{key}.prefix"), at, c)
                        .map(PathMatcher::prefix)
                }
            }
            _ => {
                c.error(
                    at,
                    key,
                    "expected exactly one of path (exact or template such as /users/{id}) or prefix",
                );
                None
            }
        }
    }

    /// The named upstream: `Some(Some(i))`, or `Some(None)` for a `policy: deny` route;
    /// `None` when it is missing or unknown.
    fn resolve_upstream(
        &self,
        r: &RawRoute,
        key: &str,
        at: Option<&Location>,
        c: &mut Collector,
    ) -> Option<Option<usize>> {
        let deny = r.policy == Some(RawPolicy::Deny);
        match (&r.upstream, deny) {
            (Some(name), _) => {
                let found = self.upstreams.get(name).copied();
                if found.is_none() {
                    let mut known: Vec<_> = self.upstreams.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    c.error(
                        at,
                        format!("{key}.upstream"),
                        format!("no upstream named {name:?} (known: {})", known.join(", ")),
                    );
                }
                found.map(Some)
            }
            (None, true) => Some(None),
            (None, false) => {
                c.error(
                    at,
                    format!("{key}.upstream"),
                    "expected the name of an upstream (only policy: deny routes have none)",
                );
                None
            }
        }
    }

    /// A route that checks tokens needs a provider to check them with.
    fn check_token_needs_providers(
        &self,
        policy: Option<&Policy>,
        key: &str,
        at: Option<&Location>,
        c: &mut Collector,
    ) {
        let needs_token = !matches!(policy, Some(Policy::Public | Policy::Deny(_)));
        if needs_token && self.providers.is_empty() {
            c.error(
                at,
                format!("{key}.policy"),
                "this route checks tokens, but no providers are configured",
            );
        }
    }

    /// `providers:` of the route, as indices; each must name a configured provider.
    fn resolve_providers(
        &self,
        r: &RawRoute,
        key: &str,
        at: Option<&Location>,
        c: &mut Collector,
    ) -> Option<Vec<usize>> {
        r.providers.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(j, name)| {
                    let found = self.providers.iter().position(|p| &*p.name == name);
                    if found.is_none() {
                        c.error(
                            at,
                            format!("{key}.providers[{j}]"),
                            format!("no provider named {name:?}"),
                        );
                    }
                    found
                })
                .collect::<Vec<_>>()
        })
    }

    /// Upgrades are protocol tokens, and need an HTTP/1.1 upstream.
    fn check_upgrades(
        &self,
        r: &RawRoute,
        upstream: Option<usize>,
        key: &str,
        at: Option<&Location>,
        c: &mut Collector,
    ) {
        for (j, protocol) in r.upgrades.iter().enumerate() {
            let token = !protocol.is_empty()
                && protocol
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                c.error(
                    at,
                    format!("{key}.upgrades[{j}]"),
                    format!("expected a protocol name such as websocket, found {protocol:?}"),
                );
            }
        }
        let http2_upstream = upstream
            .and_then(|i| self.upstream_list.get(i))
            .is_some_and(|u| u.settings.http2);
        if !r.upgrades.is_empty() && http2_upstream {
            c.error(
                at,
                format!("{key}.upgrades"),
                "upgrades need an HTTP/1.1 upstream; this route's upstream has http2: true",
            );
        }
    }
}

/// A `policy: deny` route names no upstream; `deny_status` belongs to deny routes only.
fn check_deny_fields(r: &RawRoute, key: &str, at: Option<&Location>, c: &mut Collector) {
    let deny = r.policy == Some(RawPolicy::Deny);
    if deny && r.upstream.is_some() {
        c.error(
            at,
            format!("{key}.upstream"),
            "a policy: deny route forwards nothing: remove upstream",
        );
    }
    if r.deny_status.is_some() && !deny {
        c.error(
            at,
            format!("{key}.deny_status"),
            "deny_status needs policy: deny",
        );
    }
}

/// `token_query_param` and `token_cookie` are names that fit in a query or a cookie.
fn check_token_sources(r: &RawRoute, key: &str, at: Option<&Location>, c: &mut Collector) {
    for (field, value) in [
        ("token_query_param", &r.token_query_param),
        ("token_cookie", &r.token_cookie),
    ] {
        if value.as_deref().is_some_and(|v| {
            v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"=;&,".contains(&b))
        }) {
            c.error(
                at,
                format!("{key}.{field}"),
                "expected a parameter or cookie name",
            );
        }
    }
}

/// `strip_prefix` and `add_prefix` are normal paths, and `strip_prefix` always applies.
fn check_rewrites(
    r: &RawRoute,
    path: Option<&PathMatcher>,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) {
    for (field, value) in [
        ("strip_prefix", &r.strip_prefix),
        ("add_prefix", &r.add_prefix),
    ] {
        let Some(p) = value else { continue };
        let normal = crate::routes::path::normalize(p, &PathOptions::default())
            .is_ok_and(|n| n == p.as_str());
        if !normal || p.len() < 2 || p.contains(['{', '}', '?', '#']) {
            c.error(
                at,
                format!("{key}.{field}"),
                format!("expected a path such as /api (normalised, no parameters), found {p:?}"),
            );
        }
    }
    if let (Some(strip), Some(PathMatcher::Prefix(prefix) | PathMatcher::Exact(prefix))) =
        (&r.strip_prefix, path)
    {
        let strip = strip.trim_end_matches('/');
        let covered = crate::routes::path::strip_segments(prefix, strip, true).is_some();
        if !covered {
            c.error(
                    at,
                    format!("{key}.strip_prefix"),
                    format!("{strip:?} is not a leading part of the route's path {prefix:?}, so it would not always apply"),
                );
        }
    }
}

/// `max_body_bytes` is above 0; `close_at_token_expiry` needs upgrades.
fn check_limits(r: &RawRoute, key: &str, at: Option<&Location>, c: &mut Collector) {
    if r.max_body_bytes == Some(0) {
        c.error(
            at,
            format!("{key}.max_body_bytes"),
            "expected a number greater than 0 (omit for no limit)",
        );
    }
    if r.close_at_token_expiry && r.upgrades.is_empty() {
        c.error(
            at,
            format!("{key}.close_at_token_expiry"),
            "close_at_token_expiry applies to upgraded connections: list upgrades too",
        );
    }
}

fn compile_hosts(
    raw: Option<&StringOrList>,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> HostSet {
    let list: Vec<&str> = match raw {
        None => return HostSet::default(),
        Some(StringOrList::One(h)) => vec![h.as_str()],
        Some(StringOrList::Many(list)) => list.iter().map(String::as_str).collect(),
    };
    if list.is_empty() {
        c.error(
            at,
            format!("{key}.host"),
            "expected a host or a list of hosts, or no host key for any host",
        );
    }
    let mut out = Vec::new();
    for host in list {
        match HostPattern::parse(host) {
            Ok(p) => out.push(p),
            Err(e) => c.error(at, format!("{key}.host"), e),
        }
    }
    HostSet(out)
}

fn check_route_path<'p>(
    p: &'p str,
    options: &PathOptions,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> Option<&'p str> {
    match crate::routes::path::normalize(p, options) {
        Ok(n) if n == p => Some(p),
        Ok(n) => {
            c.error(
                at,
                key,
                format!(
                    "requests are matched in normal form, so {p:?} can never match; write {n:?}"
                ),
            );
            None
        }
        Err(problem) => {
            c.error(
                at,
                key,
                format!("{p:?} can never match a request: {problem}"),
            );
            None
        }
    }
}

fn compile_methods(
    raw: Option<&[String]>,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> MethodSet {
    let Some(list) = raw else {
        return MethodSet(None);
    };
    if list.is_empty() {
        c.error(
            at,
            format!("{key}.methods"),
            "expected a list of methods, or no methods key for any method",
        );
    }
    if list.iter().any(|m| m == "ANY") {
        if list.len() > 1 {
            c.error(at, format!("{key}.methods"), "ANY stands alone");
        }
        return MethodSet(None);
    }
    let mut methods = Vec::new();
    for (j, m) in list.iter().enumerate() {
        let valid = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase());
        match Method::from_bytes(m.as_bytes()) {
            Ok(method) if valid => methods.push(method),
            _ => c.error(
                at,
                format!("{key}.methods[{j}]"),
                format!("expected an upper-case method such as GET or POST, or ANY; found {m:?}"),
            ),
        }
    }
    // Most frameworks answer HEAD with the GET handler, so a rule for GET judges HEAD too.
    if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
        methods.push(Method::HEAD);
    }
    MethodSet(Some(methods))
}

fn compile_claim_headers(
    raw: &BTreeMap<String, String>,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> Vec<ClaimHeader> {
    let mut out = Vec::new();
    for (header, claim) in raw {
        let field = format!("{key}.claim_headers.{header}");
        let name = match HeaderName::from_str(header) {
            Ok(n) => n,
            Err(_) => {
                c.error(at, field, format!("{header:?} is not a valid header name"));
                continue;
            }
        };
        if is_reserved_for_injection(&name) {
            c.error(
                at,
                field,
                format!(
                    "{header} is managed by the gateway or by HTTP itself and cannot carry a claim"
                ),
            );
            continue;
        }
        match ClaimPath::parse(claim) {
            Ok(path) => out.push(ClaimHeader { name, claim: path }),
            Err(e) => c.error(at, field, e),
        }
    }
    out
}
