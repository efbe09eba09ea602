//! The attack corpus: every line of every file in `tests/attacks/` is one request replayed over
//! a raw socket against the real gateway with a recording upstream. Adding a case is adding a
//! line.
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
//!   `nohdr:NAME` (nothing that reached it carried NAME), `target=PATH` (the one request's
//!   target).

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

fn corpus() -> Vec<Case> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacks");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_the_attack_corpus() {
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
    let host = gw.addr(0).to_string();
    let cases = corpus();
    assert!(cases.len() >= 60, "the corpus has {} lines", cases.len());
    // Every request first; then, once the upstream has settled (an aborted body is recorded
    // when its upload fails, after the client's answer), each line's conditions, on what
    // reached the upstream carrying that line's marker header.
    let mut answers = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let mut request = case.request.replace("{host}", &host);
        for (name, token) in &tokens {
            request = request.replace(&format!("{{{name}}}"), token);
        }
        assert!(
            !has_placeholder(&request),
            "{}:{}: an unknown placeholder in {request}",
            case.file,
            case.line
        );
        let mut bytes = unescape(&request);
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
        answers.push(raw_exchange(gw.addr(0), &bytes, Duration::from_secs(3)).await);
    }
    let settled = upstream.clone();
    let mut last = usize::MAX;
    common::assert_eventually(Duration::from_secs(10), "the upstream settles", move || {
        let now = settled.count();
        let still = now == last;
        last = now;
        async move { still }
    })
    .await;
    let recorded = upstream.requests();
    let mut failures = Vec::new();
    for (index, (case, response)) in cases.iter().zip(&answers).enumerate() {
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
        match answer_of(response) {
            // A connection closed without an answer is a refusal too, where any status is.
            None if want_status == "*" => {}
            Some((status, reason)) => {
                if want_status != "*" && status.to_string() != want_status {
                    wrong.push(format!("status {status}, not {want_status}"));
                }
                if want_reason != "*" && reason != want_reason {
                    wrong.push(format!("reason {reason}, not {want_reason}"));
                }
            }
            None => wrong.push(format!("no HTTP answer: {response:?}")),
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
                    one.is_some_and(|r| {
                        let values: Vec<_> = r.headers.get_all(name).iter().collect();
                        values.len() == 1 && values[0] == value
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
