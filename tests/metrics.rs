//! `/metrics` on the admin listener, read back after known traffic: the text passes
//! `promtool check metrics` (installed by `.ci/run`; skipped with a note where it is missing)
//! and its counters match what was sent.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

/// `name{labels}` → value, from Prometheus text (comments skipped).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(gw: &TestGateway) -> String {
    let url = format!("http://{}/metrics", gw.gateway.admin_address().unwrap());
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_the_traffic_and_pass_promtool() {
    let work = Workdir::new();
    let key = TestKey::rsa("k1");
    work.jwks("jwks.json", &[&key]);
    let upstream = TestUpstream::start().await;
    let gw = GatewayYaml::new()
        .upstream("app", &upstream.url())
        .upstream_with(
            "dead",
            "url: http://127.0.0.1:1\nconnect_timeout: 1s\nretries: 0",
        )
        .file_provider("main", ISSUER, "RS256", "jwks.json")
        .public_route("open", "/open", "app")
        .routes("- name: api\n  prefix: /api\n  upstream: app\n")
        .public_route("down", "/down", "dead")
        .start_in(work)
        .await;
    let http = client();
    let token = mint(&key, "RS256", &claims());
    for i in 0..3 {
        let r = http
            .get(gw.url(0, &format!("/open/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        let r = http
            .post(gw.url(0, "/api/x"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        http.get(gw.url(0, "/api/x")).send().await.unwrap().status(),
        401
    );
    let forged = mint(&TestKey::rsa("k1"), "RS256", &claims());
    let r = http
        .get(gw.url(0, "/api/x"))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        http.get(gw.url(0, "/nowhere"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(gw.url(0, "/down")).send().await.unwrap().status(),
        502
    );

    let text = scrape(&gw).await;
    let got = samples(&text);
    let want = [
        (
            r#"portcullis_requests_total{route="open",method="read",status="2xx",reason="allowed"}"#,
            3.0,
        ),
        (
            r#"portcullis_requests_total{route="api",method="write",status="2xx",reason="allowed"}"#,
            2.0,
        ),
        (
            r#"portcullis_requests_total{route="api",method="read",status="4xx",reason="missing_token"}"#,
            1.0,
        ),
        (
            r#"portcullis_requests_total{route="",method="read",status="4xx",reason="no_route"}"#,
            1.0,
        ),
        (
            r#"portcullis_requests_total{route="down",method="read",status="5xx",reason="upstream_unavailable"}"#,
            1.0,
        ),
        (
            r#"portcullis_request_duration_seconds_count{route="open"}"#,
            3.0,
        ),
        (r#"portcullis_tokens_accepted_total{provider="main"}"#, 2.0),
        (r#"portcullis_keys{provider="main"}"#, 1.0),
        (
            r#"portcullis_upstream_requests_total{upstream="app",outcome="2xx"}"#,
            5.0,
        ),
        (
            r#"portcullis_upstream_requests_total{upstream="dead",outcome="connect_error"}"#,
            1.0,
        ),
        (
            r#"portcullis_token_cache_lookups_total{result="miss"}"#,
            2.0,
        ),
        (r#"portcullis_token_cache_lookups_total{result="hit"}"#, 1.0),
        (
            r#"portcullis_requests_total{route="api",method="read",status="4xx",reason="bad_signature"}"#,
            1.0,
        ),
        (
            r#"portcullis_token_verification_duration_seconds_count{provider="main",result="valid"}"#,
            2.0,
        ),
        (
            r#"portcullis_token_verification_duration_seconds_count{provider="",result="invalid"}"#,
            1.0,
        ),
        (r#"portcullis_config_reloads_total{result="applied"}"#, 0.0),
    ];
    let mut wrong = Vec::new();
    for (series, value) in want {
        if got.get(series) != Some(&value) {
            wrong.push(format!("{series}: want {value}, got {:?}", got.get(series)));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}\n{text}");
    // Every request to `app` went on a new or on a pooled connection.
    let opened = got[r#"portcullis_upstream_connections_opened_total{upstream="app"}"#];
    let reused = got[r#"portcullis_upstream_connections_reused_total{upstream="app"}"#];
    assert!(
        opened >= 1.0 && opened + reused == 5.0,
        "opened {opened}, reused {reused}"
    );
    assert!(got.contains_key(r#"portcullis_connections_by_protocol{protocol="http1"}"#));
    assert!(
        text.contains(r#"portcullis_build_info{version=""#),
        "{text}"
    );
    assert!(text.contains("portcullis_config_info{sha256=\""), "{text}");
    // Bounded labels only: never a path, a subject or a kid.
    for leak in ["/open/1", "/nowhere", "alice", "k1"] {
        assert!(!text.contains(leak), "{leak} in the metrics");
    }
    let duration_buckets = text
        .lines()
        .filter(|l| l.starts_with("portcullis_request_duration_seconds_bucket{route=\"open\""))
        .count();
    assert_eq!(duration_buckets, 13, "12 bounds and +Inf");

    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => eprintln!("promtool not found: the text format was not checked independently"),
    }
}

#[tokio::test]
async fn route_counts_survive_a_reload_that_keeps_the_route() {
    let upstream = TestUpstream::start().await;
    let config = |extra: &str| {
        GatewayYaml::new()
            .upstream("app", &upstream.url())
            .public_route("open", "/open", "app")
            .routes(extra)
            .top("reload:\n  watch: false")
            .yaml()
    };
    let gw = TestGateway::start(Workdir::new(), &config("")).await;
    for _ in 0..2 {
        client().get(gw.url(0, "/open")).send().await.unwrap();
    }
    gw.work.write(
        "gateway.yaml",
        &config("- name: more\n  prefix: /more\n  upstream: app\n  policy: public\n"),
    );
    let reload = format!("http://{}/reload", gw.gateway.admin_address().unwrap());
    assert_eq!(client().post(reload).send().await.unwrap().status(), 200);
    client().get(gw.url(0, "/open")).send().await.unwrap();
    let open =
        r#"portcullis_requests_total{route="open",method="read",status="2xx",reason="allowed"}"#;
    let gw_ref = &gw;
    assert_eventually(
        Duration::from_secs(5),
        "counted across the reload",
        || async move { samples(&scrape(gw_ref).await).get(open) == Some(&3.0) },
    )
    .await;
    let text = scrape(&gw).await;
    assert_eq!(
        samples(&text).get(r#"portcullis_config_reloads_total{result="applied"}"#),
        Some(&1.0)
    );
}
