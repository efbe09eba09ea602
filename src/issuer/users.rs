//! The user file: usernames, their argon2id hashes and the claims their access tokens carry.
//!
//! ```yaml
//! users:
//!   alice:
//!     password_hash: "$argon2id$v=19$m=19456,t=2,p=1$…"
//!     claims: { roles: [admin], scope: "orders:read orders:write", tenant: acme }
//! ```

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::password::StoredHash;

/// Claims the issuer sets itself; a user file may not.
pub const RESERVED: &[&str] = &[
    "iss",
    "aud",
    "sub",
    "iat",
    "nbf",
    "exp",
    "jti",
    "typ",
    "client_id",
];

/// Longest username, in bytes.
pub const MAX_USERNAME: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    users: BTreeMap<String, RawUser>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    password_hash: String,
    #[serde(default)]
    claims: Map<String, Value>,
}

/// One user.
#[derive(Debug, Clone)]
pub struct User {
    pub hash: StoredHash,
    pub claims: Map<String, Value>,
}

/// Every user, by name.
#[derive(Debug, Clone, Default)]
pub struct Users {
    pub by_name: HashMap<String, User>,
}

/// A user file's problems: (key, message), and warnings.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
}

/// Parses a user file; every problem is reported, keyed `users.NAME.…`.
pub fn parse(text: &str) -> (Users, Findings) {
    let mut findings = Findings::default();
    let raw: RawUsers = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            findings.errors.push(("users".into(), e.to_string()));
            return (Users::default(), findings);
        }
    };
    let mut users = Users::default();
    for (name, user) in raw.users {
        let key = format!("users.{name}");
        if name.is_empty() || name.len() > MAX_USERNAME || name.chars().any(char::is_control) {
            findings.errors.push((
                key.clone(),
                format!("a username is 1–{MAX_USERNAME} bytes without control characters"),
            ));
            continue;
        }
        let hash = match StoredHash::parse(&user.password_hash) {
            Ok(hash) => hash,
            Err(e) => {
                findings.errors.push((
                    format!("{key}.password_hash"),
                    format!("{e} (make one with `portcullis hash-password`)"),
                ));
                continue;
            }
        };
        if hash.weak {
            findings.warnings.push((
                format!("{key}.password_hash"),
                "argon2id parameters below OWASP's m=19456 KiB, t=2, p=1: rehash with `portcullis hash-password`".into(),
            ));
        }
        if let Some(reserved) = user.claims.keys().find(|k| RESERVED.contains(&k.as_str())) {
            findings.errors.push((
                format!("{key}.claims.{reserved}"),
                format!(
                    "the issuer sets {reserved} itself (reserved: {})",
                    RESERVED.join(", ")
                ),
            ));
            continue;
        }
        users.by_name.insert(
            name,
            User {
                hash,
                claims: user.claims,
            },
        );
    }
    (users, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn user_files_are_checked_whole() {
        let rows: Vec<(String, usize, Vec<&str>, usize)> = vec![
            (format!("users:\n  alice:\n    password_hash: \"{HASH}\"\n    claims: {{roles: [a]}}\n"), 1, vec![], 0),
            (format!("users:\n  alice:\n    password_hash: \"{HASH}\"\n    claims: {{sub: x}}\n"), 0, vec!["users.alice.claims.sub"], 0),
            ("users:\n  bob:\n    password_hash: plain\n".to_string(), 0, vec!["users.bob.password_hash"], 0),
            ("users:\n  bob:\n    password_hash: \"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n".to_string(), 1, vec![], 1),
            ("users:\n  bob:\n    pasword_hash: x\n".to_string(), 0, vec!["users"], 0),
        ];
        for (text, count, errors, warnings) in rows {
            let (users, findings) = parse(&text);
            assert_eq!(users.by_name.len(), count, "{text}");
            let keys: Vec<&str> = findings.errors.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, errors, "{text}");
            assert_eq!(findings.warnings.len(), warnings, "{text}");
        }
    }
}
