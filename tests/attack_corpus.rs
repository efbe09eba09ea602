//! The attack corpus: every line of every file in `tests/attacks/` is one request replayed over
//! a raw socket against the real gateway with a recording upstream; `tests/attacks/http2/` the
//! same as hand-written HTTP/2 frames (h2c, prior knowledge). Adding a case is adding a line.
//!
//! A line is four tab-separated fields: a name, the request, what must happen, and the
//! reference (RFC section or CVE) the case comes from. `#` starts a comment line.
//!
//! - The request is the head as sent, `\n` standing for CRLF (`\r`, `\t`, `\\` and `\xNN` for
//!   other bytes); `{host}` is the gateway's address and `{name}` a token made by `tokens`
//!   below. Unless the request ends its head itself (`\n\n`, then a body may follow),
//!   `Connection: close` and the blank line are added. A marker header naming the line goes
//!   right after the request line.
//! - What must happen: the status (`*`: any, or the connection closed without an answer), the
//!   `reason` of the problem body (`-`: none, `*`: any), then
//!   conditions on the upstream: `upstream=none` (nothing reached it), `upstream=one` (exactly
//!   one request), `upstream=not-whole` (no body reached it whole: a body that fails to parse
//!   aborts the upstream request), `hdr:NAME=VALUE` (that one request carried NAME once, with VALUE),
//!   (`\x20` for a space), `nohdr:NAME` (nothing that reached it carried NAME), `target=PATH` (the one request's
//!   target).
//! - In `http2/`, the request is the header list, `name: value` items joined by ` | ` (in the
//!   order sent, pseudo-headers included, nothing added but the marker, last), optionally
//!   ending in `DATA <bytes>`; the status `reset` means the stream was reset (or the
//!   connection sent GOAWAY) without a response.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const ROUTES: &str = "
- name: public
  prefix: /public
  upstream: app
  policy: public
- name: internal
  prefix: /internal
  policy: deny
- name: admin
  prefix: /admin
  upstream: app
  require:
    claim: roles
    contains: admin
  claim_headers:
    X-User-Id: sub
- name: api
  prefix: /api
  upstream: app
  claim_headers:
    X-User-Id: sub
    X-User-Roles: roles
";

/// The header the runner adds after each request line, naming the line (the upstream's
/// record of a request is matched to its line by it).
const MARKER: &str = "x-corpus-case";

