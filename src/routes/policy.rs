//! Step 8: claims → allow, or a denial with a stable reason code. Pure and table-tested; the
//! gateway and `portcullis explain` run the same `evaluate_traced`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use http::{HeaderMap, HeaderName};
use serde_json::Value;

use super::matcher::PathMatcher;
use crate::error::Denial;
use crate::percent;
use crate::token::{ClaimPath, Claims};

/// What a route asks of the caller.
#[derive(Debug, Clone)]
pub enum Policy {
    /// No token is looked at; the request is forwarded as it is.
    Public,
    /// Anonymous requests pass; a presented token must be valid.
    Optional,
    /// A valid token is required; with `Some`, its claims must also satisfy the condition.
    Authenticated(Option<Condition>),
    /// Refused outright, before any token is read; nothing is forwarded.
    Deny(DenyAs),
}

/// How a `policy: deny` route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyAs {
    /// 403 `denied_by_rule` (default).
    Forbidden,
    /// 404 `no_route`, exactly as if no route matched.
    NotFound,
}

impl Policy {
    /// The policy's name in the config, for `check` and `explain`.
    pub fn describe(&self) -> &'static str {
        match self {
            Policy::Public => "public",
            Policy::Optional => "optional",
            Policy::Authenticated(None) => "authenticated",
            Policy::Authenticated(Some(_)) => "authenticated, with claim rules",
            Policy::Deny(DenyAs::Forbidden) => "deny (403)",
            Policy::Deny(DenyAs::NotFound) => "deny (404)",
        }
    }
}

/// A claim condition tree, compiled from the route's `require`.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    /// Passes when the inner condition fails (for any reason, an absent claim included).
    Not(Box<Condition>),
    Claim {
        path: ClaimPath,
        test: ClaimTest,
    },
}

/// The right-hand side of `equals` and `contains`: a constant, or a value of the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Value(Value),
    /// The `index`-th parameter of the route's path template, percent-decoded.
    Param {
        name: String,
        index: usize,
    },
    /// A request header that is present exactly once.
    Header(HeaderName),
}

/// A regular expression that must match the whole claim value; compiled once, size-limited.
#[derive(Debug, Clone)]
pub struct Pattern {
    regex: regex::Regex,
    text: String,
}

impl Pattern {
    /// Longest pattern accepted, in bytes.
    pub const MAX_LEN: usize = 1000;

    /// Compiles `text` anchored at both ends, within fixed size limits.
    pub fn new(text: &str) -> Result<Pattern, String> {
        if text.len() > Self::MAX_LEN {
            return Err(format!("a regex may have at most {} bytes", Self::MAX_LEN));
        }
        let regex = regex::RegexBuilder::new(&format!("^(?:{text})$"))
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .nest_limit(32)
            .build()
            .map_err(|e| format!("invalid regex: {}", first_line(&e.to_string())))?;
        Ok(Pattern {
            regex,
            text: text.to_string(),
        })
    }

    fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

/// One test on one claim value.
///
/// Type rules: `equals` and `in` compare JSON values (numbers by value), an array claim never
/// equals a scalar; `contains*` treat a scalar claim as a one-element array; `scope` reads a
/// space-separated string or an array of strings; `regex` reads a string, or an array of which
/// one string must match; `gt`/`gte`/`lt`/`lte` read JSON numbers only (`"5"` is not a number);
/// a path parameter or header equals a string claim with the same text or an integer claim with
/// that decimal spelling. A claim of any other type fails the test: never an error, never a
/// panic.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimTest {
    Equals(Operand),
    In(Vec<Value>),
    Contains(Operand),
    ContainsAny(Vec<Value>),
    ContainsAll(Vec<Value>),
    Scope(Vec<String>),
    Exists(bool),
    Regex(Pattern),
    /// The claim compared to a number must give this ordering (`gt` is `[Greater]`, `gte` is
    /// `[Greater, Equal]`, …).
    Compare(Comparison, serde_json::Number),
}

