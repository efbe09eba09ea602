//! `policy:` and `require:`: the claim conditions of a route.

use std::str::FromStr;

use http::HeaderName;
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use crate::config::diagnostic::Collector;
use crate::config::raw::{RawCondition, RawPolicy, RawRoute, StringOrList};
use crate::routes::policy::{ClaimTest, Comparison, Condition, DenyAs, Operand, Pattern, Policy};
use crate::token::ClaimPath;

pub(super) fn compile_policy(
    r: &RawRoute,
    key: &str,
    at: Option<&Location>,
    params: &[&str],
    c: &mut Collector,
) -> Option<Policy> {
    let kind = r.policy.unwrap_or(RawPolicy::Authenticated);
    match (kind, &r.require) {
        (RawPolicy::Public, None) => {
            if r.providers.is_some() || r.token_query_param.is_some() || r.token_cookie.is_some() {
                c.error(at, key.to_string(), "a public route reads no token: remove providers, token_query_param and token_cookie");
            }
            Some(Policy::Public)
        }
        (RawPolicy::Deny, None) => {
            if r.providers.is_some()
                || r.token_query_param.is_some()
                || r.token_cookie.is_some()
                || !r.claim_headers.is_empty()
                || r.strip_authorization
                || !r.upgrades.is_empty()
            {
                c.error(at, key.to_string(), "a policy: deny route reads no token and forwards nothing: remove providers, token_query_param, token_cookie, claim_headers, strip_authorization and upgrades");
            }
            match r.deny_status {
                None | Some(403) => Some(Policy::Deny(DenyAs::Forbidden)),
                Some(404) => Some(Policy::Deny(DenyAs::NotFound)),
                Some(other) => {
                    c.error(
                        at,
                        format!("{key}.deny_status"),
                        format!("expected 403 or 404, found {other}"),
                    );
                    None
                }
            }
        }
        (RawPolicy::Optional, None) => Some(Policy::Optional),
        (RawPolicy::Authenticated, None) => Some(Policy::Authenticated(None)),
        (RawPolicy::Authenticated, Some(cond)) => {
            compile_condition(cond, &format!("{key}.require"), params, c)
                .map(|c| Policy::Authenticated(Some(c)))
        }
        (_, Some(cond)) => {
            c.error(
                Some(&cond.referenced),
                format!("{key}.require"),
                "require needs policy: authenticated (the default)",
            );
            None
        }
    }
}

const OPERATORS: &str =
    "equals, in, contains, contains_any, contains_all, scope, exists, regex, gt, gte, lt, lte";

fn compile_condition(
    spanned: &Spanned<RawCondition>,
    key: &str,
    params: &[&str],
    c: &mut Collector,
) -> Option<Condition> {
    let at = Some(&spanned.referenced);
    let raw = &spanned.value;
    let operators = present_operators(raw);
    let combinators = raw.all.is_some() as u8 + raw.any.is_some() as u8 + raw.not.is_some() as u8;
    if combinators > 0 {
        if combinators > 1 || !operators.is_empty() || raw.claim.is_some() {
            c.error(
                at,
                key,
                "all, any and not each stand alone: put the claim tests inside them",
            );
            return None;
        }
        return compile_combinator(raw, key, at, params, c);
    }
    let Some(claim) = &raw.claim else {
        c.error(
            at,
            key,
            format!("expected claim with one of {OPERATORS}, or all/any/not"),
        );
        return None;
    };
    let path = match ClaimPath::parse(claim) {
        Ok(p) => p,
        Err(e) => {
            c.error(at, format!("{key}.claim"), e);
            return None;
        }
    };
    let [field] = operators[..] else {
        let found = if operators.is_empty() {
            "none".to_string()
        } else {
            operators.join(", ")
        };
        c.error(
            at,
            key,
            format!("expected exactly one of {OPERATORS} beside claim, found {found}"),
        );
        return None;
    };
    let test = compile_claim_test(raw, field, &format!("{key}.{field}"), at, params, c)?;
    Some(Condition::Claim { path, test })
}

/// The operator keys a condition has.
fn present_operators(raw: &RawCondition) -> Vec<&'static str> {
    [
        ("equals", raw.equals.is_some()),
        ("in", raw.in_.is_some()),
        ("one_of", raw.one_of.is_some()),
        ("contains", raw.contains.is_some()),
        ("contains_any", raw.contains_any.is_some()),
        ("contains_all", raw.contains_all.is_some()),
        ("scope", raw.scope.is_some()),
        ("exists", raw.exists.is_some()),
        ("regex", raw.regex.is_some()),
        ("gt", raw.gt.is_some()),
        ("gte", raw.gte.is_some()),
        ("lt", raw.lt.is_some()),
        ("lte", raw.lte.is_some()),
    ]
    .iter()
    .filter(|(_, present)| *present)
    .map(|(name, _)| *name)
    .collect()
}

/// `not`, or `all` / `any` of one or more conditions.
fn compile_combinator(
    raw: &RawCondition,
    key: &str,
    at: Option<&Location>,
    params: &[&str],
    c: &mut Collector,
) -> Option<Condition> {
    if let Some(inner) = &raw.not {
        return compile_condition(inner, &format!("{key}.not"), params, c)
            .map(|inner| Condition::Not(Box::new(inner)));
    }
    let (name, list) = match (&raw.all, &raw.any) {
        (Some(list), _) => ("all", list),
        (_, Some(list)) => ("any", list),
        _ => return None,
    };
    if list.is_empty() {
        c.error(
            at,
            format!("{key}.{name}"),
            "expected one or more conditions",
        );
        return None;
    }
    // Every part is compiled, so each wrong one gets its own error.
    let parts: Vec<_> = list
        .iter()
        .enumerate()
        .map(|(i, item)| compile_condition(item, &format!("{key}.{name}[{i}]"), params, c))
        .collect();
    let parts: Vec<_> = parts.into_iter().collect::<Option<_>>()?;
    Some(if name == "all" {
        Condition::All(parts)
    } else {
        Condition::Any(parts)
    })
}

