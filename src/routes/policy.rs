//! Step 8: claims → allow, or a denial with a stable reason code. Pure and table-tested.

use serde_json::Value;

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
}

/// A claim condition tree, compiled from the route's `require`.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Claim { path: ClaimPath, test: ClaimTest },
}

/// One test on one claim value.
///
/// Type rules: `equals` and `one_of` compare JSON values (numbers by value), an array claim never
/// equals a scalar; `contains*` treat a scalar claim as a one-element array; `scope` reads a
/// space-separated string or an array of strings; a claim of any other type fails the test
/// (it is never an error and never a panic).
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimTest {
    Equals(Value),
    OneOf(Vec<Value>),
    Contains(Value),
    ContainsAny(Vec<Value>),
    ContainsAll(Vec<Value>),
    Scope(Vec<String>),
    Exists(bool),
}

/// Why the claims did not satisfy a condition; the reason code of the 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// A required claim is absent.
    MissingClaim,
    /// A claim is present but its value does not satisfy the test.
    ClaimMismatch,
    /// The token lacks a required OAuth scope.
    MissingScope,
}

impl Denial {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Denial::MissingClaim => "missing_claim",
            Denial::ClaimMismatch => "claim_mismatch",
            Denial::MissingScope => "missing_scope",
        }
    }
}

impl Condition {
    /// Evaluates the condition against verified claims.
    pub fn evaluate(&self, claims: &Claims) -> Result<(), Denial> {
        match self {
            Condition::All(parts) => parts.iter().try_for_each(|c| c.evaluate(claims)),
            Condition::Any(parts) => {
                let mut first = None;
                for part in parts {
                    match part.evaluate(claims) {
                        Ok(()) => return Ok(()),
                        Err(d) => {
                            first.get_or_insert(d);
                        }
                    }
                }
                Err(first.unwrap_or(Denial::ClaimMismatch))
            }
            Condition::Claim { path, test } => test.check(path.lookup(claims)),
        }
    }
}

impl ClaimTest {
    /// Applies the test to the claim value (`None` when the claim is absent).
    pub fn check(&self, value: Option<&Value>) -> Result<(), Denial> {
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
            ClaimTest::Equals(want) => json_eq(value, want),
            ClaimTest::OneOf(options) => options.iter().any(|o| json_eq(value, o)),
            ClaimTest::Contains(want) => as_items(value).iter().any(|v| json_eq(v, want)),
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
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
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

    #[test]
    fn claim_tests_table() {
        use ClaimTest::*;
        use Denial::*;
        let claims = json!({
            "sub": "alice",
            "roles": ["admin", "reader"],
            "role": "admin",
            "scope": "api:read api:write",
            "scp": ["orders.read"],
            "level": 3,
            "verified": true,
            "nothing": null,
            "org": {"id": "acme", "tier": 2},
            "https://example.com/groups": ["ops"]
        });
        let claims = claims.as_object().unwrap();
        let cases: Vec<(&str, ClaimTest, Result<(), Denial>)> = vec![
            ("sub", Equals(json!("alice")), Ok(())),
            ("sub", Equals(json!("bob")), Err(ClaimMismatch)),
            ("missing", Equals(json!("x")), Err(MissingClaim)),
            ("nothing", Equals(json!("x")), Err(MissingClaim)),
            ("level", Equals(json!(3.0)), Ok(())),
            ("level", Equals(json!("3")), Err(ClaimMismatch)),
            ("verified", Equals(json!(true)), Ok(())),
            ("roles", Equals(json!("admin")), Err(ClaimMismatch)),
            ("sub", OneOf(vec![json!("bob"), json!("alice")]), Ok(())),
            ("sub", OneOf(vec![json!("bob")]), Err(ClaimMismatch)),
            ("roles", Contains(json!("admin")), Ok(())),
            ("roles", Contains(json!("root")), Err(ClaimMismatch)),
            ("role", Contains(json!("admin")), Ok(())),
            ("org", Contains(json!("acme")), Err(ClaimMismatch)),
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
            ("org.id", Equals(json!("acme")), Ok(())),
            ("org.tier", OneOf(vec![json!(1), json!(2)]), Ok(())),
            ("https://example.com/groups", Contains(json!("ops")), Ok(())),
        ];
        for (path, test, want) in cases {
            let got = claim(path, test.clone()).evaluate(claims);
            assert_eq!(got, want, "{path} {test:?}");
        }
    }

    #[test]
    fn combinators_table() {
        let claims = json!({"sub": "alice", "roles": ["reader"]});
        let claims = claims.as_object().unwrap();
        let yes = claim("sub", ClaimTest::Equals(json!("alice")));
        let no = claim("roles", ClaimTest::Contains(json!("admin")));
        let absent = claim("tenant", ClaimTest::Exists(true));
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
                Condition::All(vec![Condition::Any(vec![no, yes.clone()]), yes]),
                Ok(()),
            ),
            (Condition::All(vec![absent]), Err(Denial::MissingClaim)),
        ];
        for (condition, want) in cases {
            assert_eq!(condition.evaluate(claims), want, "{condition:?}");
        }
    }
}
