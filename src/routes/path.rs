//! Step 3½: one normalisation of the request path before any route is matched. The result is
//! both the path matched and the path forwarded, so the backend never sees a path the rules did
//! not approve. What a backend could read in more than one way is refused instead (400).

use std::borrow::Cow;

use crate::percent::hex_value;

/// Why a path was refused (400 `ambiguous_path`).
pub type PathProblem = &'static str;

/// What to do with `.` and `..` segments written as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DotSegments {
    /// Remove them as RFC 3986 §5.2.4 says; climbing above `/` is refused (default).
    #[default]
    Resolve,
    /// Refuse any path that has one.
    Reject,
}

/// What to do with an empty segment (`//`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmptySegments {
    /// Refuse the path (default).
    #[default]
    Reject,
    /// Collapse runs of `/` into one.
    Merge,
}

/// What to do with `%2F` (an encoded `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EncodedSlash {
    /// Refuse the path (default).
    #[default]
    Reject,
    /// Keep it encoded: it is an ordinary character inside one segment, matched and forwarded
    /// as `%2F`. Paths that would hold a dot segment once `%2F` is decoded are still refused.
    Keep,
}

/// What to do with `;` path parameters (`/a;jsessionid=1/b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PathParameters {
    /// Refuse the path (default).
    #[default]
    Reject,
    /// Remove each `;…` up to the end of its segment, before matching and forwarding.
    Strip,
}

/// What to do with a segment that ends in `.` or a space (`/admin.`, `/admin%20`), which
/// IIS and other Windows servers strip, so that `/admin.` reaches `/admin` there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowsSegments {
    /// Refuse the path (default).
    #[default]
    Reject,
    /// Match and forward it as it is.
    Keep,
}

/// How paths are normalised; one setting per config (`paths:`), applied before matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathOptions {
    pub dot_segments: DotSegments,
    pub empty_segments: EmptySegments,
    pub encoded_slash: EncodedSlash,
    pub path_parameters: PathParameters,
    pub windows_segments: WindowsSegments,
}

/// Normalises an origin-form path. Percent-encoded unreserved characters (RFC 3986 §2.3:
/// letters, digits, `-._~`) are decoded, other escapes get upper-case hex; dot segments are
/// resolved; what stays ambiguous is refused: encoded dot segments (`%2e%2e`), backslash raw or
/// encoded, encoded `%` and `;`, control bytes raw or encoded, malformed escapes, climbing above
/// the root, and — unless `options` allow them — `//`, `%2F` and `;` parameters.
pub fn normalize<'p>(path: &'p str, options: &PathOptions) -> Result<Cow<'p, str>, PathProblem> {
    if !path.starts_with('/') {
        return Err("path must start with /");
    }
    if is_plain(path) {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    // Byte offsets in `out` where each kept segment starts (after its `/`), for `..`.
    let mut starts: Vec<usize> = Vec::new();
    let raw_segments: Vec<&str> = path[1..].split('/').collect();
    let last = raw_segments.len() - 1;
    let mut segment = String::new();
    for (i, raw) in raw_segments.iter().enumerate() {
        segment.clear();
        let encoded_dot = decode_segment(raw, options, &mut segment)?;
        let is_last = i == last;
        match segment.as_str() {
            "" if !is_last => match options.empty_segments {
                EmptySegments::Reject => return Err("empty path segment (//)"),
                EmptySegments::Merge => continue,
            },
            "." | ".." if encoded_dot => return Err("encoded dot segment (%2E) in path"),
            "." | ".." if options.dot_segments == DotSegments::Reject => {
                return Err("dot segment in path");
            }
            "." => {
                if is_last {
                    out.push('/');
                }
                continue;
            }
            ".." => {
                let start = starts.pop().ok_or("dot segments climb above the root")?;
                out.truncate(start - 1);
                if is_last {
                    out.push('/');
                }
                continue;
            }
            _ => {}
        }
        if options.windows_segments == WindowsSegments::Reject
            && (segment.ends_with('.') || segment.ends_with("%20"))
        {
            return Err("path segment ends in a dot or a space (Windows servers strip them)");
        }
        if options.encoded_slash == EncodedSlash::Keep
            && segment
                .split("%2F")
                .any(|part| part == "." || part == ".." || part.is_empty())
            && segment.contains("%2F")
        {
            return Err("encoded slash (%2F) next to a dot or another slash");
        }
        out.push('/');
        starts.push(out.len());
        out.push_str(&segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    if out == path {
        return Ok(Cow::Borrowed(path));
    }
    Ok(Cow::Owned(out))
}

/// True when `path` is already in normal form: no escapes, `;`, `\`, controls, `//` or dot
/// segments. The common case, checked without allocating.
fn is_plain(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' | b';' | b'\\' => return false,
            b if b < 0x20 || b == 0x7f => return false,
            b'/' if prev == b'/' => return false,
            // A segment ending in `.` (`/admin.`) takes the careful path.
            b'.' if matches!(bytes.get(i + 1), None | Some(b'/')) => return false,
            b'.' if prev == b'/' => {
                let rest = &bytes[i + 1..];
                if rest.is_empty()
                    || rest[0] == b'/'
                    || (rest[0] == b'.' && (rest.len() == 1 || rest[1] == b'/'))
                {
                    return false;
                }
            }
            _ => {}
        }
        prev = b;
    }
    true
}