/// The test of operator `field` (one of `OPERATORS`) on a claim; `key` names the operator.
fn compile_claim_test(
    raw: &RawCondition,
    field: &str,
    key: &str,
    at: Option<&Location>,
    params: &[&str],
    c: &mut Collector,
) -> Option<ClaimTest> {
    let list = |values: &Vec<Value>, c: &mut Collector| check_list(values, key, at, c);
    match field {
        "equals" | "contains" => {
            let value = raw.equals.as_ref().or(raw.contains.as_ref())?;
            let operand = match value {
                Value::Object(map) => compile_binding(map, key, at, params, c),
                v => check_scalar(v, key, at, c).then(|| Operand::Value(v.clone())),
            }?;
            Some(if field == "equals" {
                ClaimTest::Equals(operand)
            } else {
                ClaimTest::Contains(operand)
            })
        }
        "in" | "one_of" => list(raw.in_.as_ref().or(raw.one_of.as_ref())?, c).map(ClaimTest::In),
        "contains_any" => list(raw.contains_any.as_ref()?, c).map(ClaimTest::ContainsAny),
        "contains_all" => list(raw.contains_all.as_ref()?, c).map(ClaimTest::ContainsAll),
        "scope" => compile_scopes(raw.scope.as_ref()?, key, at, c).map(ClaimTest::Scope),
        "exists" => raw.exists.map(ClaimTest::Exists),
        "regex" => match Pattern::new(raw.regex.as_deref()?) {
            Ok(p) => Some(ClaimTest::Regex(p)),
            Err(e) => {
                c.error(at, key, e);
                None
            }
        },
        _ => {
            let (op, n) = match field {
                "gt" => (Comparison::Greater, raw.gt.as_ref()),
                "gte" => (Comparison::GreaterOrEqual, raw.gte.as_ref()),
                "lt" => (Comparison::Less, raw.lt.as_ref()),
                _ => (Comparison::LessOrEqual, raw.lte.as_ref()),
            };
            n.map(|n| ClaimTest::Compare(op, n.clone()))
        }
    }
}

/// A value compared with a claim is a string, number or boolean.
fn check_scalar(v: &Value, key: &str, at: Option<&Location>, c: &mut Collector) -> bool {
    let ok = matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    if !ok {
        let hint = if v.is_array() {
            " (for a list, use in, contains_any or contains_all)"
        } else if v.is_object() {
            " (or {param: NAME} / {header: NAME} for equals and contains)"
        } else {
            ""
        };
        c.error(
            at,
            key,
            format!("expected a string, number or boolean{hint}"),
        );
    }
    ok
}

/// A list of one or more scalars; every value is checked, so each wrong one gets its own error.
fn check_list(
    values: &[Value],
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> Option<Vec<Value>> {
    if values.is_empty() {
        c.error(at, key, "expected a list of one or more values");
        return None;
    }
    let wrong = values
        .iter()
        .filter(|v| !check_scalar(v, key, at, c))
        .count();
    (wrong == 0).then(|| values.to_vec())
}

/// `scope: "a b"` or `scope: [a, b]`: one or more names without spaces.
fn compile_scopes(
    raw: &StringOrList,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> Option<Vec<String>> {
    let scopes: Vec<String> = match raw {
        StringOrList::One(s) => s.split_whitespace().map(str::to_string).collect(),
        StringOrList::Many(list) => list.clone(),
    };
    let bad = scopes.is_empty()
        || scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace));
    if bad {
        c.error(at, key, "expected one or more scope names without spaces");
        return None;
    }
    Some(scopes)
}

/// `{param: id}` (a parameter of the route's path template) or `{header: X-Tenant}`.
fn compile_binding(
    map: &serde_json::Map<String, Value>,
    key: &str,
    at: Option<&Location>,
    params: &[&str],
    c: &mut Collector,
) -> Option<Operand> {
    let expected = "expected {param: NAME} (a parameter of this route's path) or {header: NAME}";
    if map.len() != 1 {
        c.error(at, key, expected);
        return None;
    }
    match map.iter().next() {
        Some((kind, Value::String(name))) if kind == "param" => {
            match params.iter().position(|p| p == name) {
                Some(index) => Some(Operand::Param {
                    name: name.clone(),
                    index,
                }),
                None => {
                    let known = if params.is_empty() {
                        "this route's path has no parameters; write path: /users/{id}".to_string()
                    } else {
                        format!("known: {}", params.join(", "))
                    };
                    c.error(
                        at,
                        format!("{key}.param"),
                        format!("no path parameter {{{name}}} ({known})"),
                    );
                    None
                }
            }
        }
        Some((kind, Value::String(name))) if kind == "header" => match HeaderName::from_str(name) {
            Ok(h) => Some(Operand::Header(h)),
            Err(_) => {
                c.error(
                    at,
                    format!("{key}.header"),
                    format!("{name:?} is not a valid header name"),
                );
                None
            }
        },
        _ => {
            c.error(at, key, expected);
            None
        }
    }
}
