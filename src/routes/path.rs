//! Step 3½: one normalisation of the request path before any route is matched. The result is
//! both the path matched and the path forwarded, so the backend never sees a path the rules did
//! not approve. What a backend could read in more than one way is refused instead (400).

use std::borrow::Cow;

/// Why a path was refused (400 `ambiguous_path`).
pub type PathProblem = &'static str;

/// Normalises an origin-form path: percent-encoded unreserved characters (RFC 3986 §2.3:
/// letters, digits, `-._~`) are decoded, other escapes get upper-case hex. Refused: no leading
/// `/`, dot segments (also when spelled `%2E`), `//`, backslash, `;` path parameters, encoded
/// `/` `\` `;` `%`, control bytes (raw or encoded), malformed escapes.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathProblem> {
    if !path.starts_with('/') {
        return Err("path must start with /");
    }
    let bytes = path.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err("backslash in path"),
            b';' => return Err("path parameters (;) are not accepted"),
            b if b < 0x20 || b == 0x7f => return Err("control character in path"),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .ok_or("truncated percent-encoding")?;
                let decoded = hex_value(hex).ok_or("invalid percent-encoding")?;
                match decoded {
                    b'/' => return Err("encoded slash (%2F) in path"),
                    b'\\' => return Err("encoded backslash (%5C) in path"),
                    b'%' => return Err("encoded percent sign (%25) in path"),
                    b';' => return Err("encoded path parameter (%3B) in path"),
                    d if d < 0x20 || d == 0x7f => return Err("encoded control character in path"),
                    _ => {}
                }
                let buf = out.get_or_insert_with(|| bytes[..i].to_vec());
                if is_unreserved(decoded) {
                    buf.push(decoded);
                } else {
                    buf.extend_from_slice(&[
                        b'%',
                        hex[0].to_ascii_uppercase(),
                        hex[1].to_ascii_uppercase(),
                    ]);
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        if let Some(buf) = out.as_mut() {
            buf.push(b);
        }
        i += 1;
    }
    let normalized = match out {
        // Only ASCII bytes were pushed in place of escapes, the rest is copied from a `str`.
        Some(buf) => Cow::Owned(String::from_utf8(buf).map_err(|_| "invalid UTF-8 in path")?),
        None => Cow::Borrowed(path),
    };
    if normalized.split('/').skip(1).any(|s| s == "." || s == "..") {
        return Err("dot segment in path");
    }
    if normalized.contains("//") {
        return Err("empty path segment (//)");
    }
    Ok(normalized)
}

fn hex_value(hex: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(hex[0])? * 16 + digit(hex[1])?) as u8)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let accepted: &[(&str, &str)] = &[
            ("/", "/"),
            ("/api", "/api"),
            ("/api/", "/api/"),
            ("/api/orders/42", "/api/orders/42"),
            ("/a%20b", "/a%20b"),
            ("/a%3fb", "/a%3Fb"),
            ("/%61dmin", "/admin"),
            ("/%7euser", "/~user"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/file%2etxt", "/file.txt"),
            ("/..foo", "/..foo"),
            ("/a/.hidden", "/a/.hidden"),
        ];
        for (path, want) in accepted {
            assert_eq!(normalize(path).as_deref(), Ok(*want), "{path}");
        }
        let refused = [
            "api",
            "/public/../admin",
            "/public/./x",
            "/public/..",
            "/a/%2e%2e/admin",
            "/a/%2E%2E/admin",
            "/a/.%2e/b",
            "/a/%2e",
            "/a%2Fb",
            "/a%2fb",
            "/a\\b",
            "/a%5cb",
            "/a;jsessionid=1",
            "/a%3bb",
            "/a\0b",
            "/a%00b",
            "/a%0d%0ab",
            "//admin",
            "/api//x",
            "/a%",
            "/a%zz",
            "/a%252e",
            "/a%7f",
        ];
        for path in refused {
            assert!(normalize(path).is_err(), "{path} should be refused");
        }
    }
}
