//! Warnings about rules that load but are probably not what the operator meant: rules another
//! rule always takes first, routes that forward without a token, claims tested in ways that
//! can never all hold, upstreams nothing uses. `portcullis check` prints them; `run` logs them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diagnostic::{Collector, Diagnostic};
use super::raw::RawConfig;
use crate::proxy::client::UpstreamSpec;
use http::Method;

use crate::routes::matcher::{HostPattern, PathMatcher, Segment};
use crate::routes::policy::{ClaimTest, Condition, Operand, Policy};
use crate::routes::{Route, RouteTable};

/// Adds every lint finding for the compiled `routes` to `c.warnings`.
pub fn lint(routes: &RouteTable, upstreams: &[UpstreamSpec], raw: &RawConfig, c: &mut Collector) {
    fall_through(routes, c);
    let routes = routes.routes();
    shadowed(routes, c);
    subject_across_providers(routes, raw.providers.len(), c);
    unbound_audience(routes, raw, c);
    anonymous(routes, c);
    claim_types(routes, c);
    for (i, upstream) in upstreams.iter().enumerate() {
        if !routes.iter().any(|r| r.upstream == Some(i)) {
            let at = raw.upstreams.get(&*upstream.name).map(|s| &s.referenced);
            c.warnings.push(Diagnostic::new(
                &c.file,
                at,
                format!("upstreams.{}", upstream.name),
                "no route uses this upstream",
            ));
        }
    }
}

fn at_route(route: &Route, path: &str, message: String) -> Diagnostic {
    Diagnostic {
        file: route.origin.file.to_path_buf(),
        position: (route.origin.line > 0).then_some((route.origin.line, route.origin.column)),
        path: format!("routes[{}]{path}", route.origin.index),
        rule: Some(route.name.to_string()),
        message,
    }
}

fn place(route: &Route) -> String {
    format!(
        "{}:{} ({:?})",
        route.origin.file.display(),
        route.origin.line,
        &*route.name
    )
}

/// A later route is shadowed when an earlier one matches every request it matches with the same
/// score (same hosts, same path shape) and takes its methods: the first declared wins ties.
fn shadowed(routes: &[Route], c: &mut Collector) {
    for (j, later) in routes.iter().enumerate() {
        let mut taken: Vec<&str> = Vec::new();
        for earlier in &routes[..j] {
            if !same_hosts(earlier, later) || !covers_paths(earlier, later) {
                continue;
            }
            if earlier.methods.covers(&later.methods) {
                c.warnings.push(at_route(
                    later,
                    "",
                    format!(
                        "unreachable: route at {} has the same host and path, accepts all of its methods and is declared first",
                        place(earlier)
                    ),
                ));
                taken.clear();
                break;
            }
            if let (Some(mine), Some(theirs)) = (&later.methods.0, &earlier.methods.0) {
                for m in mine.iter().filter(|m| theirs.contains(m)) {
                    taken.push(m.as_str());
                }
            } else if let Some(theirs) = &earlier.methods.0 {
                taken.extend(theirs.iter().map(|m| m.as_str()));
            }
            // `policy: deny` for the methods the routes before it leave is the recommended fix
            // for fall-through, not a mistake.
            if !taken.is_empty() && !matches!(later.policy, Policy::Deny(_)) {
                c.warnings.push(at_route(
                    later,
                    ".methods",
                    format!(
                        "{} requests never reach this route: route at {} has the same host and path and is declared first",
                        taken.join(","),
                        place(earlier)
                    ),
                ));
                taken.clear();
            }
        }
    }
}

fn same_hosts(a: &Route, b: &Route) -> bool {
    let texts = |r: &Route| {
        let mut v: Vec<String> = r.hosts.0.iter().map(|h| h.text()).collect();
        v.sort();
        v
    };
    let (a, b) = (texts(a), texts(b));
    a.is_empty() == b.is_empty() && b.iter().all(|h| a.contains(h))
}

/// Whether `a` matches every path `b` matches, with the same score.
fn covers_paths(a: &Route, b: &Route) -> bool {
    if a.case_sensitive && b.case_sensitive {
        a.path.shape(true) == b.path.shape(true)
    } else if !a.case_sensitive {
        a.path.shape(false) == b.path.shape(false)
    } else {
        false
    }
}