/// The tokens lines can name, each built for its attack.
fn tokens(rsa: &TestKey, ec: &TestKey) -> Vec<(&'static str, String)> {
    let attacker = TestKey::rsa("attacker");
    let reader = claims_with(json!({"roles": ["reader"]}));
    let header = |alg: &str, kid: &str, extra: Value| {
        let mut h = json!({"alg": alg, "typ": "JWT", "kid": kid});
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        h
    };
    let unsigned = |h: &Value, c: &Value, signature: &str| {
        format!(
            "{}.{}.{signature}",
            b64(h.to_string().as_bytes()),
            b64(c.to_string().as_bytes())
        )
    };
    // HS256 "signed" with the RSA public key as the secret (the key-confusion attack).
    let confusion = {
        let h = header("HS256", &rsa.kid, json!({}));
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(reader.to_string().as_bytes())
        );
        let tag = hmac("HS256", rsa.spki_pem().as_bytes(), input.as_bytes());
        format!("{input}.{}", b64(&tag))
    };
    let es_header = header("ES256", &ec.kid, json!({}));
    let with_claims = |patch: Value| mint(rsa, "RS256", &claims_with(patch));
    let big = "x".repeat(9000);
    vec![
        ("valid", mint(rsa, "RS256", &reader)),
        (
            "admin",
            mint(rsa, "RS256", &claims_with(json!({"roles": ["admin"]}))),
        ),
        ("valid_es", mint(ec, "ES256", &reader)),
        // Algorithm confusion and unsigned tokens.
        (
            "none",
            unsigned(&json!({"alg": "none", "typ": "JWT"}), &reader, ""),
        ),
        ("none_upper", unsigned(&json!({"alg": "NONE"}), &reader, "")),
        (
            "none_mixed",
            unsigned(&json!({"alg": "nOnE", "kid": rsa.kid}), &reader, ""),
        ),
        ("hs256_confusion", confusion),
        (
            "rs_header_es_key",
            mint_with(ec, "ES256", json!({"alg": "RS256"}), &reader),
        ),
        (
            "es_kid_rs_alg",
            mint_with(rsa, "RS256", json!({"kid": ec.kid}), &reader),
        ),
        (
            "alg_missing",
            unsigned(&json!({"kid": rsa.kid}), &reader, "AAAA"),
        ),
        (
            "alg_unknown",
            unsigned(&json!({"alg": "RS1024", "kid": rsa.kid}), &reader, "AAAA"),
        ),
        // Keys the token brings along.
        (
            "embedded_jwk",
            mint_with(&attacker, "RS256", json!({"jwk": attacker.jwk()}), &reader),
        ),
        (
            "jku",
            mint_with(
                &attacker,
                "RS256",
                json!({"jku": "http://127.0.0.1:9/jwks.json"}),
                &reader,
            ),
        ),
        (
            "x5u",
            mint_with(
                &attacker,
                "RS256",
                json!({"x5u": "http://127.0.0.1:9/cert.pem"}),
                &reader,
            ),
        ),
        (
            "x5c",
            mint_with(&attacker, "RS256", json!({"x5c": ["MIIB"]}), &reader),
        ),
        (
            "foreign_key",
            mint_with(&attacker, "RS256", json!({"kid": rsa.kid}), &reader),
        ),
        (
            "kid_traversal",
            mint_with(
                &attacker,
                "RS256",
                json!({"kid": "../../../dev/null"}),
                &reader,
            ),
        ),
        // Critical header extensions.
        (
            "crit_exp",
            mint_with(rsa, "RS256", json!({"crit": ["exp"], "exp": 1}), &reader),
        ),
        (
            "crit_b64",
            mint_with(
                rsa,
                "RS256",
                json!({"crit": ["b64"], "b64": false}),
                &reader,
            ),
        ),
        (
            "crit_empty",
            mint_with(rsa, "RS256", json!({"crit": []}), &reader),
        ),
        // Psychic signatures: r = s = 0 (and the curve order), which broken ECDSA accepts.
        (
            "psychic_zero",
            unsigned(&es_header, &reader, &b64(&[0u8; 64])),
        ),
        (
            "psychic_order",
            unsigned(&es_header, &reader, &{
                let n = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
                let order: Vec<u8> = (0..32)
                    .map(|i| u8::from_str_radix(&n[2 * i..2 * i + 2], 16).unwrap())
                    .collect();
                b64(&[order.clone(), order].concat())
            }),
        ),
        ("es_der_signature", {
            // A DER-encoded signature where JWS wants r‖s (RFC 7518 §3.4).
            let t = mint(ec, "ES256", &reader);
            let (input, _) = t.rsplit_once('.').unwrap();
            format!(
                "{input}.{}",
                b64(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])
            )
        }),
        // Type confusion in registered claims.
        (
            "exp_string",
            with_claims(json!({"exp": (now() + 300).to_string()})),
        ),
        ("exp_missing", with_claims(json!({"exp": null}))),
        (
            "exp_past",
            with_claims(json!({"exp": now() - 3600, "iat": now() - 7200, "nbf": now() - 7200})),
        ),
        ("exp_huge", with_claims(json!({"exp": 1e300}))),
        ("exp_nan_text", with_claims(json!({"exp": "NaN"}))),
        ("exp_bool", with_claims(json!({"exp": true}))),
        ("nbf_future", with_claims(json!({"nbf": now() + 3600}))),
        ("nbf_string", with_claims(json!({"nbf": "0"}))),
        ("iat_future", with_claims(json!({"iat": now() + 3600}))),
        ("aud_number", with_claims(json!({"aud": 7}))),
        ("aud_other", with_claims(json!({"aud": "someone-else"}))),
        ("aud_missing", with_claims(json!({"aud": null}))),
        ("aud_nested", with_claims(json!({"aud": [[AUDIENCE]]}))),
        ("iss_array", with_claims(json!({"iss": [ISSUER]}))),
        (
            "iss_other",
            with_claims(json!({"iss": "https://evil.test"})),
        ),
        ("iss_missing", with_claims(json!({"iss": null}))),
        (
            "iss_trailing_slash",
            with_claims(json!({"iss": format!("{ISSUER}/")})),
        ),
        ("roles_string_admin", with_claims(json!({"roles": "admin"}))),
        (
            "roles_nested_admin",
            with_claims(json!({"roles": [["admin"]]})),
        ),
        (
            "sub_object",
            with_claims(json!({"sub": {"id": "root"}, "roles": ["admin"]})),
        ),
        // Oversize and malformed.
        ("oversize", with_claims(json!({"pad": big}))),
        (
            "two_parts",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0".to_string(),
        ),
        ("four_parts", "a.b.c.d".to_string()),
        ("bad_base64", "e$J.e$J.e$J".to_string()),
        ("padded_base64", {
            let t = mint(rsa, "RS256", &reader);
            let (head, rest) = t.split_once('.').unwrap();
            format!("{head}==.{rest}")
        }),
        (
            "header_not_json",
            format!("{}.{}.AAAA", b64(b"not json"), b64(b"{}")),
        ),
        (
            "header_array",
            format!("{}.{}.AAAA", b64(b"[1]"), b64(b"{}")),
        ),
        (
            "payload_array",
            unsigned(&header("RS256", &rsa.kid, json!({})), &json!([1]), "AAAA"),
        ),
        (
            "duplicate_alg",
            format!(
                "{}.{}.AAAA",
                b64(format!(r#"{{"alg":"RS256","kid":"{}","alg":"none"}}"#, rsa.kid).as_bytes()),
                b64(reader.to_string().as_bytes())
            ),
        ),
    ]
}

