//! Hot reload through the real gateway: under load across allow → deny → allow with invalid
//! configs in between (none applied, no request failed, every answer consistent with a config
//! in force while it ran); on file change (rename-write and a Kubernetes-style symlink swap);
//! settings that need a restart refused; certificate rotation; the admin endpoints.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The config: one HTTPS and one plain listener, `/api` allowed (public) or denied.
fn config(pki: &Pki, upstream: &TestUpstream, allow: bool, extra: &str) -> String {
    let policy = if allow { "public" } else { "deny" };
    let upstream_key = if allow { "  upstream: app\n" } else { "" };
    format!(
        "{}{extra}",
        GatewayYaml::new()
            .and_https(&pki.cert, &pki.key)
            .upstream("app", &upstream.url())
            .routes(&format!(
                "- name: api\n  prefix: /api\n{upstream_key}  policy: {policy}\n"
            ))
            .top("reload:\n  watch: false")
            .yaml()
    )
}

/// `POST /reload` on the admin listener: status and body.
async fn admin_reload(gw: &TestGateway) -> (u16, Value) {
    let url = format!("http://{}/reload", gw.gateway.admin_address().unwrap());
    let response = client().post(url).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn admin_get(gw: &TestGateway, path: &str) -> (u16, Value) {
    let url = format!("http://{}{path}", gw.gateway.admin_address().unwrap());
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Replaces `path` as editors do: a new file renamed over the old one.
fn rename_write(work: &Workdir, name: &str, text: &str) {
    let tmp = work.write(&format!(".{name}.tmp"), text);
    std::fs::rename(tmp, work.path().join(name)).unwrap();
}

#[tokio::test]
async fn reload_under_load_applies_valid_configs_whole_and_drops_no_request() {
    let work = Workdir::new();
    let pki = pki(&work);
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::start(work, &config(&pki, &upstream, true, "")).await;
    let url = gw.url(0, "/api/x");

    // Clients send requests back to back while the config changes under them; each answer
    // is kept with when its request started and ended.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let epoch = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, stop, answered) = (url.clone(), stop.clone(), answered.clone());
        clients.push(tokio::spawn(async move {
            let http = client();
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = epoch.elapsed();
                let result = http.get(&url).send().await;
                let answer = match result {
                    Ok(r) => {
                        let (status, code, _) = reason(r).await;
                        Ok((status, code))
                    }
                    Err(e) => Err(e.to_string()),
                };
                seen.push((started, epoch.elapsed(), answer));
                answered.fetch_add(1, Ordering::Relaxed);
            }
            seen
        }));
    }

    // (when it took effect, allowed) for each applied config, the first at 0.
    let mut in_force = vec![(Duration::ZERO, true)];
    let mut allow = true;
    let steps = [
        "flip",
        "flip",
        "yaml",
        "flip",
        "flip",
        "upstream",
        "flip",
        "flip",
        "certificate",
        "flip",
        "flip",
        "flip",
        "flip",
    ];
    let mut applied = 0;
    let mut refused = 0;
    for step in steps {
        // Let traffic run on the current config first.
        let before = answered.load(Ordering::Relaxed);
        let answered = &answered;
        assert_eventually(
            Duration::from_secs(30),
            "requests are answered",
            || async move { answered.load(Ordering::Relaxed) >= before + 170 },
        )
        .await;
        let text = match step {
            "flip" => config(&pki, &upstream, !allow, ""),
            "yaml" => config(&pki, &upstream, !allow, "routes: [\n"),
            "upstream" => config(&pki, &upstream, !allow, "")
                .replace("  upstream: app\n", "  upstream: nowhere\n")
                .replace(
                    "  policy: deny\n",
                    "  upstream: nowhere\n  policy: public\n",
                ),
            _ => config(&pki, &upstream, !allow, "")
                .replace(&pki.cert.display().to_string(), "/nonexistent/cert.pem"),
        };
        rename_write(&gw.work, "gateway.yaml", &text);
        let sent = epoch.elapsed();
        let (status, body) = admin_reload(&gw).await;
        if step == "flip" {
            assert_eq!(
                (status, body["result"].as_str()),
                (200, Some("applied")),
                "{body}"
            );
            allow = !allow;
            // In force from some moment between the call and its answer: the request log is
            // judged against both ends.
            in_force.push((sent, allow));
            applied += 1;
        } else {
            assert_eq!(status, 422, "{step}: {body}");
            assert_eq!(body["result"], "refused", "{step}");
            let errors = body["errors"].to_string();
            assert!(errors.contains("gateway.yaml"), "{step}: {errors}");
            refused += 1;
        }
    }
    let before = answered.load(Ordering::Relaxed);
    let counted = &answered;
    assert_eventually(
        Duration::from_secs(30),
        "requests are answered",
        || async move { counted.load(Ordering::Relaxed) >= before + 100 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.unwrap());
    }

    assert!(answers.len() >= 2000, "only {} requests", answers.len());
    assert_eq!((applied, refused), (10, 3));
    // Each answer is what a config in force during the request says: allowed → 200 from the
    // upstream, denied → 403 denied_by_rule; never an error, never an invalid config's answer.
    let mut wrong = Vec::new();
    for (started, ended, answer) in &answers {
        let Ok((status, code)) = answer else {
            wrong.push(format!("{started:?}: {answer:?}"));
            continue;
        };
        let allowed = match (*status, code.as_str()) {
            (200, _) => true,
            (403, "denied_by_rule") => false,
            _ => {
                wrong.push(format!("{started:?}: {status} {code}"));
                continue;
            }
        };
        // The configs whose time in force overlaps [started, ended]; a config took effect at
        // the latest when the reload call after `sent` answered, so the next one's start
        // bounds it from above.
        let possible = in_force.iter().enumerate().any(|(i, (from, allow))| {
            let until = in_force
                .get(i + 1)
                .map_or(Duration::MAX, |(t, _)| *t + Duration::from_secs(1));
            *allow == allowed && *from <= *ended && *started <= until
        });
        if !possible {
            wrong.push(format!(
                "{started:?}..{ended:?}: {status} under no config in force"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong of {}: {:?}",
        wrong.len(),
        answers.len(),
        &wrong[..wrong.len().min(10)]
    );
    let (_, body) = admin_get(&gw, "/config").await;
    assert_eq!(body["reloads"]["applied"], 10);
    assert_eq!(body["reloads"]["failed"], 3);
}

#[tokio::test]
async fn settings_that_need_a_restart_are_refused_with_a_diagnostic() {
    let upstream = TestUpstream::start().await;
    let base = GatewayYaml::new()
        .upstream("app", &upstream.url())
        .public_route("open", "/", "app")
        .top("reload:\n  watch: false");
    let gw = base.clone().server("max_connections: 100").start().await;
    rename_write(
        &gw.work,
        "gateway.yaml",
        &base.clone().server("max_connections: 50").yaml(),
    );
    let (status, body) = admin_reload(&gw).await;
    assert_eq!(status, 422, "{body}");
    let errors = body["errors"].to_string();
    assert!(
        errors.contains("server.max_connections") && errors.contains("restart"),
        "{errors}"
    );
    // The same file again: unchanged settings, applied (nothing else changed either).
    rename_write(
        &gw.work,
        "gateway.yaml",
        &base.clone().server("max_connections: 100").yaml(),
    );
    let (status, body) = admin_reload(&gw).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("unchanged")),
        "{body}"
    );
    assert_eq!(
        client().get(gw.url(0, "/x")).send().await.unwrap().status(),
        200
    );
}

/// A route added in the main file.
const THIRD_ROUTE: &str =
    "routes:\n  - name: three\n    prefix: /three\n    upstream: app\n    policy: public\n";

#[tokio::test]
async fn a_file_change_reloads_by_rename_write_and_by_symlink_swap() {
    let work = Workdir::new();
    let upstream = TestUpstream::start().await;
    // Rule files as a Kubernetes ConfigMap mounts them: rules.yaml -> ..data/rules.yaml, and
    // ..data a symlink to the current version's folder, swapped by a rename.
    let rules = |prefix: &str| {
        format!(
            "routes:\n  - name: api\n    prefix: {prefix}\n    upstream: app\n    policy: public\n"
        )
    };
    std::fs::create_dir(work.path().join("..v1")).unwrap();
    std::fs::write(work.path().join("..v1/rules.yaml"), rules("/one")).unwrap();
    std::os::unix::fs::symlink("..v1", work.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/rules.yaml", work.path().join("rules.yaml")).unwrap();
    let main = |extra: &str| {
        GatewayYaml::new()
            .upstream("app", &upstream.url())
            .top(&format!(
                "rule_files: [rules.yaml]\nreload:\n  debounce: 100ms\n{extra}"
            ))
            .yaml()
    };
    let gw = TestGateway::start(work, &main("")).await;
    let status = |path: &'static str| {
        let url = gw.url(0, path);
        async move { client().get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!((status("/one").await, status("/two").await), (200, 404));

    // The ConfigMap way: a new version folder, a new ..data link renamed over the old one.
    std::fs::create_dir(gw.work.path().join("..v2")).unwrap();
    std::fs::write(gw.work.path().join("..v2/rules.yaml"), rules("/two")).unwrap();
    std::os::unix::fs::symlink("..v2", gw.work.path().join("..data_tmp")).unwrap();
    std::fs::rename(
        gw.work.path().join("..data_tmp"),
        gw.work.path().join("..data"),
    )
    .unwrap();
    assert_eventually(
        Duration::from_secs(10),
        "the symlink swap is picked up",
        || async { status("/two").await == 200 && status("/one").await == 404 },
    )
    .await;

    // The editor way: the main file replaced by a rename; a route added there.
    rename_write(&gw.work, "gateway.yaml", &main(THIRD_ROUTE));
    assert_eventually(
        Duration::from_secs(10),
        "the rename-write is picked up",
        || async { status("/three").await == 200 },
    )
    .await;
    // A touch that changes nothing reloads nothing.
    let (_, before) = admin_get(&gw, "/config").await;
    rename_write(&gw.work, "gateway.yaml", &main(THIRD_ROUTE));
    assert_eventually(
        Duration::from_secs(10),
        "the no-op change is seen",
        || async { admin_get(&gw, "/config").await.1["reloads"]["unchanged"].as_u64() >= Some(1) },
    )
    .await;
    let (_, after) = admin_get(&gw, "/config").await;
    assert_eq!(before["sha256"], after["sha256"]);
    assert_eq!(before["reloads"]["applied"], after["reloads"]["applied"]);
}

#[tokio::test]
async fn a_rotated_certificate_is_used_by_new_handshakes_only() {
    let work = Workdir::new();
    let first = pki(&work);
    let other = Workdir::new();
    let second = pki(&other);
    let upstream = TestUpstream::start().await;
    let cert = work.write("live.pem", &std::fs::read_to_string(&first.cert).unwrap());
    let key = work.write("live.key", &std::fs::read_to_string(&first.key).unwrap());
    let gw = GatewayYaml::new()
        .https_only(&cert, &key)
        .upstream("app", &upstream.url())
        .public_route("open", "/", "app")
        .top("reload:\n  watch: false")
        .start_in(work)
        .await;
    let url = format!("https://localhost:{}/x", gw.addr(0).port());
    let old_client = tls_client(&first.ca_pem, false);
    assert_eq!(old_client.get(&url).send().await.unwrap().status(), 200);

    std::fs::copy(&second.cert, &cert).unwrap();
    std::fs::copy(&second.key, &key).unwrap();
    let (status, body) = admin_reload(&gw).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    // A new handshake presents the new certificate...
    let new_client = tls_client(&second.ca_pem, false);
    assert_eq!(new_client.get(&url).send().await.unwrap().status(), 200);
    assert!(
        tls_client(&first.ca_pem, false)
            .get(&url)
            .send()
            .await
            .is_err(),
        "a new handshake still presented the old certificate"
    );
    // ...while the connection opened before keeps working.
    assert_eq!(old_client.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn readiness_follows_keys_and_shutdown() {
    let key = TestKey::rsa("k1");
    let jwks = TestJwks::start(&[&key]).await;
    jwks.set_mode(JwksMode::Down);
    let upstream = TestUpstream::start_with_delay(Duration::from_millis(1500)).await;
    let gw = GatewayYaml::new()
        .upstream("app", &upstream.url())
        .providers(&format!(
            "- name: idp\n  issuer: {ISSUER}\n  audiences: [{AUDIENCE}]\n  algorithms: [RS256]\n  jwks_uri: {}\n  remote_keys:\n    allow_http: true\n    min_refresh: 1s\n    max_refresh: 2s\n",
            jwks.jwks_uri()
        ))
        .public_route("slow", "/slow", "app")
        .routes("- name: api\n  prefix: /api\n  upstream: app\n")
        .start()
        .await;
    assert_eq!(admin_get(&gw, "/healthz").await.0, 200);
    let (status, body) = admin_get(&gw, "/readyz").await;
    assert_eq!(status, 503, "ready without keys: {body}");
    assert!(
        body["reasons"].to_string().contains("provider idp"),
        "{body}"
    );

    jwks.set_mode(JwksMode::Serve);
    assert_eventually(
        Duration::from_secs(10),
        "ready once keys arrive",
        || async { admin_get(&gw, "/readyz").await.0 == 200 },
    )
    .await;
    // An IdP outage after the first good fetch does not pull the replica out.
    jwks.set_mode(JwksMode::Down);
    let fetches = jwks.fetches();
    assert_eventually(Duration::from_secs(10), "a refresh fails", || async {
        jwks.fetches() > fetches
    })
    .await;
    assert_eq!(admin_get(&gw, "/readyz").await.0, 200);

    // Shutdown: 503 at once, while an in-flight request drains.
    let slow = tokio::spawn(client().get(gw.url(0, "/slow")).send());
    assert_eventually(
        Duration::from_secs(5),
        "the slow request is in flight",
        || async { upstream.count() >= 1 },
    )
    .await;
    let admin = gw.gateway.admin_address().unwrap();
    let TestGateway {
        gateway,
        work: _work,
    } = gw;
    let stopping = tokio::spawn(gateway.shutdown());
    let readyz = format!("http://{admin}/readyz");
    assert_eventually(Duration::from_secs(5), "not ready while draining", || {
        let readyz = readyz.clone();
        async move {
            let r = client().get(readyz).send().await;
            r.is_ok_and(|r| r.status() == 503)
        }
    })
    .await;
    assert_eq!(
        slow.await.unwrap().unwrap().status(),
        200,
        "the in-flight request finished"
    );
    stopping.await.unwrap();
}

#[tokio::test]
async fn the_admin_token_guards_every_endpoint() {
    let work = Workdir::new();
    work.write("admin.token", "s3cret-admin\n");
    let upstream = TestUpstream::start().await;
    let gw = GatewayYaml::new()
        .upstream("app", &upstream.url())
        .public_route("open", "/", "app")
        .admin("address: 127.0.0.1:0\ntoken_file: admin.token")
        .start_in(work)
        .await;
    let admin = gw.gateway.admin_address().unwrap();
    for path in ["/healthz", "/readyz", "/config"] {
        let url = format!("http://{admin}{path}");
        assert_eq!(
            client().get(&url).send().await.unwrap().status(),
            401,
            "{path}"
        );
        let wrong = client().get(&url).bearer_auth("nope").send().await.unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let right = client()
            .get(&url)
            .bearer_auth("s3cret-admin")
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200, "{path}");
    }
    let (status, body) = admin_get(&gw, "/nope").await;
    assert_eq!((status, body.is_null()), (401, false));
    let config = client()
        .get(format!("http://{admin}/config"))
        .bearer_auth("s3cret-admin")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!config.contains("s3cret-admin"), "the token is never shown");
    // The proxy port serves no admin endpoint.
    assert_eq!(
        client()
            .get(gw.url(0, "/reload"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the proxy forwards /reload like any path"
    );
    assert_eq!(
        upstream
            .requests()
            .last()
            .map(|r| r.target.clone())
            .as_deref(),
        Some("/reload")
    );
}