/// `gt`, `gte`, `lt` or `lte`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Comparison {
    /// The operator's name in the config.
    pub fn keyword(self) -> &'static str {
        match self {
            Comparison::Greater => "gt",
            Comparison::GreaterOrEqual => "gte",
            Comparison::Less => "lt",
            Comparison::LessOrEqual => "lte",
        }
    }

    fn accepts(self, ordering: Ordering) -> bool {
        match self {
            Comparison::Greater => ordering == Ordering::Greater,
            Comparison::GreaterOrEqual => ordering != Ordering::Less,
            Comparison::Less => ordering == Ordering::Less,
            Comparison::LessOrEqual => ordering != Ordering::Greater,
        }
    }
}

/// What a condition may read from the request besides the claims.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'r> {
    /// The normalised path the route matched.
    pub path: &'r str,
    /// The matcher of that route (to read template parameters).
    pub matcher: &'r PathMatcher,
    pub headers: &'r HeaderMap,
}

impl RequestFacts<'_> {
    fn operand_text(&self, operand: &Operand) -> Option<Cow<'_, str>> {
        match operand {
            Operand::Value(_) => None,
            Operand::Param { index, .. } => {
                percent::decode(self.matcher.capture(self.path, *index)?)
            }
            Operand::Header(name) => {
                let mut values = self.headers.get_all(name).iter();
                let value = values.next()?;
                if values.next().is_some() {
                    return None;
                }
                value.to_str().ok().map(Cow::Borrowed)
            }
        }
    }
}

/// Receives each condition as it is evaluated (for `explain`); `()` ignores them.
pub trait Trace {
    /// Called before `condition` is evaluated at `depth`; returns a handle for `end`.
    fn begin(&mut self, depth: usize, condition: &Condition) -> usize;
    /// The result of the condition `begin` returned `handle` for, and for a claim test what
    /// the claim and the request operand held.
    fn end(
        &mut self,
        handle: usize,
        result: Result<(), Denial>,
        claim: Option<&Value>,
        operand: Option<&str>,
    );
}

impl Trace for () {
    #[inline]
    fn begin(&mut self, _: usize, _: &Condition) -> usize {
        0
    }
    #[inline]
    fn end(&mut self, _: usize, _: Result<(), Denial>, _: Option<&Value>, _: Option<&str>) {}
}

impl Condition {
    /// Every request header the condition reads (`{header: NAME}` bindings), each once.
    pub fn bound_headers(&self, out: &mut Vec<HeaderName>) {
        match self {
            Condition::All(parts) | Condition::Any(parts) => {
                parts.iter().for_each(|p| p.bound_headers(out))
            }
            Condition::Not(inner) => inner.bound_headers(out),
            Condition::Claim {
                test:
                    ClaimTest::Equals(Operand::Header(h)) | ClaimTest::Contains(Operand::Header(h)),
                ..
            } => {
                if !out.contains(h) {
                    out.push(h.clone());
                }
            }
            Condition::Claim { .. } => {}
        }
    }

    /// Evaluates the condition against verified claims and the request.
    pub fn evaluate(&self, claims: &Claims, facts: &RequestFacts<'_>) -> Result<(), Denial> {
        self.evaluate_traced(claims, facts, &mut (), 0)
    }

    /// `evaluate`, reporting every step to `trace`.
    pub fn evaluate_traced<T: Trace>(
        &self,
        claims: &Claims,
        facts: &RequestFacts<'_>,
        trace: &mut T,
        depth: usize,
    ) -> Result<(), Denial> {
        let handle = trace.begin(depth, self);
        let mut seen_claim = None;
        let mut seen_operand = None;
        let result = match self {
            Condition::All(parts) => parts
                .iter()
                .try_for_each(|c| c.evaluate_traced(claims, facts, trace, depth + 1)),
            Condition::Any(parts) => {
                let mut first = None;
                let mut passed = false;
                for part in parts {
                    match part.evaluate_traced(claims, facts, trace, depth + 1) {
                        Ok(()) => {
                            passed = true;
                            break;
                        }
                        Err(d) => {
                            first.get_or_insert(d);
                        }
                    }
                }
                if passed {
                    Ok(())
                } else {
                    Err(first.unwrap_or(Denial::ClaimMismatch))
                }
            }
            Condition::Not(inner) => match inner.evaluate_traced(claims, facts, trace, depth + 1) {
                Ok(()) => Err(Denial::ClaimMismatch),
                Err(_) => Ok(()),
            },
            Condition::Claim { path, test } => {
                let value = path.lookup(claims);
                seen_claim = value;
                let operand = match test {
                    ClaimTest::Equals(o) | ClaimTest::Contains(o) => facts.operand_text(o),
                    _ => None,
                };
                let result = test.check(value, operand.as_deref());
                seen_operand = operand;
                result
            }
        };
        trace.end(handle, result, seen_claim, seen_operand.as_deref());
        result
    }
}

