//! Scalar types of the config file: strings with `${VAR}` substitution, and durations.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::{Deserialize, Deserializer, de::Error as _};

thread_local! {
    /// Extra variables seen before the process environment while one file is parsed
    /// (the demo uses it to point the config at the echo backend it started).
    static OVERRIDES: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// Runs `f` with `vars` visible to `${VAR}` substitution, ahead of the environment.
pub(crate) fn with_overrides<R>(vars: &HashMap<String, String>, f: impl FnOnce() -> R) -> R {
    OVERRIDES.with(|o| *o.borrow_mut() = vars.clone());
    let result = f();
    OVERRIDES.with(|o| o.borrow_mut().clear());
    result
}

fn lookup(name: &str) -> Option<String> {
    OVERRIDES
        .with(|o| o.borrow().get(name).cloned())
        .or_else(|| std::env::var(name).ok())
}

/// A config string in which `${VAR}` is replaced by the environment variable `VAR`
/// (an unset variable is an error), `${VAR:-default}` falls back to `default`, and `$$` is `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl schemars::JsonSchema for Text {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Text".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A string; ${VAR} is the environment variable VAR, ${VAR:-default} falls back to default, $$ is $."
        })
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        substitute(&raw, lookup).map(Text).map_err(D::Error::custom)
    }
}

/// Replaces `${VAR}`, `${VAR:-default}` and `$$` in `raw`; pure, given `lookup`.
pub fn substitute(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {raw:?}"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!("`${{{expr}}}` is not a valid variable reference"));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!("environment variable {name} is not set"));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A duration written as `30s`, `500ms`, `5m` or `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as 30s, 500ms, 5m or 1h 30m.",
            "pattern": "^\\s*[0-9]+\\s*[a-zµ]+(\\s*[0-9]+\\s*[a-zµ]+)*\\s*$"
        })
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        humantime::parse_duration(raw.trim())
            .map(Duration)
            .map_err(|e| {
                D::Error::custom(format!(
                    "expected a duration such as 30s, 500ms or 5m, found {raw:?} ({e})"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_table() {
        let env = |n: &str| match n {
            "A" => Some("alpha".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("${A}", Ok("alpha")),
            ("x-${A}-y", Ok("x-alpha-y")),
            ("${EMPTY}", Ok("")),
            ("${MISSING:-fallback}", Ok("fallback")),
            ("${A:-fallback}", Ok("alpha")),
            ("cost $$5", Ok("cost $5")),
            ("a$b", Ok("a$b")),
            ("${MISSING}", Err("environment variable MISSING is not set")),
            ("${A", Err("unclosed")),
            ("${A-B}", Err("not a valid variable")),
        ];
        for (input, expected) in cases {
            let got = substitute(input, env);
            match (expected, &got) {
                (Ok(e), Ok(g)) => assert_eq!(e, g, "{input}"),
                (Err(e), Err(g)) => assert!(g.contains(e), "{input}: {g}"),
                _ => panic!("{input}: expected {expected:?}, got {got:?}"),
            }
        }
    }
}
