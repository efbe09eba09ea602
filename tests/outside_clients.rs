//! Clients nobody here wrote verify the issuer's tokens from its published metadata and JWKS:
//! PyJWT (`PyJWKClient`) and Node's `jose` (`createRemoteJWKSet` + `jwtVerify`), before and
//! after a signing-key rollover (old and new tokens both verify during the overlap).
//!
//! Needs python3 with PyJWT and node with `tests/clients/node_modules` (`.ci/run` installs
//! both); without them the test says so and passes only when `PORTCULLIS_REQUIRE_CLIENTS` is
//! unset.

mod common;

use std::process::Command;
use std::time::Duration;

use common::issuer::{Setup, setup_at, token_of};

fn available() -> bool {
    let python = Command::new("python3")
        .args(["-c", "import jwt"])
        .status()
        .is_ok_and(|s| s.success());
    let node = std::path::Path::new("tests/clients/node_modules/jose").is_dir()
        && Command::new("node")
            .arg("--version")
            .status()
            .is_ok_and(|s| s.success());
    if !(python && node) {
        assert!(
            std::env::var_os("PORTCULLIS_REQUIRE_CLIENTS").is_none(),
            "python3 with PyJWT and node with tests/clients/node_modules are required"
        );
        eprintln!(
            "SKIPPED: pip install -r tests/clients/requirements.txt; (cd tests/clients && npm ci)"
        );
    }
    python && node
}

/// What each outside client says of `token`: the subject (and, for jose, the kid).
fn verify_outside(s: &Setup, issuer: &str, token: &str) -> (String, String) {
    let python = Command::new("python3")
        .arg("tests/clients/verify.py")
        .args([issuer, "api"])
        .arg(&s.ca)
        .arg(token)
        .output()
        .unwrap();
    assert!(
        python.status.success(),
        "PyJWT refused it: {}",
        String::from_utf8_lossy(&python.stderr)
    );
    let node = Command::new("node")
        .arg("verify.mjs")
        .args([issuer, "api", token])
        .current_dir("tests/clients")
        .env("NODE_EXTRA_CA_CERTS", &s.ca)
        .output()
        .unwrap();
    assert!(
        node.status.success(),
        "jose refused it: {}",
        String::from_utf8_lossy(&node.stderr)
    );
    (
        String::from_utf8_lossy(&python.stdout).trim().to_string(),
        String::from_utf8_lossy(&node.stdout).trim().to_string(),
    )
}

fn kid_of(token: &str) -> String {
    let header: serde_json::Value = serde_json::from_slice(&common::issuer::base64_url(
        token.split('.').next().unwrap(),
    ))
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_and_jose_verify_tokens_across_a_key_rollover() {
    if !available() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("https://localhost:{port}");
    let old = portcullis::issuer::signing::generate_es256_pem().unwrap();
    let new = portcullis::issuer::signing::generate_es256_pem().unwrap();
    // Logins are polled below: a client rate that does not get in the way.
    let keys = |list: &str| {
        format!(
            "  publish_ahead: 2s\n  client_rate: {{per_minute: 6000, burst: 1000}}\n  signing_keys:\n{list}"
        )
    };
    let one = keys("    - {file: old.pem, kid: old}\n");
    let s = setup_at(Some(port), &one, &[("old.pem", &old), ("new.pem", &new)]).await;
    let (before, _, _) = token_of(s.login("alice", "alice-password").await).await;
    assert_eq!(kid_of(&before), "old");
    assert_eq!(
        verify_outside(&s, &issuer, &before),
        ("alice".into(), "alice old".into())
    );

    // Add the new key: published now, signing only after publish_ahead.
    let yaml = std::fs::read_to_string(s.gw.work.path().join("gateway.yaml")).unwrap();
    let both = keys("    - {file: old.pem, kid: old}\n    - {file: new.pem, kid: new}\n");
    let path = s.gw.work.write("gateway.yaml", &yaml.replace(&one, &both));
    let config = portcullis::config::load(&path).unwrap();
    s.gw.gateway.apply(config).await.unwrap();
    let (during, _, _) = token_of(s.login("alice", "alice-password").await).await;
    assert_eq!(
        kid_of(&during),
        "old",
        "a key signs only once it has been published"
    );
    // Once the new key has been published for publish_ahead (2 s), it signs.
    let after = std::sync::Mutex::new(String::new());
    common::assert_eventually(Duration::from_secs(10), "the new key signs", || async {
        let (token, _, _) = token_of(s.login("alice", "alice-password").await).await;
        let signed_by_new = kid_of(&token) == "new";
        *after.lock().unwrap() = token;
        signed_by_new
    })
    .await;
    let after = after.into_inner().unwrap();

    // The overlap: tokens of both keys verify, from the same published set.
    for (token, kid) in [(&before, "old"), (&during, "old"), (&after, "new")] {
        let (py, js) = verify_outside(&s, &issuer, token);
        assert_eq!(py, "alice");
        assert_eq!(js, format!("alice {kid}"));
        assert_eq!(s.get("/api/x", token).await, 200);
    }
}