/// `\n` → CRLF, `\r`, `\t`, `\\`, `\xNN`.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.extend_from_slice(b"\r\n"),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).expect("\\xNN"));
            }
            other => panic!("unknown escape \\{other:?}"),
        }
    }
    out
}

struct Case {
    file: String,
    line: usize,
    name: String,
    request: String,
    expect: String,
}

/// Every line of the `.tsv` files directly in `dir`.
fn corpus(dir: &str) -> Vec<Case> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tsv"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        for (i, line) in std::fs::read_to_string(&path).unwrap().lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(
                fields.len(),
                4,
                "{file}:{}: expected name, request, expectation, reference",
                i + 1
            );
            assert!(
                !fields[3].trim().is_empty(),
                "{file}:{}: no reference",
                i + 1
            );
            cases.push(Case {
                file: file.clone(),
                line: i + 1,
                name: fields[0].to_string(),
                request: fields[1].to_string(),
                expect: fields[2].to_string(),
            });
        }
    }
    cases
}

/// Whether `{name}` (lower-case letters, digits, `_`) is left in `text`.
fn has_placeholder(text: &str) -> bool {
    text.split('{').skip(1).any(|rest| {
        rest.split_once('}').is_some_and(|(name, _)| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
    })
}

/// Status and `reason` of a raw response (`-` when its body has none).
fn answer_of(response: &str) -> Option<(u16, String)> {
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let reason = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_string))
        .unwrap_or_else(|| "-".into());
    Some((status, reason))
}

/// What came back for one line.
#[derive(Debug)]
enum Answer {
    /// A response: status and the `reason` of its problem body (`-`: none).
    Status(u16, String),
    /// HTTP/2: the stream was reset or the connection sent GOAWAY, with no response.
    Reset,
    /// The connection closed (or the wait ran out) without an answer.
    Nothing(String),
}

