//! Percent-encoding (RFC 3986 §2.1): the value of one `%XX`, and decoding a segment or a
//! parameter for comparison. Pure; imports nothing of the crate.

use std::borrow::Cow;

/// The byte that two hex digits stand for; `None` unless `hex` is exactly two hex digits.
pub fn hex_value(hex: &[u8]) -> Option<u8> {
    let [high, low] = hex else {
        return None;
    };
    let digit = |c: u8| (c as char).to_digit(16);
    u8::try_from(digit(*high)? * 16 + digit(*low)?).ok()
}

/// Percent-decodes a normalised path segment (a captured `{param}`) or a query parameter name
/// for comparison. `None` when an escape is incomplete or the bytes are not UTF-8.
pub fn decode(segment: &str) -> Option<Cow<'_, str>> {
    if !segment.contains('%') {
        return Some(Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            out.push(hex_value(bytes.get(i + 1..i + 3)?)?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_table() {
        let cases: [(&str, Option<&str>); 7] = [
            ("alice", Some("alice")),
            ("alice%40example.com", Some("alice@example.com")),
            ("caf%C3%A9", Some("café")),
            ("%FF", None),
            ("%4", None),
            ("%zz", None),
            ("a%2Fb", Some("a/b")),
        ];
        for (raw, want) in cases {
            assert_eq!(decode(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn hex_value_table() {
        assert_eq!(hex_value(b"41"), Some(b'A'));
        assert_eq!(hex_value(b"fF"), Some(255));
        assert_eq!(hex_value(b"4"), None);
        assert_eq!(hex_value(b"g0"), None);
    }
}