/// How much a policy asks: a weaker route taking a request that a stricter route's path names
/// is how rules are bypassed. Two different claim conditions are not ordered (`None`).
fn strength(policy: &Policy) -> u8 {
    match policy {
        Policy::Public => 0,
        Policy::Optional => 1,
        Policy::Authenticated(None) => 2,
        Policy::Authenticated(Some(_)) => 3,
        Policy::Deny(_) => 4,
    }
}

/// Paths a route names, for the fall-through simulation: its exact path, its prefix and one
/// path below it, its template with every parameter filled in.
fn sample_paths(route: &Route) -> Vec<String> {
    match &route.path {
        PathMatcher::Exact(p) => vec![p.clone()],
        PathMatcher::Prefix(p) if p.is_empty() => Vec::new(),
        PathMatcher::Prefix(p) => vec![p.clone(), format!("{p}/x")],
        PathMatcher::Template(t) => {
            let mut path = String::new();
            for segment in &t.segments {
                path.push('/');
                match segment {
                    Segment::Literal(l) => path.push_str(l),
                    Segment::Param(_) => path.push('1'),
                }
            }
            if path.is_empty() {
                path.push('/');
            }
            let mut out = vec![path.clone()];
            if t.rest.is_some() {
                out.push(format!("{}/x", path.trim_end_matches('/')));
            }
            out
        }
    }
}

