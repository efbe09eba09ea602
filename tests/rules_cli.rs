//! `portcullis check` (lint, rule files, JSON) and `portcullis explain`, compared with golden
//! files in tests/golden/. Set PORTCULLIS_UPDATE_GOLDEN=1 to rewrite them after a deliberate
//! change, then review the diff.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Workdir;
use portcullis::demo::Minter;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs the binary from the crate root, so paths in its output are the relative ones given.
fn portcullis(args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(ROOT)
        .args(args)
        .output()
        .unwrap()
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(ROOT).join("tests/golden").join(name);
    if std::env::var_os("PORTCULLIS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (PORTCULLIS_UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "output differs from {}; if the change is intended, rerun with PORTCULLIS_UPDATE_GOLDEN=1",
        path.display()
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_lints_rules_across_rule_files() {
    let config = "tests/fixtures/lint/gateway.yaml";
    let out = portcullis(&["check", "--config", config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    golden("check-lint.txt", &text(&out.stdout));

    let out = portcullis(&["check", "--config", config, "--deny-warnings"]);
    assert_eq!(out.status.code(), Some(1));

    let out = portcullis(&["check", "--config", config, "--format", "json"]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["routes"], 9);
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 8, "{warnings:#?}");
    let shadowed = warnings
        .iter()
        .find(|w| w["rule"] == "old-health")
        .expect("old-health is reported");
    assert_eq!(shadowed["file"], "tests/fixtures/lint/extra/teams.yaml");
    assert_eq!(shadowed["line"], 8);
    assert!(
        shadowed["message"]
            .as_str()
            .unwrap()
            .starts_with("unreachable")
    );
}

#[test]
fn check_names_every_rule_error_with_file_line_and_rule() {
    let config = "tests/fixtures/broken/gateway.yaml";
    let out = portcullis(&["check", "--config", config]);
    assert_eq!(out.status.code(), Some(1));
    golden("check-broken.txt", &text(&out.stderr));

    let out = portcullis(&["check", "--config", config, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 7, "{errors:#?}");
    let duplicate = &errors[1];
    assert_eq!(duplicate["file"], "tests/fixtures/broken/rules.d/a.yaml");
    assert_eq!(duplicate["line"], 2);
    assert!(
        duplicate["message"]
            .as_str()
            .unwrap()
            .contains("tests/fixtures/broken/gateway.yaml:15"),
        "the duplicate names both places: {duplicate}"
    );
}

#[test]
fn rule_file_entries_must_match_files() {
    let work = Workdir::new();
    let config = work.write(
        "gateway.yaml",
        "listeners:\n  - address: 127.0.0.1:0\nupstreams:\n  app:\n    url: http://127.0.0.1:9\nrule_files:\n  - rules/*.yaml\n  - missing.yaml\n",
    );
    work.write("rules/bad.yaml", "routes:\n  - name: x\n    prefx: /\n");
    let out = portcullis(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let file = config.display();
    assert!(
        stderr.contains(&format!("{file}:8:5: rule_files[1]: "))
            && stderr.contains("missing.yaml does not exist"),
        "{stderr}"
    );
    let bad = work.path().join("rules/bad.yaml");
    assert!(
        stderr.contains(&format!(
            "{}:3:5: routes[0].prefx: unknown field `prefx`",
            bad.display()
        )),
        "{stderr}"
    );
}

#[test]
fn explain_shows_every_step() {
    let demo = "config/demo.yaml";
    let cases: &[(&str, &[&str])] = &[
        (
            "explain-denied.txt",
            &[
                "--claims",
                r#"{"sub":"alice","roles":["reader"]}"#,
                "GET",
                "http://localhost:8080/api/admin/users?page=2",
            ],
        ),
        (
            "explain-dot-segments.txt",
            &["GET", "/public/../api/orders"],
        ),
        ("explain-ambiguous.txt", &["GET", "/public/%2e%2e/api"]),
        ("explain-no-route.txt", &["DELETE", "/public/x"]),
        (
            "explain-own-resource.txt",
            &[
                "--config",
                "tests/fixtures/lint/gateway.yaml",
                "--claims",
                r#"{"sub":"alice","roles":["reader"]}"#,
                "GET",
                "/users/bob",
            ],
        ),
    ];
    for (name, args) in cases {
        let mut all = vec!["explain"];
        if !args.contains(&"--config") {
            all.extend(["--config", demo]);
        }
        all.extend(args.iter());
        let out = portcullis(&all);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        golden(name, &text(&out.stdout));
    }
}

#[test]
fn explain_verifies_a_real_token() {
    let minter = Minter::from_pem_file(
        &Path::new(ROOT).join("certs/demo-signing-key.pem"),
        "demo-rsa-1",
        "https://issuer.demo.portcullis.local",
        "demo-api",
    )
    .unwrap();
    let token = minter
        .mint("alice", &["admin"], "orders:read", 300)
        .unwrap();
    let out = portcullis(&[
        "explain",
        "--config",
        "config/demo.yaml",
        "--token",
        &token,
        "-H",
        "X-User-Id: spoofed",
        "GET",
        "/api/admin/users",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains(&token), "explain printed the token");
    golden("explain-token.txt", &stdout);

    let other_audience = Minter::from_pem_file(
        &Path::new(ROOT).join("certs/demo-signing-key.pem"),
        "demo-rsa-1",
        "https://issuer.demo.portcullis.local",
        "another-api",
    )
    .unwrap()
    .mint("alice", &["admin"], "", 300)
    .unwrap();
    // Flip one whole character inside the signature (not the last, which carries padding bits).
    let at = token.len() - 10;
    let flipped = if &token[at..at + 1] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
    for (token, reason) in [
        (&other_audience, "audience_mismatch"),
        (&tampered, "bad_signature"),
    ] {
        let out = portcullis(&[
            "explain",
            "--config",
            "config/demo.yaml",
            "--token",
            token,
            "GET",
            "/api/x",
        ]);
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(&format!("decision  401 {reason}")),
            "{stdout}"
        );
    }
}

#[test]
fn proxy_settings_are_checked_with_their_keys() {
    let work = Workdir::new();
    let config = work.write(
        "gateway.yaml",
        r#"listeners:
  - address: 127.0.0.1:0
server:
  trusted_proxies: [10.0.0.0/8, not-an-address]
  idle_timeout: 0s
upstreams:
  mixed:
    targets: [http://127.0.0.1:9, https://127.0.0.1:10]
  both:
    url: http://127.0.0.1:9
    targets: [http://127.0.0.1:10]
  h2:
    url: http://127.0.0.1:9
    http2: true
  broken:
    url: http://127.0.0.1:9
    host: "bad host"
    health_check:
      path: healthz
routes:
  - name: ws
    prefix: /ws
    upstream: h2
    policy: public
    upgrades: [websocket]
    strip_prefix: /other
"#,
    );
    let out = portcullis(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for expected in [
        "server.trusted_proxies[1]: expected an address or CIDR",
        "server.idle_timeout: expected a duration greater than 0",
        "upstreams.mixed.targets[1]: every target of an upstream uses the same scheme",
        "upstreams.both: expected url (one target) or targets",
        "upstreams.broken.host: expected preserve, target or a host[:port]",
        "upstreams.broken.health_check.path: expected a path such as /healthz",
        "routes[0].upgrades (rule \"ws\"): upgrades need an HTTP/1.1 upstream",
        "routes[0].strip_prefix (rule \"ws\"): \"/other\" is not a leading part",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}