impl ClaimTest {
    /// Applies the test to the claim value (`None` when the claim is absent). `operand` is the
    /// request value of a bound `equals`/`contains` (`None` when it is absent or ambiguous).
    pub fn check(&self, value: Option<&Value>, operand: Option<&str>) -> Result<(), Denial> {
        let value = match (self, value) {
            (ClaimTest::Exists(want), v) => {
                let present = v.is_some_and(|v| !v.is_null());
                return if present == *want {
                    Ok(())
                } else if *want {
                    Err(Denial::MissingClaim)
                } else {
                    Err(Denial::ClaimMismatch)
                };
            }
            (ClaimTest::Scope(_), None) => return Err(Denial::MissingScope),
            (_, None) | (_, Some(Value::Null)) => return Err(Denial::MissingClaim),
            (_, Some(v)) => v,
        };
        let ok = match self {
            ClaimTest::Equals(Operand::Value(want)) => json_eq(value, want),
            ClaimTest::Equals(_) => operand.is_some_and(|text| text_eq(value, text)),
            ClaimTest::In(options) => options.iter().any(|o| json_eq(value, o)),
            ClaimTest::Contains(Operand::Value(want)) => {
                as_items(value).iter().any(|v| json_eq(v, want))
            }
            ClaimTest::Contains(_) => {
                operand.is_some_and(|text| as_items(value).iter().any(|v| text_eq(v, text)))
            }
            ClaimTest::ContainsAny(wants) => {
                let items = as_items(value);
                wants.iter().any(|w| items.iter().any(|v| json_eq(v, w)))
            }
            ClaimTest::ContainsAll(wants) => {
                let items = as_items(value);
                wants.iter().all(|w| items.iter().any(|v| json_eq(v, w)))
            }
            ClaimTest::Scope(required) => {
                let granted = |s: &str| match value {
                    Value::String(text) => text.split(' ').any(|g| g == s),
                    Value::Array(items) => items.iter().any(|g| g.as_str() == Some(s)),
                    _ => false,
                };
                if required.iter().all(|s| granted(s)) {
                    return Ok(());
                }
                return Err(Denial::MissingScope);
            }
            ClaimTest::Regex(pattern) => match value {
                Value::String(text) => pattern.is_match(text),
                Value::Array(items) => items
                    .iter()
                    .any(|v| v.as_str().is_some_and(|t| pattern.is_match(t))),
                _ => false,
            },
            ClaimTest::Compare(op, bound) => match value {
                Value::Number(n) => compare_numbers(n, bound).is_some_and(|o| op.accepts(o)),
                _ => false,
            },
            ClaimTest::Exists(_) => unreachable!("handled above"),
        };
        if ok {
            Ok(())
        } else {
            Err(Denial::ClaimMismatch)
        }
    }
}

/// A scalar claim is seen as a one-element array by the `contains*` tests.
fn as_items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        other => std::slice::from_ref(other),
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        _ => a == b,
    }
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => match (a.as_u64(), b.as_u64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
    }
}

/// A claim equals request text when it is a string with that text or an integer whose
/// canonical decimal spelling it is (`42`, never `+42`, `042` or `-0`): a backend that reads the
/// text as it is must see the same value the rule compared.
fn text_eq(claim: &Value, text: &str) -> bool {
    match claim {
        Value::String(s) => s == text,
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            canonical_integer(text) && n.to_string() == text
        }
        _ => false,
    }
}

/// `0`, or an optional `-` and digits without a leading zero.
fn canonical_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" && digits.len() == text.len() || !digits.starts_with('0'))
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Value(v) => write!(f, "{v}"),
            Operand::Param { name, .. } => write!(f, "path parameter {{{name}}}"),
            Operand::Header(h) => write!(f, "header {h}"),
        }
    }
}

fn list(values: &[Value]) -> String {
    let items: Vec<String> = values.iter().map(Value::to_string).collect();
    format!("[{}]", items.join(", "))
}

