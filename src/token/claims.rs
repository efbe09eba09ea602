//! Verified claims and the paths that address them.

use serde_json::{Map, Value};

/// The claims of a verified token: a JSON object, shared by `Arc` once verified.
pub type Claims = Map<String, Value>;

/// A path into the claims, compiled once from the config.
///
/// Syntax: names separated by `.` (`realm_access.roles`); a name in brackets and quotes is
/// taken literally (`resource_access["my.app"].roles`); a path containing `://` is one
/// namespaced claim name as a whole (`https://example.com/roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    segments: Vec<String>,
    text: String,
}

impl ClaimPath {
    /// Parses `text`, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<ClaimPath, String> {
        if text.is_empty() {
            return Err("a claim path must not be empty".into());
        }
        if text.contains("://") && !text.contains("[\"") {
            return Ok(ClaimPath {
                segments: vec![text.to_string()],
                text: text.to_string(),
            });
        }
        let mut segments = Vec::new();
        let mut rest = text;
        loop {
            if let Some(quoted) = rest.strip_prefix("[\"") {
                let end = quoted
                    .find("\"]")
                    .ok_or_else(|| format!("claim path {text:?}: `[\"` is not closed by `\"]`"))?;
                segments.push(quoted[..end].to_string());
                rest = &quoted[end + 2..];
            } else {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                if end == 0 {
                    return Err(format!("claim path {text:?} has an empty name"));
                }
                segments.push(rest[..end].to_string());
                rest = &rest[end..];
            }
            if rest.is_empty() {
                break;
            }
            if let Some(next) = rest.strip_prefix('.') {
                if next.is_empty() {
                    return Err(format!("claim path {text:?} ends with `.`"));
                }
                rest = next;
            } else if !rest.starts_with("[\"") {
                return Err(format!(
                    "claim path {text:?}: expected `.` or `[\"` after a name"
                ));
            }
        }
        Ok(ClaimPath {
            segments,
            text: text.to_string(),
        })
    }

    /// The value at this path, if every step is an object that has the next name.
    pub fn lookup<'c>(&self, claims: &'c Claims) -> Option<&'c Value> {
        let (first, rest) = self.segments.split_first()?;
        let mut value = claims.get(first.as_str())?;
        for name in rest {
            value = value.as_object()?.get(name.as_str())?;
        }
        Some(value)
    }

    /// The path as the operator wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_table() {
        let ok: &[(&str, &[&str])] = &[
            ("sub", &["sub"]),
            ("realm_access.roles", &["realm_access", "roles"]),
            ("https://example.com/roles", &["https://example.com/roles"]),
            (
                "[\"https://example.com/claims\"].tenant",
                &["https://example.com/claims", "tenant"],
            ),
            (
                "resource_access[\"my.app\"].roles",
                &["resource_access", "my.app", "roles"],
            ),
            ("[\"a.b\"]", &["a.b"]),
            ("cognito:groups", &["cognito:groups"]),
        ];
        for (text, want) in ok {
            let path = ClaimPath::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(path.segments, *want, "{text}");
        }
        for bad in ["", "a..b", ".a", "a.", "[\"open", "a[\"b\"]c"] {
            assert!(ClaimPath::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn lookup_table() {
        let claims = json!({
            "sub": "alice",
            "realm_access": {"roles": ["admin"]},
            "https://example.com/roles": ["ops"],
            "a.b": 1,
            "list": [1, 2]
        });
        let claims = claims.as_object().unwrap();
        let cases: &[(&str, Option<Value>)] = &[
            ("sub", Some(json!("alice"))),
            ("realm_access.roles", Some(json!(["admin"]))),
            ("https://example.com/roles", Some(json!(["ops"]))),
            ("[\"a.b\"]", Some(json!(1))),
            ("a.b", None),
            ("sub.inner", None),
            ("list.x", None),
            ("missing", None),
        ];
        for (text, want) in cases {
            let got = ClaimPath::parse(text).unwrap().lookup(claims).cloned();
            assert_eq!(&got, want, "{text}");
        }
    }
}

/// A token whose signature and registered claims were checked.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Index of the provider that issued it.
    pub provider: usize,
    pub claims: std::sync::Arc<Claims>,
    /// Key-set generation it was verified with.
    pub generation: u64,
    /// Unix seconds from which the token is refused (`exp` + leeway; infinite without `exp`).
    pub refuse_from: f64,
}
