//! `portcullis explain`: runs one request through the same steps the gateway runs — URI
//! limit, target, route match, token extraction and verification, claim policy, header
//! rewrite, response mapping — recording what each step saw instead of forwarding. There is no
//! second implementation of the rules: every decision below is made by the functions the
//! request path calls.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};
use serde::Serialize;
use serde_json::Value;

use crate::error::Denial;
use crate::error::RequestError;
use crate::http::pipeline::{self, Observer, Peer, TokenCheck, TokenSeen};
use crate::http::respond;
use crate::proxy::forwarded;
use crate::routes::matcher::Score;
use crate::routes::policy::{Condition, Policy, Trace};
use crate::routes::{Candidate, Route};
use crate::state::Snapshot;
use crate::token::Claims;

/// Who the request claims to be.
#[derive(Debug, Clone)]
pub enum Credential {
    /// Whatever the request headers carry (`Authorization`, a configured cookie or query).
    FromRequest,
    /// These claims, as if a valid token of an accepted provider carried them (no signature).
    Claims(Claims),
}

/// One route as `find` saw it.
#[derive(Debug, Clone, Serialize)]
pub struct RouteSeen {
    pub name: String,
    pub at: String,
    pub matcher: String,
    /// `chosen`, `outranked`, `method_not_allowed`, `path_mismatch` or `host_mismatch`.
    pub verdict: &'static str,
    pub note: String,
}

/// One condition as the policy evaluated it.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionSeen {
    pub depth: usize,
    pub condition: String,
    /// `pass`, `fail` or `not_evaluated`.
    pub result: &'static str,
    pub reason: Option<&'static str>,
    pub claim: Option<Value>,
    pub request_value: Option<String>,
}

impl ConditionSeen {
    /// A condition not evaluated (yet).
    fn pending(depth: usize, condition: String) -> Self {
        ConditionSeen {
            depth,
            condition,
            result: "not_evaluated",
            reason: None,
            claim: None,
            request_value: None,
        }
    }
}

/// Everything `explain` found, in pipeline order.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub request: String,
    pub host: Option<String>,
    pub path: Option<String>,
    pub routes: Vec<RouteSeen>,
    /// Routes left out of `routes` because they are far from the request (large configs).
    pub unlisted_routes: usize,
    pub route: Option<String>,
    pub policy: Option<String>,
    pub token: Option<String>,
    pub conditions: Vec<ConditionSeen>,
    /// Headers that would be added for the upstream (claims, X-Forwarded-*).
    pub forwarded_headers: Vec<(String, String)>,
    pub upstream: Option<String>,
    pub status: u16,
    pub reason: &'static str,
    pub detail: String,
}

/// Explains what the gateway would do with `method uri` carrying `headers`.
pub async fn explain(
    snapshot: &Snapshot,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    credential: Credential,
) -> Explanation {
    let mut out = Explanation {
        request: format!("{method} {uri}"),
        host: None,
        path: None,
        routes: Vec::new(),
        unlisted_routes: 0,
        route: None,
        policy: None,
        token: None,
        conditions: Vec::new(),
        forwarded_headers: Vec::new(),
        upstream: None,
        status: 200,
        reason: "allowed",
        detail: String::new(),
    };
    if let Err(err) = run(snapshot, &method, &uri, &headers, credential, &mut out).await {
        let rejection = respond::rejection(&err);
        out.status = rejection.status.as_u16();
        out.reason = rejection.code.as_str();
        out.detail = rejection.detail.to_string();
    }
    out
}

