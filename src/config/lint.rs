//! Warnings about rules that load but are probably not what the operator meant: rules another
//! rule always takes first, routes that forward without a token, claims tested in ways that
//! can never all hold, upstreams nothing uses. `portcullis check` prints them; `run` logs them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diagnostic::{Collector, Diagnostic};
use super::raw::RawConfig;
use crate::proxy::client::Upstream;
use crate::routes::policy::{ClaimTest, Condition, Operand, Policy};
use crate::routes::{Route, RouteTable};

/// Adds every lint finding for the compiled `routes` to `c.warnings`.
pub fn lint(
    routes: &RouteTable,
    upstreams: &[std::sync::Arc<Upstream>],
    raw: &RawConfig,
    c: &mut Collector,
) {
    let routes = routes.routes();
    shadowed(routes, c);
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
            if !taken.is_empty() {
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
