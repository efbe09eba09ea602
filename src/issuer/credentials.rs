//! The login body: username and password from JSON or an HTML form.

use serde_json::Value;

use super::{password, users};

/// Username and password from a JSON or form body; `None` unless both are present once and
/// within their bounds.
pub fn read(content_type: Option<&str>, body: &[u8]) -> Option<(String, Vec<u8>)> {
    let media = content_type
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    let (username, password) = match media.as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let mut username = None;
            let mut password = None;
            for pair in body.split(|b| *b == b'&') {
                let (name, value) = match pair.iter().position(|b| *b == b'=') {
                    Some(i) => (&pair[..i], &pair[i + 1..]),
                    None => (pair, &b""[..]),
                };
                let value = form_decode(value)?;
                match name {
                    b"username" if username.is_none() => username = Some(value),
                    b"password" if password.is_none() => password = Some(value),
                    b"username" | b"password" => return None,
                    _ => {}
                }
            }
            (String::from_utf8(username?).ok()?, password?)
        }
        _ => {
            let value: Value = serde_json::from_slice(body).ok()?;
            (
                value.get("username")?.as_str()?.to_string(),
                value.get("password")?.as_str()?.as_bytes().to_vec(),
            )
        }
    };
    let username_ok = !username.is_empty() && username.len() <= users::MAX_USERNAME;
    let password_ok = (password::MIN_PASSWORD..=password::MAX_PASSWORD).contains(&password.len());
    (username_ok && password_ok).then_some((username, password))
}

/// `application/x-www-form-urlencoded` value decoding (`+` is a space).
fn form_decode(value: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(value.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_json_or_form() {
        let json = Some("application/json");
        let form = Some("application/x-www-form-urlencoded; charset=utf-8");
        type Row = (
            Option<&'static str>,
            &'static [u8],
            Option<(&'static str, &'static [u8])>,
        );
        let rows: Vec<Row> = vec![
            (
                json,
                br#"{"username":"alice","password":"pw"}"#,
                Some(("alice", b"pw")),
            ),
            (
                None,
                br#"{"username":"alice","password":"pw"}"#,
                Some(("alice", b"pw")),
            ),
            (
                form,
                b"username=alice&password=p%40ss+word",
                Some(("alice", b"p@ss word")),
            ),
            (form, b"username=alice&password=a&password=b", None),
            (form, b"username=alice", None),
            (form, b"username=alice&password=", None),
            (form, b"username=alice&password=%zz", None),
            (json, br#"{"username":"","password":"pw"}"#, None),
            (json, br#"{"username":"alice","password":1}"#, None),
            (json, b"not json", None),
        ];
        for (ct, body, expected) in rows {
            let got = read(ct, body);
            let got = got.as_ref().map(|(u, p)| (u.as_str(), p.as_slice()));
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(body));
        }
        let long = format!(r#"{{"username":"a","password":"{}"}}"#, "x".repeat(1025));
        assert_eq!(read(json, long.as_bytes()), None);
    }
}