async fn run(
    snapshot: &Snapshot,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    credential: Credential,
    out: &mut Explanation,
) -> Result<(), RequestError> {
    let mut request = http::Request::new(());
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    let (parts, ()) = request.into_parts();
    let check = match credential {
        Credential::FromRequest => TokenCheck::Verify(None),
        Credential::Claims(claims) => TokenCheck::Assume(Arc::new(claims)),
    };
    let peer = Peer {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        tls: uri.scheme_str() == Some("https"),
    };
    let mut watch = Watch {
        snapshot,
        seen: Vec::new(),
        chosen: None,
        conditions: Vec::new(),
        out,
    };
    let result = pipeline::authorize(
        snapshot,
        parts,
        peer,
        forwarded::request_id(headers),
        check,
        &mut watch,
    )
    .await;
    let Watch {
        seen,
        chosen,
        conditions,
        out,
        ..
    } = watch;
    let path = out.path.clone().unwrap_or_default();
    let chosen_score = chosen.and_then(|r| {
        seen.iter().find_map(|(route, c)| match c {
            Candidate::Matched(score) if std::ptr::eq(*route, r) => Some((&*r.name, *score)),
            _ => None,
        })
    });
    let nearby = |route: &Route, c: &Candidate| {
        seen.len() <= MAX_LISTED
            || matches!(c, Candidate::Matched(_) | Candidate::MethodNotAllowed(_))
            || first_segment(&route.path.to_string()) == first_segment(&path)
    };
    out.routes = seen
        .iter()
        .filter(|(route, c)| nearby(route, c))
        .map(|(route, candidate)| describe_candidate(route, *candidate, chosen_score))
        .collect();
    out.unlisted_routes = seen.len() - out.routes.len();
    if let Some(Policy::Authenticated(Some(condition))) = chosen.map(|r| &r.policy) {
        out.conditions = conditions;
        if !out.conditions.is_empty() {
            mark_unevaluated(condition, &mut out.conditions);
        }
    }
    let authorized = result?;
    for (name, value) in &authorized.parts.headers {
        // Unchanged headers, and the random request id (it would differ on every run).
        if headers.get_all(name).iter().any(|v| v == value) || name == forwarded::X_REQUEST_ID {
            continue;
        }
        out.forwarded_headers.push((
            name.to_string(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ));
    }
    let route = authorized.route;
    let Some(upstream) = route.upstream.and_then(|i| snapshot.upstreams.get(i)) else {
        return Err(RequestError::RuleDenied);
    };
    out.upstream = Some(format!(
        "{} ({})",
        upstream.spec.name,
        upstream.spec.describe_targets()
    ));
    out.detail = format!(
        "forwarded to upstream {} as {}",
        upstream.spec.name,
        authorized.path_and_query.path()
    );
    Ok(())
}

/// What `authorize` shows explain, step by step.
struct Watch<'s, 'o> {
    snapshot: &'s Snapshot,
    seen: Vec<(&'s Route, Candidate)>,
    chosen: Option<&'s Route>,
    /// Conditions in evaluation order (pre-order), results filled in as they finish.
    conditions: Vec<ConditionSeen>,
    out: &'o mut Explanation,
}

impl Trace for Watch<'_, '_> {
    fn begin(&mut self, depth: usize, condition: &Condition) -> usize {
        self.conditions
            .push(ConditionSeen::pending(depth, condition.to_string()));
        self.conditions.len() - 1
    }

    fn end(
        &mut self,
        handle: usize,
        result: Result<(), Denial>,
        claim: Option<&Value>,
        operand: Option<&str>,
    ) {
        let Some(seen) = self.conditions.get_mut(handle) else {
            return;
        };
        seen.result = if result.is_ok() { "pass" } else { "fail" };
        seen.reason = result.err().map(|d| respond::denial_reason(d).as_str());
        seen.claim = claim.cloned();
        seen.request_value = operand.map(str::to_string);
    }
}

impl<'s> Observer<'s> for Watch<'s, '_> {
    fn wants_candidates(&self) -> bool {
        true
    }

    fn target(&mut self, host: Option<&str>, path: &str) {
        self.out.host = host.map(str::to_string);
        self.out.path = Some(path.to_string());
    }

    fn candidate(&mut self, route: &'s Route, candidate: Candidate) {
        self.seen.push((route, candidate));
    }

    fn route(&mut self, route: &'s Route) {
        self.chosen = Some(route);
        self.out.route = Some(route.name.to_string());
        self.out.policy = Some(route.policy.describe().to_string());
    }

    fn token(&mut self, seen: TokenSeen<'_>) {
        self.out.token = match seen {
            TokenSeen::NotRead => None,
            TokenSeen::Assumed => {
                Some("claims given on the command line (no signature checked)".into())
            }
            TokenSeen::Anonymous => {
                Some("none (anonymous request, allowed by policy optional)".into())
            }
            TokenSeen::Missing => Some("none".into()),
            TokenSeen::Verified(v) => {
                let provider = &self.snapshot.providers.list()[v.provider];
                Some(format!("verified by provider {}", provider.name))
            }
            TokenSeen::Refused(e) => Some(format!("refused: {e}")),
        };
    }
}

/// Above this many routes, only those near the request are listed.
const MAX_LISTED: usize = 20;

fn first_segment(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

fn describe_candidate(
    route: &Route,
    candidate: Candidate,
    chosen: Option<(&str, Score)>,
) -> RouteSeen {
    let (verdict, note) = match candidate {
        Candidate::HostMismatch => ("host_mismatch", "host does not match".to_string()),
        Candidate::PathMismatch => ("path_mismatch", "path does not match".to_string()),
        Candidate::MethodNotAllowed(_) => (
            "method_not_allowed",
            format!("path matches, method not in {}", route.methods.describe()),
        ),
        Candidate::Matched(_) if chosen.is_some_and(|(name, _)| name == &*route.name) => {
            ("chosen", "most specific match".to_string())
        }
        Candidate::Matched(score) => {
            let (name, best) = chosen.unwrap_or(("-", score));
            let why = if best > score {
                format!("matches, but {name} is more specific")
            } else {
                format!("matches as specifically as {name}, which is declared first")
            };
            ("outranked", why)
        }
    };
    RouteSeen {
        name: route.name.to_string(),
        at: if route.local.is_some() {
            format!("{}: issuer", route.origin.file.display())
        } else {
            format!("{}:{}", route.origin.file.display(), route.origin.line)
        },
        matcher: route.describe_match(),
        verdict,
        note,
    }
}

/// Adds the conditions an `any` or `all` did not need to evaluate, in tree order, so the
/// output shows the whole rule.
fn mark_unevaluated(root: &Condition, seen: &mut Vec<ConditionSeen>) {
    let mut full = Vec::new();
    let mut next = 0;
    walk(root, 0, seen, &mut next, &mut full);
    *seen = full;
}

fn walk(
    c: &Condition,
    depth: usize,
    seen: &[ConditionSeen],
    next: &mut usize,
    out: &mut Vec<ConditionSeen>,
) {
    let text = c.to_string();
    match seen.get(*next) {
        Some(s) if s.depth == depth && s.condition == text => {
            out.push(s.clone());
            *next += 1;
        }
        _ => out.push(ConditionSeen::pending(depth, text)),
    }
    match c {
        Condition::All(parts) | Condition::Any(parts) => {
            for p in parts {
                walk(p, depth + 1, seen, next, out);
            }
        }
        Condition::Not(inner) => walk(inner, depth + 1, seen, next, out),
        Condition::Claim { .. } => {}
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "request   {}", self.request)?;
        writeln!(f, "host      {}", self.host.as_deref().unwrap_or("(none)"))?;
        if let Some(path) = &self.path {
            writeln!(f, "path      {path}")?;
        }
        if !self.routes.is_empty() {
            writeln!(f, "routes")?;
            let width = self.routes.iter().map(|r| r.name.len()).max().unwrap_or(0);
            let matcher_width = self
                .routes
                .iter()
                .map(|r| r.matcher.len())
                .max()
                .unwrap_or(0);
            for r in &self.routes {
                let mark = match r.verdict {
                    "chosen" => "=>",
                    "outranked" | "method_not_allowed" => " ~",
                    _ => "  ",
                };
                writeln!(
                    f,
                    "  {mark} {:width$}  {:matcher_width$}  {}  ({})",
                    r.name, r.matcher, r.note, r.at
                )?;
            }
            if self.unlisted_routes > 0 {
                writeln!(
                    f,
                    "     ({} more routes, none near this path)",
                    self.unlisted_routes
                )?;
            }
        }
        if let Some(policy) = &self.policy {
            writeln!(f, "policy    {policy}")?;
        }
        if let Some(token) = &self.token {
            writeln!(f, "token     {token}")?;
        }
        if !self.conditions.is_empty() {
            writeln!(f, "rules")?;
            for c in &self.conditions {
                let mark = match c.result {
                    "pass" => "pass",
                    "fail" => "FAIL",
                    _ => "skip",
                };
                write!(f, "  {mark} {}{}", "  ".repeat(c.depth), c.condition)?;
                if let Some(v) = &c.request_value {
                    write!(f, " = {v:?}")?;
                }
                if c.result != "not_evaluated" && c.condition.starts_with("claim ") {
                    match &c.claim {
                        Some(v) => write!(f, "  (claim: {v})")?,
                        None => write!(f, "  (claim absent)")?,
                    }
                }
                if let Some(reason) = c.reason {
                    write!(f, "  -> {reason}")?;
                }
                writeln!(f)?;
            }
        }
        if !self.forwarded_headers.is_empty() {
            writeln!(f, "headers")?;
            for (name, value) in &self.forwarded_headers {
                writeln!(f, "  {name}: {value}")?;
            }
        }
        write!(f, "decision  {} {}", self.status, self.reason)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        writeln!(f)
    }
}