/// Decodes one raw segment into `out`; returns whether a `.` in it was percent-encoded.
fn decode_segment(raw: &str, options: &PathOptions, out: &mut String) -> Result<bool, PathProblem> {
    let bytes = raw.as_bytes();
    let mut encoded_dot = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err("backslash in path"),
            b';' => match options.path_parameters {
                PathParameters::Reject => return Err("path parameters (;) are not accepted"),
                PathParameters::Strip => break,
            },
            b if b < 0x20 || b == 0x7f => return Err("control character in path"),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .ok_or("truncated percent-encoding")?;
                let decoded = hex_value(hex).ok_or("invalid percent-encoding")?;
                match decoded {
                    b'/' if options.encoded_slash == EncodedSlash::Reject => {
                        return Err("encoded slash (%2F) in path");
                    }
                    b'\\' => return Err("encoded backslash (%5C) in path"),
                    b'%' => return Err("encoded percent sign (%25) in path"),
                    b';' => return Err("encoded path parameter (%3B) in path"),
                    d if d < 0x20 || d == 0x7f => return Err("encoded control character in path"),
                    _ => {}
                }
                if is_unreserved(decoded) {
                    encoded_dot |= decoded == b'.';
                    out.push(decoded as char);
                } else {
                    out.push('%');
                    out.push(hex[0].to_ascii_uppercase() as char);
                    out.push(hex[1].to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        // Copy the run of ordinary bytes up to the next special one in one go (keeps UTF-8
        // sequences whole: every special byte is ASCII).
        let end = bytes[i..]
            .iter()
            .position(|&c| matches!(c, b'%' | b';' | b'\\') || c < 0x20 || c == 0x7f)
            .map_or(bytes.len(), |p| i + p);
        out.push_str(&raw[i..end]);
        i = end;
    }
    Ok(encoded_dot)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `path` without `prefix` when `prefix` is a whole-segment prefix of it (`/api` of `/api` and
/// `/api/x`, never of `/apiary`).
pub fn strip_segments<'p>(path: &'p str, prefix: &str, case_sensitive: bool) -> Option<&'p str> {
    let head = path.get(..prefix.len())?;
    let same = if case_sensitive {
        head == prefix
    } else {
        head.eq_ignore_ascii_case(prefix)
    };
    let rest = path.get(prefix.len()..)?;
    (same && (rest.is_empty() || rest.starts_with('/'))).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> PathOptions {
        PathOptions::default()
    }

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
            ("/café", "/café"),
            ("/file%2etxt", "/file.txt"),
            ("/..foo", "/..foo"),
            ("/a/.hidden", "/a/.hidden"),
            ("/public/../admin", "/admin"),
            ("/public/./x", "/public/x"),
            ("/public/..", "/"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a/./", "/a/"),
            ("/a/b/../../c", "/c"),
            ("/./a", "/a"),
        ];
        for (path, want) in accepted {
            assert_eq!(normalize(path, &opts()).as_deref(), Ok(*want), "{path}");
        }
        let refused = [
            "api",
            "*",
            "/..",
            "/../admin",
            "/a/../../admin",
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
            // Windows servers strip a trailing dot or space from a segment.
            "/admin.",
            "/admin./x",
            "/admin%20",
            "/admin%20/x",
            "/a/...",
            "/x/file%2e",
            "/x/file%2E/",
        ];
        for path in refused {
            assert!(
                normalize(path, &opts()).is_err(),
                "{path} should be refused"
            );
        }
        let keep = PathOptions {
            windows_segments: WindowsSegments::Keep,
            ..opts()
        };
        for (path, want) in [
            ("/admin.", "/admin."),
            ("/admin%20/x", "/admin%20/x"),
            ("/a/...", "/a/..."),
        ] {
            assert_eq!(normalize(path, &keep).as_deref(), Ok(want), "{path}");
        }
    }

    #[test]
    fn reject_dot_segments_setting() {
        let o = PathOptions {
            dot_segments: DotSegments::Reject,
            ..opts()
        };
        for path in ["/public/../admin", "/a/.", "/./a"] {
            assert!(normalize(path, &o).is_err(), "{path}");
        }
        assert_eq!(normalize("/a/.b", &o).as_deref(), Ok("/a/.b"));
    }

    #[test]
    fn switches_table() {
        let merge = PathOptions {
            empty_segments: EmptySegments::Merge,
            ..opts()
        };
        let slash = PathOptions {
            encoded_slash: EncodedSlash::Keep,
            ..opts()
        };
        let strip = PathOptions {
            path_parameters: PathParameters::Strip,
            ..opts()
        };
        let cases: &[(&PathOptions, &str, Result<&str, ()>)] = &[
            (&merge, "//admin", Ok("/admin")),
            (&merge, "/api//x///y/", Ok("/api/x/y/")),
            (&merge, "/api//../x", Ok("/x")),
            (
                &slash,
                "/repos/group%2fproject",
                Ok("/repos/group%2Fproject"),
            ),
            (&slash, "/a/..%2Fadmin", Err(())),
            (&slash, "/a/x%2F..%2Fadmin", Err(())),
            (&slash, "/a/%2F%2Fx", Err(())),
            (&slash, "/a%5Cb", Err(())),
            (&strip, "/a;jsessionid=1/b", Ok("/a/b")),
            (&strip, "/admin;x=..", Ok("/admin")),
            (&strip, "/public/..;/admin", Ok("/admin")),
            (&strip, "/a%3Bb", Err(())),
            (&opts(), "/public/..;/admin", Err(())),
        ];
        for (o, path, want) in cases {
            let got = normalize(path, o).map_err(|_| ());
            assert_eq!(got.as_deref(), want.as_deref(), "{path} with {o:?}");
        }
    }

    use proptest::prelude::Strategy as _;

    /// Every combination of the path options.
    fn all_options() -> Vec<PathOptions> {
        let mut all = Vec::new();
        for dot_segments in [DotSegments::Resolve, DotSegments::Reject] {
            for empty_segments in [EmptySegments::Reject, EmptySegments::Merge] {
                for encoded_slash in [EncodedSlash::Reject, EncodedSlash::Keep] {
                    for path_parameters in [PathParameters::Reject, PathParameters::Strip] {
                        for windows_segments in [WindowsSegments::Reject, WindowsSegments::Keep] {
                            all.push(PathOptions {
                                dot_segments,
                                empty_segments,
                                encoded_slash,
                                path_parameters,
                                windows_segments,
                            });
                        }
                    }
                }
            }
        }
        all
    }

    /// Paths built from the pieces that confuse normalisers: dots, slashes, escapes of dots,
    /// slashes, percent and backslash, parameters, trailing dots and spaces, non-ASCII.
    fn tricky_path() -> impl proptest::strategy::Strategy<Value = String> {
        let piece = proptest::sample::select(vec![
            "/", "//", ".", "..", "a", "admin", "%2e", "%2E", "%2f", "%2F", "%25", "%5c", "\\",
            ";", ";x=1", "%3b", " ", "%20", "~", "%7e", "%41", "%c3%a9", "é", "%", "%g0", "%0a",
            "\t", "+", "?",
        ]);
        proptest::collection::vec(piece, 0..16).prop_map(|pieces| format!("/{}", pieces.concat()))
    }

    proptest::proptest! {
        /// What normalisation accepts is a fixed point (normalising it again changes nothing),
        /// starts at the root and holds no segment that could climb or stay: never above `/`.
        #[test]
        fn normalised_paths_are_fixed_points_below_the_root(path in tricky_path()) {
            for o in all_options() {
                let Ok(once) = normalize(&path, &o) else { continue };
                let twice = normalize(&once, &o);
                proptest::prop_assert_eq!(
                    twice.as_deref(), Ok(&*once), "{:?} with {:?}", path, o
                );
                proptest::prop_assert!(once.starts_with('/'), "{once}");
                proptest::prop_assert!(
                    once[1..].split('/').all(|s| s != "." && s != ".."),
                    "{:?} -> {:?} with {:?}", path, once, o
                );
                proptest::prop_assert!(!once.contains("//"), "{:?} -> {:?}", path, once);
                proptest::prop_assert!(
                    !once.bytes().any(|b| b.is_ascii_control() || b == b'\\'),
                    "{:?} -> {:?}", path, once
                );
            }
        }
    }
}