/// Hosts to try a route's paths with: its own (one name per pattern), and for a route without
/// `host` also every host other routes name (a host-scoped route outranks it there).
fn sample_hosts(route: &Route, all: &[Route]) -> Vec<Option<String>> {
    let name = |h: &HostPattern| match h {
        HostPattern::Exact(e) => e.clone(),
        HostPattern::Suffix(s) => format!("a{s}"),
    };
    if !route.hosts.0.is_empty() {
        return route.hosts.0.iter().map(|h| Some(name(h))).collect();
    }
    let mut out = vec![None];
    for h in all.iter().flat_map(|r| &r.hosts.0) {
        let h = Some(name(h));
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// Runs the real route selection on the requests each route names — its paths, the same paths
/// in upper case, its host and other routes' hosts, its methods and the common ones it leaves
/// out — and warns where such a request is taken by a route with a weaker policy that forwards
/// to the same upstream: a method falling through to a broader route, a template outranking a
/// prefix, a host-scoped route outranking a host-less one, or letter case alone separating two
/// routes while the backend may not care about case.
fn fall_through(table: &RouteTable, c: &mut Collector) {
    const COMMON: [Method; 8] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ];
    let routes = table.routes();
    for strict in routes {
        if strength(&strict.policy) == 0
            || strict.upstream.is_none() && !matches!(strict.policy, Policy::Deny(_))
        {
            continue;
        }
        let own: Vec<Method> = match &strict.methods.0 {
            Some(list) => list.clone(),
            None => COMMON.to_vec(),
        };
        let others: Vec<Method> = match &strict.methods.0 {
            Some(list) => COMMON
                .iter()
                .filter(|m| !list.contains(m))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let deny = matches!(strict.policy, Policy::Deny(_));
        let mut reported: Vec<*const Route> = Vec::new();
        for host in sample_hosts(strict, routes) {
            let own_host = strict.hosts.0.is_empty() == host.is_none();
            for path in sample_paths(strict) {
                let uppers = upper_case_tails(&path);
                let mut tries: Vec<(&Method, &str, Finding)> = Vec::new();
                if let Some(m) = own.first() {
                    // A deny route is meant to catch what the routes around it leave: only
                    // letter case can take its paths around it.
                    if !deny {
                        tries.push((m, &path, Finding::SameMethod));
                    }
                    if strict.case_sensitive && own_host {
                        for upper in &uppers {
                            tries.push((m, upper, Finding::Case));
                        }
                    }
                }
                if !deny {
                    for m in &others {
                        tries.push((m, &path, Finding::OtherMethod));
                    }
                }
                let mut methods: Vec<(&Route, Finding, Vec<&str>, &str)> = Vec::new();
                for (method, sample, finding) in tries {
                    let Ok(taker) = table.find(method, host.as_deref(), sample) else {
                        continue;
                    };
                    let weaker = strength(&taker.policy) < strength(&strict.policy);
                    let same_backend = taker.upstream.is_some()
                        && (taker.upstream == strict.upstream || strict.upstream.is_none());
                    // A route written for the same path shape splits the methods (or hosts)
                    // on purpose; a broader path taking the request is what goes unnoticed.
                    let same_shape = covers_paths(taker, strict) && covers_paths(strict, taker);
                    if std::ptr::eq(taker, strict) || !weaker || !same_backend || same_shape {
                        continue;
                    }
                    if reported.contains(&(taker as *const Route)) {
                        continue;
                    }
                    match methods
                        .iter_mut()
                        .find(|(r, f, _, _)| std::ptr::eq(*r, taker) && *f == finding)
                    {
                        Some((_, _, list, _)) => list.push(method.as_str()),
                        None => methods.push((taker, finding, vec![method.as_str()], sample)),
                    }
                }
                for (taker, finding, list, sample) in methods {
                    reported.push(taker as *const Route);
                    let on = match &host {
                        Some(h) => format!("{h} {path}"),
                        None => path.clone(),
                    };
                    let message = match finding {
                        Finding::OtherMethod => format!(
                            "{} {on} falls through to route at {} (policy {}); list every method this path serves in methods, or add a policy: deny route for the path",
                            list.join(","),
                            place(taker),
                            taker.policy.describe(),
                        ),
                        Finding::SameMethod if host.is_some() && strict.hosts.0.is_empty() => {
                            format!(
                                "{} {on} is taken by host-scoped route at {} (policy {}), which forwards to the same upstream; give this route the host too, or send that host to another upstream",
                                list.join(","),
                                place(taker),
                                taker.policy.describe(),
                            )
                        }
                        Finding::SameMethod => format!(
                            "{} {on} is taken by route at {} (policy {}), which is more specific for this path (a template outranks a prefix); make this route an exact path or template too, or narrow the other one",
                            list.join(","),
                            place(taker),
                            taker.policy.describe(),
                        ),
                        Finding::Case => format!(
                            "only letter case separates this route from route at {} (policy {}): {} {}{} reaches it, and many backends match paths in any case; set case_sensitive: false on this route",
                            place(taker),
                            taker.policy.describe(),
                            list.join(","),
                            host.as_deref().map(|h| format!("{h} ")).unwrap_or_default(),
                            sample,
                        ),
                    };
                    c.warnings.push(at_route(strict, "", message));
                }
            }
        }
    }
}

/// `path` with its last one, two, … segments in upper case (`/api/ADMIN`, `/API/ADMIN`): a
/// broader route's prefix may keep its own case while the rest differs.
fn upper_case_tails(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cut = path.len();
    while let Some(slash) = path[..cut].rfind('/') {
        let candidate = format!("{}{}", &path[..slash], path[slash..].to_ascii_uppercase());
        if candidate != path && !out.contains(&candidate) {
            out.push(candidate);
        }
        if slash == 0 {
            break;
        }
        cut = slash;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finding {
    SameMethod,
    OtherMethod,
    Case,
}

/// `sub` is unique only per issuer: a route that binds it to the request, or sends it to the
/// backend as the user's id, while accepting tokens of several providers lets one issuer's
/// `alice` act as another's.
fn subject_across_providers(routes: &[Route], providers: usize, c: &mut Collector) {
    for route in routes {
        let accepted = route.providers.as_ref().map_or(providers, Vec::len);
        if accepted < 2 {
            continue;
        }
        let mut binds = false;
        if let Policy::Authenticated(Some(condition)) = &route.policy {
            let mut leaves = Vec::new();
            collect_leaves(condition, &mut leaves);
            binds = leaves.iter().any(|(path, test)| {
                *path == "sub"
                    && matches!(
                        test,
                        ClaimTest::Equals(Operand::Param { .. } | Operand::Header(_))
                            | ClaimTest::Contains(Operand::Param { .. } | Operand::Header(_))
                    )
            });
        }
        let sends_sub = route
            .claim_headers
            .iter()
            .any(|h| h.claim.as_str() == "sub");
        let sends_iss = route
            .claim_headers
            .iter()
            .any(|h| h.claim.as_str() == "iss");
        if binds || (sends_sub && !sends_iss) {
            c.warnings.push(at_route(
                route,
                "",
                format!(
                    "uses sub while accepting tokens of {accepted} providers: sub is unique only per issuer; restrict providers, or add a claim header such as X-User-Issuer: iss and key users by both"
                ),
            ));
        }
    }
}

/// A provider with `audiences: none` accepts tokens issued to any application of the issuer:
/// the client must be bound somewhere, by `clients` or by every route that takes its tokens.
fn unbound_audience(routes: &[Route], raw: &RawConfig, c: &mut Collector) {
    for (i, provider) in raw.providers.iter().enumerate() {
        let p = &provider.value;
        let none = matches!(&p.audiences, super::raw::RawAudiences::Keyword(w) if w == "none");
        if !none || p.clients.is_some() {
            continue;
        }
        let binds_client = |route: &Route| {
            let Policy::Authenticated(Some(condition)) = &route.policy else {
                return false;
            };
            let mut leaves = Vec::new();
            collect_leaves(condition, &mut leaves);
            leaves.iter().any(|(path, test)| {
                matches!(*path, "client_id" | "azp")
                    && matches!(
                        test,
                        ClaimTest::Equals(Operand::Value(_)) | ClaimTest::In(_)
                    )
            })
        };
        let unbound: Vec<&str> = routes
            .iter()
            .filter(|r| !matches!(r.policy, Policy::Public | Policy::Deny(_)))
            .filter(|r| r.providers.as_ref().is_none_or(|list| list.contains(&i)))
            .filter(|r| !binds_client(r))
            .map(|r| &*r.name)
            .collect();
        if !unbound.is_empty() {
            c.warnings.push(Diagnostic::new(
                &c.file,
                Some(&provider.referenced),
                format!("providers[{i}].audiences"),
                format!(
                    "audiences: none accepts tokens the issuer gave to any of its applications, and no client is bound on {}; add clients: [...] to the provider, or require client_id (or azp) on those routes",
                    unbound.join(", ")
                ),
            ));
        }
    }
}

fn anonymous(routes: &[Route], c: &mut Collector) {
    for r in routes {
        if matches!(r.policy, Policy::Optional) {
            c.warnings.push(at_route(
                r,
                ".policy",
                "forwards requests that carry no token (policy: optional); the backend must treat a request without identity headers as anonymous, or use policy: public to say so".into(),
            ));
        }
    }
}

/// The JSON type a test expects of its claim, where it implies one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expect {
    Number,
    String,
    Bool,
    /// Holds several values (`contains_all` with two or more).
    Array,
    /// A single value (`equals`, `in`, `gt`…): never an array.
    Scalar,
}

fn expects(test: &ClaimTest) -> Vec<(Expect, &'static str)> {
    let of = |v: &Value| match v {
        Value::Number(_) => Some(Expect::Number),
        Value::String(_) => Some(Expect::String),
        Value::Bool(_) => Some(Expect::Bool),
        _ => None,
    };
    match test {
        ClaimTest::Compare(op, _) => vec![(Expect::Number, op.keyword())],
        ClaimTest::Equals(Operand::Value(v)) => of(v)
            .map(|e| vec![(e, "equals"), (Expect::Scalar, "equals")])
            .unwrap_or_default(),
        ClaimTest::In(values) => {
            let mut out = vec![(Expect::Scalar, "in")];
            let kinds: Vec<_> = values.iter().filter_map(of).collect();
            if let Some(first) = kinds.first()
                && kinds.iter().all(|k| k == first)
            {
                out.push((*first, "in"));
            }
            out
        }
        ClaimTest::ContainsAll(values) if values.len() > 1 => {
            vec![(Expect::Array, "contains_all")]
        }
        _ => Vec::new(),
    }
}

/// Claims whose registered type (RFC 7519 §4.1, RFC 8693 `scope`) an operator cannot fit.
fn registered_misuse(claim: &str, test: &ClaimTest) -> Option<&'static str> {
    let numeric = matches!(claim, "exp" | "nbf" | "iat");
    let string = matches!(claim, "iss" | "sub" | "jti");
    match test {
        ClaimTest::Regex(_) | ClaimTest::Scope(_) | ClaimTest::ContainsAll(_) if numeric => {
            Some("is a NumericDate (a number); this operator never matches it")
        }
        ClaimTest::Compare(..) if string => Some("is a string; gt/gte/lt/lte only match numbers"),
        ClaimTest::Contains(_) | ClaimTest::ContainsAny(_) | ClaimTest::ContainsAll(_)
            if claim == "scope" =>
        {
            Some(
                "is one space-separated string; contains compares the whole string, use scope: instead",
            )
        }
        ClaimTest::Equals(Operand::Value(Value::String(s)))
            if claim == "scope" && s.contains(' ') =>
        {
            Some("is one space-separated string whose order is not fixed; use scope: instead")
        }
        _ => None,
    }
}

fn claim_types(routes: &[Route], c: &mut Collector) {
    // Claim path → every (expected type, operator, route) seen.
    let mut seen: BTreeMap<String, Vec<(Expect, &'static str, &Route)>> = BTreeMap::new();
    for route in routes {
        let Policy::Authenticated(Some(condition)) = &route.policy else {
            continue;
        };
        let mut leaves = Vec::new();
        collect_leaves(condition, &mut leaves);
        for (path, test) in leaves {
            if let Some(problem) = registered_misuse(path, test) {
                c.warnings.push(at_route(
                    route,
                    ".require",
                    format!("claim {path} {problem}"),
                ));
            }
            for (expect, op) in expects(test) {
                seen.entry(path.to_string())
                    .or_default()
                    .push((expect, op, route));
            }
        }
    }
    for (claim, uses) in &seen {
        // Two different value types, or "several values" against "one value".
        let clash = |a: Expect, b: Expect| {
            use Expect::*;
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            matches!(
                (low, high),
                (Number, String) | (Number, Bool) | (String, Bool) | (Array, Scalar)
            )
        };
        let Some((i, j)) = uses.iter().enumerate().find_map(|(i, a)| {
            uses[i + 1..]
                .iter()
                .position(|b| clash(a.0, b.0))
                .map(|k| (i, i + 1 + k))
        }) else {
            continue;
        };
        let (a, b) = (&uses[i], &uses[j]);
        let name = |e: Expect| match e {
            Expect::Number => "a number",
            Expect::String => "a string",
            Expect::Bool => "a boolean",
            Expect::Array => "an array",
            Expect::Scalar => "a single value",
        };
        c.warnings.push(at_route(
            b.2,
            ".require",
            format!(
                "claim {claim} is tested as {} ({}) here but as {} ({}) at {}; a claim has one type, so one of these never matches",
                name(b.0),
                b.1,
                name(a.0),
                a.1,
                place(a.2)
            ),
        ));
    }
}

fn collect_leaves<'c>(condition: &'c Condition, out: &mut Vec<(&'c str, &'c ClaimTest)>) {
    match condition {
        Condition::All(parts) | Condition::Any(parts) => {
            parts.iter().for_each(|p| collect_leaves(p, out))
        }
        Condition::Not(inner) => collect_leaves(inner, out),
        Condition::Claim { path, test } => out.push((path.as_str(), test)),
    }
}

#[cfg(test)]
mod tests {
    /// The warnings `check` prints for a config with these routes (one upstream `app`, a second
    /// `static`, two providers).
    fn warnings(routes: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let key = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/certs/demo-signing-key.pub.pem"
        );
        let yaml = format!(
            "listeners:\n  - address: 127.0.0.1:0\nupstreams:\n  app:\n    url: http://127.0.0.1:9\n  static:\n    url: http://127.0.0.1:9\nproviders:\n  - name: a\n    issuer: https://a.example\n    audiences: [api]\n    algorithms: [RS256]\n    public_keys: [{{file: {key}}}]\n  - name: b\n    issuer: https://b.example\n    audiences: [api]\n    algorithms: [RS256]\n    public_keys: [{{file: {key}}}]\nroutes:\n{routes}"
        );
        let path = dir.path().join("gateway.yaml");
        std::fs::write(&path, yaml).unwrap();
        let config = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        config.warnings.iter().map(|w| w.message.clone()).collect()
    }

    #[test]
    fn fall_through_table() {
        // (routes, text, whether some warning contains it)
        let cases: &[(&str, &str, bool)] = &[
            // A method the strict route leaves out falls through to a broader weaker route.
            (
                "  - {name: admin, prefix: /admin, methods: [GET, POST], upstream: app, require: {claim: roles, contains: admin}}\n  - {name: site, prefix: /, upstream: app, policy: public}\n  - {name: s, prefix: /s, upstream: static, policy: public}\n",
                "PUT,PATCH,DELETE,OPTIONS,TRACE /admin falls through to route at",
                true,
            ),
            // The fix: a deny route for the path (and no complaint about the deny route).
            (
                "  - {name: admin, prefix: /admin, methods: [GET, POST], upstream: app, require: {claim: roles, contains: admin}}\n  - {name: admin-rest, prefix: /admin, policy: deny}\n  - {name: site, prefix: /, upstream: app, policy: public}\n  - {name: s, prefix: /s, upstream: static, policy: public}\n",
                "/admin",
                false,
            ),
            // A weaker route to another upstream is no bypass of this backend.
            (
                "  - {name: admin, prefix: /admin, methods: [GET], upstream: app}\n  - {name: site, prefix: /, upstream: static, policy: public}\n",
                "falls through",
                false,
            ),
            // Methods split between two routes of one path on purpose.
            (
                "  - {name: read, prefix: /docs, methods: [GET], upstream: app}\n  - {name: write, prefix: /docs, methods: [POST], upstream: app, require: {claim: roles, contains: editor}}\n",
                "falls through",
                false,
            ),
            // Only case separates the two while case_sensitive is on.
            (
                "  - {name: admin, prefix: /api/admin, upstream: app, require: {claim: roles, contains: admin}}\n  - {name: api, prefix: /api, upstream: app}\n  - {name: s, prefix: /s, upstream: static, policy: public}\n",
                "only letter case separates this route from route at",
                true,
            ),
            (
                "  - {name: admin, prefix: /api/admin, case_sensitive: false, upstream: app, require: {claim: roles, contains: admin}}\n  - {name: api, prefix: /api, upstream: app}\n  - {name: s, prefix: /s, upstream: static, policy: public}\n",
                "letter case",
                false,
            ),
            // A template outranks a prefix.
            (
                "  - {name: area-admin, prefix: /area/admin, upstream: app, require: {claim: roles, contains: admin}}\n  - {name: area, path: '/area/{section}', upstream: app, policy: public}\n  - {name: s, prefix: /s, upstream: static, policy: public}\n",
                "(a template outranks a prefix)",
                true,
            ),
            // A host-scoped weaker route on the same upstream.
            (
                "  - {name: admin, prefix: /admin, upstream: app, require: {claim: roles, contains: admin}}\n  - {name: www, host: www.example.com, prefix: /, upstream: app, policy: public}\n  - {name: s, prefix: /s, upstream: static, policy: public}\n",
                "www.example.com /admin is taken by host-scoped route at",
                true,
            ),
        ];
        for (routes, text, want) in cases {
            let found = warnings(routes);
            let got = found
                .iter()
                .any(|w| w.contains(text) && !w.contains("unused"));
            assert_eq!(got, *want, "{routes}\n{text:?} in {found:#?}");
        }
    }

    #[test]
    fn subject_across_providers_table() {
        let cases: &[(&str, bool)] = &[
            (
                "  - {name: me, path: '/users/{id}', upstream: app, require: {claim: sub, equals: {param: id}}}\n",
                true,
            ),
            (
                "  - {name: me, path: '/users/{id}', upstream: app, providers: [a], require: {claim: sub, equals: {param: id}}}\n",
                false,
            ),
            (
                "  - {name: me, prefix: /me, upstream: app, claim_headers: {X-User: sub}}\n",
                true,
            ),
            (
                "  - {name: me, prefix: /me, upstream: app, claim_headers: {X-User: sub, X-Issuer: iss}}\n",
                false,
            ),
        ];
        for (routes, want) in cases {
            let found = warnings(routes);
            let got = found
                .iter()
                .any(|w| w.contains("sub is unique only per issuer"));
            assert_eq!(got, *want, "{routes}\n{found:#?}");
        }
    }
}