impl fmt::Display for Condition {
    /// One line: `all`, `any`, `not`, or `claim roles contains "admin"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::All(_) => write!(f, "all"),
            Condition::Any(_) => write!(f, "any"),
            Condition::Not(_) => write!(f, "not"),
            Condition::Claim { path, test } => {
                write!(f, "claim {} ", path.as_str())?;
                match test {
                    ClaimTest::Equals(o) => write!(f, "equals {o}"),
                    ClaimTest::In(v) => write!(f, "in {}", list(v)),
                    ClaimTest::Contains(o) => write!(f, "contains {o}"),
                    ClaimTest::ContainsAny(v) => write!(f, "contains_any {}", list(v)),
                    ClaimTest::ContainsAll(v) => write!(f, "contains_all {}", list(v)),
                    ClaimTest::Scope(s) => write!(f, "scope {:?}", s.join(" ")),
                    ClaimTest::Exists(b) => write!(f, "exists {b}"),
                    ClaimTest::Regex(p) => write!(f, "regex {:?}", p.text),
                    ClaimTest::Compare(op, n) => write!(f, "{} {n}", op.keyword()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(path: &str, test: ClaimTest) -> Condition {
        Condition::Claim {
            path: ClaimPath::parse(path).unwrap(),
            test,
        }
    }

    fn value(v: Value) -> Operand {
        Operand::Value(v)
    }

    fn number(v: Value) -> serde_json::Number {
        match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        }
    }

    fn no_request() -> (PathMatcher, HeaderMap) {
        (PathMatcher::Exact("/".into()), HeaderMap::new())
    }

    #[test]
    fn claim_tests_table() {
        use ClaimTest::*;
        use Comparison::*;
        use Denial::*;
        let claims = json!({
            "sub": "alice",
            "roles": ["admin", "reader"],
            "role": "admin",
            "scope": "api:read api:write",
            "scp": ["orders.read"],
            "level": 3,
            "big": 18446744073709551615u64,
            "ratio": 0.5,
            "level_text": "3",
            "verified": true,
            "nothing": null,
            "email": "alice@example.com",
            "groups": ["team-a", "ops"],
            "org": {"id": "acme", "tier": 2},
            "https://example.com/groups": ["ops"]
        });
        let claims = claims.as_object().unwrap();
        let re = |p: &str| Regex(Pattern::new(p).unwrap());
        let cases: Vec<(&str, ClaimTest, Result<(), Denial>)> = vec![
            ("sub", Equals(value(json!("alice"))), Ok(())),
            ("sub", Equals(value(json!("bob"))), Err(ClaimMismatch)),
            ("missing", Equals(value(json!("x"))), Err(MissingClaim)),
            ("nothing", Equals(value(json!("x"))), Err(MissingClaim)),
            ("level", Equals(value(json!(3.0))), Ok(())),
            ("level", Equals(value(json!("3"))), Err(ClaimMismatch)),
            ("verified", Equals(value(json!(true))), Ok(())),
            ("roles", Equals(value(json!("admin"))), Err(ClaimMismatch)),
            ("sub", In(vec![json!("bob"), json!("alice")]), Ok(())),
            ("sub", In(vec![json!("bob")]), Err(ClaimMismatch)),
            ("roles", Contains(value(json!("admin"))), Ok(())),
            ("roles", Contains(value(json!("root"))), Err(ClaimMismatch)),
            ("role", Contains(value(json!("admin"))), Ok(())),
            ("org", Contains(value(json!("acme"))), Err(ClaimMismatch)),
            (
                "roles",
                ContainsAny(vec![json!("x"), json!("reader")]),
                Ok(()),
            ),
            ("roles", ContainsAny(vec![json!("x")]), Err(ClaimMismatch)),
            (
                "roles",
                ContainsAll(vec![json!("admin"), json!("reader")]),
                Ok(()),
            ),
            (
                "roles",
                ContainsAll(vec![json!("admin"), json!("x")]),
                Err(ClaimMismatch),
            ),
            ("scope", Scope(vec!["api:read".into()]), Ok(())),
            (
                "scope",
                Scope(vec!["api:read".into(), "api:write".into()]),
                Ok(()),
            ),
            ("scope", Scope(vec!["api".into()]), Err(MissingScope)),
            ("scope", Scope(vec!["api:admin".into()]), Err(MissingScope)),
            ("scp", Scope(vec!["orders.read".into()]), Ok(())),
            ("level", Scope(vec!["3".into()]), Err(MissingScope)),
            ("missing", Scope(vec!["a".into()]), Err(MissingScope)),
            ("sub", Exists(true), Ok(())),
            ("missing", Exists(true), Err(MissingClaim)),
            ("nothing", Exists(true), Err(MissingClaim)),
            ("missing", Exists(false), Ok(())),
            ("sub", Exists(false), Err(ClaimMismatch)),
            ("org.id", Equals(value(json!("acme"))), Ok(())),
            ("org.tier", In(vec![json!(1), json!(2)]), Ok(())),
            (
                "https://example.com/groups",
                Contains(value(json!("ops"))),
                Ok(()),
            ),
            ("email", re(r"[^@]+@example\.com"), Ok(())),
            ("email", re("example"), Err(ClaimMismatch)),
            ("email", re(r"alice@example\.co"), Err(ClaimMismatch)),
            ("groups", re("team-.*"), Ok(())),
            ("roles", re("team-.*"), Err(ClaimMismatch)),
            ("level", re("3"), Err(ClaimMismatch)),
            ("org", re(".*"), Err(ClaimMismatch)),
            ("missing", re(".*"), Err(MissingClaim)),
            ("level", Compare(Greater, number(json!(2))), Ok(())),
            (
                "level",
                Compare(Greater, number(json!(3))),
                Err(ClaimMismatch),
            ),
            ("level", Compare(GreaterOrEqual, number(json!(3))), Ok(())),
            ("level", Compare(Less, number(json!(3.5))), Ok(())),
            (
                "level",
                Compare(LessOrEqual, number(json!(2))),
                Err(ClaimMismatch),
            ),
            ("ratio", Compare(Less, number(json!(1))), Ok(())),
            ("big", Compare(Greater, number(json!(i64::MAX))), Ok(())),
            (
                "level_text",
                Compare(Greater, number(json!(1))),
                Err(ClaimMismatch),
            ),
            (
                "roles",
                Compare(Greater, number(json!(1))),
                Err(ClaimMismatch),
            ),
            (
                "missing",
                Compare(Greater, number(json!(1))),
                Err(MissingClaim),
            ),
        ];
        let (matcher, headers) = no_request();
        let facts = RequestFacts {
            path: "/",
            matcher: &matcher,
            headers: &headers,
        };
        for (path, test, want) in cases {
            let got = claim(path, test.clone()).evaluate(claims, &facts);
            assert_eq!(got, want, "{path} {test:?}");
        }
    }

    #[test]
    fn bindings_table() {
        let claims = json!({
            "sub": "alice@example.com",
            "uid": 42,
            "tenant": "acme",
            "tenants": ["acme", "globex"],
            "flag": true
        });
        let claims = claims.as_object().unwrap();
        let matcher = PathMatcher::path("/users/{id}/orgs/{org}").unwrap();
        let param = |name: &str, index| Operand::Param {
            name: name.into(),
            index,
        };
        let tenant = Operand::Header(HeaderName::from_static("x-tenant"));
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", "acme".parse().unwrap());
        let mut two = HeaderMap::new();
        two.append("x-tenant", "acme".parse().unwrap());
        two.append("x-tenant", "globex".parse().unwrap());
        let empty = HeaderMap::new();
        use ClaimTest::*;
        type Case<'a> = (
            &'a str,
            &'a str,
            ClaimTest,
            &'a HeaderMap,
            Result<(), Denial>,
        );
        let cases: Vec<Case> = vec![
            (
                "sub",
                "/users/alice%40example.com/orgs/acme",
                Equals(param("id", 0)),
                &empty,
                Ok(()),
            ),
            (
                "sub",
                "/users/alice@example.com/orgs/acme",
                Equals(param("id", 0)),
                &empty,
                Ok(()),
            ),
            (
                "sub",
                "/users/bob/orgs/acme",
                Equals(param("id", 0)),
                &empty,
                Err(Denial::ClaimMismatch),
            ),
            (
                "uid",
                "/users/42/orgs/acme",
                Equals(param("id", 0)),
                &empty,
                Ok(()),
            ),
            (
                "uid",
                "/users/042x/orgs/acme",
                Equals(param("id", 0)),
                &empty,
                Err(Denial::ClaimMismatch),
            ),
        ];
        // An integer claim matches only its canonical decimal spelling.
        let cases: Vec<Case> = cases
            .into_iter()
            .chain(
                ["+42", "042", "42.0", "%2042", "0x2a", "-0", "--42", "42e0"].map(|p| {
                    (
                        "uid",
                        Box::leak(format!("/users/{p}/orgs/acme").into_boxed_str()) as &str,
                        Equals(param("id", 0)),
                        &empty,
                        Err(Denial::ClaimMismatch),
                    )
                }),
            )
            .collect();
        let mut cases = cases;
        cases.extend(vec![
            (
                "flag",
                "/users/true/orgs/acme",
                Equals(param("id", 0)),
                &empty,
                Err(Denial::ClaimMismatch),
            ),
            (
                "tenants",
                "/users/x/orgs/globex",
                Contains(param("org", 1)),
                &empty,
                Ok(()),
            ),
            (
                "tenants",
                "/users/x/orgs/initech",
                Contains(param("org", 1)),
                &empty,
                Err(Denial::ClaimMismatch),
            ),
            (
                "tenant",
                "/users/x/orgs/acme",
                Equals(tenant.clone()),
                &headers,
                Ok(()),
            ),
            (
                "tenant",
                "/users/x/orgs/acme",
                Equals(tenant.clone()),
                &empty,
                Err(Denial::ClaimMismatch),
            ),
            (
                "tenant",
                "/users/x/orgs/acme",
                Equals(tenant.clone()),
                &two,
                Err(Denial::ClaimMismatch),
            ),
            (
                "missing",
                "/users/x/orgs/acme",
                Equals(tenant.clone()),
                &headers,
                Err(Denial::MissingClaim),
            ),
            (
                "tenants",
                "/users/x/orgs/acme",
                Contains(tenant),
                &headers,
                Ok(()),
            ),
        ]);
        for (path, request_path, test, headers, want) in cases {
            let facts = RequestFacts {
                path: request_path,
                matcher: &matcher,
                headers,
            };
            let got = claim(path, test.clone()).evaluate(claims, &facts);
            assert_eq!(got, want, "{path} {test:?} {request_path}");
        }
    }

    #[test]
    fn combinators_table() {
        let claims = json!({"sub": "alice", "roles": ["reader"]});
        let claims = claims.as_object().unwrap();
        let yes = claim("sub", ClaimTest::Equals(value(json!("alice"))));
        let no = claim("roles", ClaimTest::Contains(value(json!("admin"))));
        let absent = claim("tenant", ClaimTest::Exists(true));
        let not = |c: &Condition| Condition::Not(Box::new(c.clone()));
        let cases = vec![
            (Condition::All(vec![yes.clone(), yes.clone()]), Ok(())),
            (
                Condition::All(vec![yes.clone(), no.clone()]),
                Err(Denial::ClaimMismatch),
            ),
            (Condition::Any(vec![no.clone(), yes.clone()]), Ok(())),
            (
                Condition::Any(vec![absent.clone(), no.clone()]),
                Err(Denial::MissingClaim),
            ),
            (
                Condition::All(vec![
                    Condition::Any(vec![no.clone(), yes.clone()]),
                    yes.clone(),
                ]),
                Ok(()),
            ),
            (
                Condition::All(vec![absent.clone()]),
                Err(Denial::MissingClaim),
            ),
            (not(&no), Ok(())),
            (not(&yes), Err(Denial::ClaimMismatch)),
            (not(&absent), Ok(())),
            (not(&not(&yes)), Ok(())),
        ];
        let (matcher, headers) = no_request();
        let facts = RequestFacts {
            path: "/",
            matcher: &matcher,
            headers: &headers,
        };
        for (condition, want) in cases {
            assert_eq!(condition.evaluate(claims, &facts), want, "{condition:?}");
        }
    }

    #[test]
    fn regex_limits() {
        assert!(Pattern::new("(").is_err());
        assert!(Pattern::new(&"a".repeat(Pattern::MAX_LEN + 1)).is_err());
        // Compiles to far more than the size limit.
        assert!(Pattern::new(r"(?:\w{100}){100}").is_err());
        assert!(Pattern::new("team-[a-z]+").is_ok());
    }
}