/// The real gateway with the corpus's routes, its recording upstream and the tokens lines
/// can name.
async fn start() -> (TestGateway, TestUpstream, Vec<(&'static str, String)>) {
    let work = Workdir::new();
    let rsa = TestKey::rsa("rsa-1");
    let ec = TestKey::ec256("ec-1");
    work.jwks("jwks.json", &[&rsa, &ec]);
    let upstream = TestUpstream::start().await;
    let gw = GatewayYaml::new()
        .upstream("app", &upstream.url())
        .providers(&format!(
            "- name: main\n  issuer: {ISSUER}\n  audiences: [{AUDIENCE}]\n  algorithms: [RS256, ES256]\n  jwks_file: jwks.json\n"
        ))
        .routes(ROUTES)
        .start_in(work)
        .await;
    let tokens = tokens(&rsa, &ec);
    (gw, upstream, tokens)
}

/// The line's request with `{host}` and token placeholders filled in.
fn expand(case: &Case, host: &str, tokens: &[(&str, String)]) -> String {
    let mut request = case.request.replace("{host}", host);
    for (name, token) in tokens {
        request = request.replace(&format!("{{{name}}}"), token);
    }
    assert!(
        !has_placeholder(&request),
        "{}:{}: an unknown placeholder in {request}",
        case.file,
        case.line
    );
    request
}

/// Waits until the upstream has recorded everything (an aborted body is recorded when its
/// upload fails, after the client's answer).
async fn settle(upstream: &TestUpstream) {
    let settled = upstream.clone();
    let mut last = usize::MAX;
    common::assert_eventually(Duration::from_secs(10), "the upstream settles", move || {
        let now = settled.count();
        let still = now == last;
        last = now;
        async move { still }
    })
    .await;
}

/// Judges every line's answer and what reached the upstream carrying its marker; panics
/// with every line that failed.
fn judge(cases: &[Case], answers: &[Answer], upstream: &TestUpstream) {
    let recorded = upstream.requests();
    let mut failures = Vec::new();
    for (index, (case, answer)) in cases.iter().zip(answers).enumerate() {
        let reached: Vec<_> = recorded
            .iter()
            .filter(|r| {
                r.headers
                    .get(MARKER)
                    .is_some_and(|v| v.as_bytes() == index.to_string().as_bytes())
            })
            .collect();
        let mut wrong = Vec::new();
        let mut expect = case.expect.split_whitespace();
        let (want_status, want_reason) = (expect.next().unwrap(), expect.next().unwrap_or("*"));
        match answer {
            Answer::Status(status, reason) => {
                if want_status == "reset"
                    || (want_status != "*" && status.to_string() != want_status)
                {
                    wrong.push(format!("status {status}, not {want_status}"));
                }
                if want_reason != "*" && reason != want_reason {
                    wrong.push(format!("reason {reason}, not {want_reason}"));
                }
            }
            // A refusal without an answer is one, where any status is.
            Answer::Reset if matches!(want_status, "reset" | "*") => {}
            Answer::Nothing(_) if want_status == "*" => {}
            Answer::Reset => wrong.push(format!("reset, not {want_status}")),
            Answer::Nothing(what) => wrong.push(format!("no answer ({what}), not {want_status}")),
        }
        for condition in expect {
            let one = reached.first().filter(|_| reached.len() == 1);
            let ok = match condition.split_once(['=', ':']) {
                Some(("upstream", "none")) => reached.is_empty(),
                Some(("upstream", "one")) => reached.len() == 1,
                Some(("upstream", "not-whole")) => reached.iter().all(|r| !r.body_complete),
                Some(("target", path)) => one.is_some_and(|r| r.target == path),
                Some(("hdr", pair)) => {
                    let (name, value) = pair.split_once('=').expect("hdr:NAME=VALUE");
                    let value = unescape(value);
                    one.is_some_and(|r| {
                        let values: Vec<_> = r.headers.get_all(name).iter().collect();
                        values.len() == 1 && values[0].as_bytes() == value.as_slice()
                    })
                }
                Some(("nohdr", name)) => reached.iter().all(|r| !r.headers.contains_key(name)),
                _ => panic!("{}:{}: unknown condition {condition}", case.file, case.line),
            };
            if !ok {
                wrong.push(format!(
                    "{condition} does not hold (upstream got {reached:?})"
                ));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}:{} {}: {}",
                case.file,
                case.line,
                case.name,
                wrong.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus lines failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_the_attack_corpus() {
    let (gw, upstream, tokens) = start().await;
    let host = gw.addr(0).to_string();
    let cases = corpus("tests/attacks");
    assert!(cases.len() >= 60, "the corpus has {} lines", cases.len());
    // Every request first; then, once the upstream has settled, each line's conditions.
    let mut answers = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let mut bytes = unescape(&expand(case, &host, &tokens));
        let ends_head =
            bytes.windows(4).any(|w| w == b"\r\n\r\n") || bytes.windows(2).any(|w| w == b"\n\n");
        if !ends_head {
            bytes.extend_from_slice(b"Connection: close\r\n\r\n");
        }
        // The marker goes right after the request line.
        let at = bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        let marker = format!("{MARKER}: {index}\r\n");
        bytes.splice(at..at, marker.bytes());
        let response = raw_exchange(gw.addr(0), &bytes, Duration::from_secs(3)).await;
        answers.push(match answer_of(&response) {
            Some((status, reason)) => Answer::Status(status, reason),
            None => Answer::Nothing(response),
        });
    }
    settle(&upstream).await;
    judge(&cases, &answers, &upstream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_the_http2_corpus() {
    let (gw, upstream, tokens) = start().await;
    let host = gw.addr(0).to_string();
    let cases = corpus("tests/attacks/http2");
    assert!(
        cases.len() >= 20,
        "the HTTP/2 corpus has {} lines",
        cases.len()
    );
    let mut answers = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let request = expand(case, &host, &tokens);
        let (mut fields, data) = raw_h2::parse_request(&request);
        fields.push((MARKER.as_bytes().to_vec(), index.to_string().into_bytes()));
        answers.push(raw_h2::exchange(gw.addr(0), &fields, data.as_deref()).await);
    }
    settle(&upstream).await;
    judge(&cases, &answers, &upstream);
}

/// HTTP/2 written by hand (h2c with prior knowledge, RFC 9113 §3.3): the frames a real
/// client library would refuse to send. Header blocks are HPACK literals without indexing
/// (RFC 7541 §6.2.2), names and values exactly as the line gives them.
mod raw_h2 {
    use super::{Answer, unescape};
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const DATA: u8 = 0x0;
    const HEADERS: u8 = 0x1;
    const RST_STREAM: u8 = 0x3;
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const END_STREAM: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    const ACK: u8 = 0x1;

    /// Header fields as sent: name and value bytes.
    pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    /// A line's request: header fields `name: value` separated by ` | `, and optionally a
    /// last item `DATA <bytes>` (escapes as in the HTTP/1 corpus) sent as one DATA frame.
    pub fn parse_request(text: &str) -> (Fields, Option<Vec<u8>>) {
        let mut fields = Vec::new();
        let mut data = None;
        for item in text.split(" | ") {
            if let Some(body) = item.strip_prefix("DATA ") {
                data = Some(unescape(body));
                continue;
            }
            // The name ends at the first ": " after its first byte (pseudo-headers start
            // with a colon).
            let at = item[1..].find(": ").map(|i| i + 1).expect("name: value");
            fields.push((unescape(&item[..at]), unescape(&item[at + 2..])));
        }
        (fields, data)
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), first byte's high bits 0.
    fn integer(value: usize, n: u32, out: &mut Vec<u8>) {
        let max = (1usize << n) - 1;
        if value < max {
            out.push(value as u8);
            return;
        }
        out.push(max as u8);
        let mut rest = value - max;
        while rest >= 128 {
            out.push((rest % 128 + 128) as u8);
            rest /= 128;
        }
        out.push(rest as u8);
    }

    fn header_block(fields: &Fields) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            out.push(0x00); // literal without indexing, new name
            integer(name.len(), 7, &mut out);
            out.extend_from_slice(name);
            integer(value.len(), 7, &mut out);
            out.extend_from_slice(value);
        }
        out
    }

    /// Sends one request on stream 1 and reads until its response ends, it is reset, the
    /// connection goes away, or 3 s pass.
    pub async fn exchange(addr: SocketAddr, fields: &Fields, data: Option<&[u8]>) -> Answer {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut out = PREFACE.to_vec();
        out.extend(frame(SETTINGS, 0, 0, &[]));
        let headers_flags = END_HEADERS | if data.is_none() { END_STREAM } else { 0 };
        out.extend(frame(HEADERS, headers_flags, 1, &header_block(fields)));
        if let Some(body) = data {
            out.extend(frame(DATA, END_STREAM, 1, body));
        }
        stream.write_all(&out).await.unwrap();
        let read = async {
            let (mut status, mut body) = (None, Vec::new());
            loop {
                let mut head = [0u8; 9];
                if stream.read_exact(&mut head).await.is_err() {
                    return status.map_or(Answer::Nothing("closed".into()), |s| {
                        Answer::Status(s, reason(&body))
                    });
                }
                let len =
                    usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
                let (kind, flags) = (head[3], head[4]);
                let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                let mut payload = vec![0u8; len];
                if stream.read_exact(&mut payload).await.is_err() {
                    return Answer::Nothing("closed mid-frame".into());
                }
                match kind {
                    SETTINGS if flags & ACK == 0 => {
                        let _ = stream.write_all(&frame(SETTINGS, ACK, 0, &[])).await;
                    }
                    RST_STREAM if id == 1 => return Answer::Reset,
                    GOAWAY if status.is_none() => return Answer::Reset,
                    HEADERS if id == 1 && status.is_none() => {
                        status = Some(status_of(&payload).expect("a :status first"));
                    }
                    DATA if id == 1 => body.extend_from_slice(&payload),
                    _ => {}
                }
                if id == 1 && matches!(kind, HEADERS | DATA) && flags & END_STREAM != 0 {
                    return Answer::Status(status.unwrap_or(0), reason(&body));
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(3), read)
            .await
            .unwrap_or(Answer::Nothing("no answer in 3 s".into()))
    }

    fn reason(body: &[u8]) -> String {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into())
    }

    /// The `:status` a response header block starts with: an indexed static-table entry
    /// (RFC 7541 Appendix A, 8–14), or a literal with the `:status` name and a plain or
    /// Huffman-coded three-digit value.
    fn status_of(block: &[u8]) -> Option<u16> {
        const INDEXED: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
        let first = *block.first()?;
        if first & 0x80 != 0 {
            return INDEXED
                .get(usize::from(first & 0x7f).checked_sub(8)?)
                .copied();
        }
        let index = if first & 0x40 != 0 {
            first & 0x3f
        } else {
            first & 0x0f
        };
        if !(8..=14).contains(&index) {
            return None;
        }
        let (len_byte, value) = (*block.get(1)?, block.get(2..)?);
        let value = value.get(..usize::from(len_byte & 0x7f))?;
        let text = if len_byte & 0x80 == 0 {
            String::from_utf8(value.to_vec()).ok()?
        } else {
            huffman_digits(value)?
        };
        text.parse().ok()
    }

    /// Decodes Huffman-coded decimal digits (RFC 7541 Appendix B: 0–2 are five bits
    /// `000xx`, 3–9 six bits `011xxx`); `None` for anything else.
    fn huffman_digits(bytes: &[u8]) -> Option<String> {
        let bits: Vec<u8> = bytes
            .iter()
            .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
            .collect();
        let value = |range: std::ops::Range<usize>| {
            bits.get(range)
                .map(|b| b.iter().fold(0u8, |acc, bit| acc << 1 | bit))
        };
        let (mut out, mut at) = (String::new(), 0);
        while at + 5 <= bits.len() {
            if bits[at..].iter().all(|b| *b == 1) {
                break; // padding
            }
            match value(at..at + 2)? {
                0 => {
                    let digit = value(at + 2..at + 5)?;
                    if digit > 2 {
                        return None;
                    }
                    out.push(char::from(b'0' + digit));
                    at += 5;
                }
                1 if value(at + 2..at + 3)? == 1 => {
                    let digit = value(at + 3..at + 6)?;
                    if digit == 0 {
                        return None;
                    }
                    out.push(char::from(b'2' + digit));
                    at += 6;
                }
                _ => return None,
            }
        }
        Some(out)
    }
}
