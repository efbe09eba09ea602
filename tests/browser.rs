//! The issuer in a real browser: headless Chromium (Debian's, through ChromeDriver) signs in on
//! the sign-in page over TLS, keeps the refresh cookie where scripts cannot read it, refreshes
//! from two tabs at once and stays signed in in both, does not send the cookie on a cross-site
//! POST, and signs out. CI installs the browser and sets `PORTCULLIS_REQUIRE_BROWSER`.

mod common;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::sync::Arc;
use std::time::Duration;

use common::TestUpstream;
use common::issuer::{COOKIE_NAME, Setup, setup};
use portcullis::issuer::Event;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webdriver::Browser;

const WAIT: Duration = Duration::from_secs(15);

/// An HTTPS server on the gateway's site (`https://localhost`, another port) that records what
/// it receives: cookies are per host, not per port, so it sees what the browser would send the
/// gateway.
async fn same_site_recorder(s: &Setup) -> TestUpstream {
    let dir = s.gw.work.path();
    let chain: Vec<_> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server-key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    TestUpstream::start_tls(Arc::new(server)).await
}

/// Another site (`http://127.0.0.1:PORT`, not `localhost`): `GET /post?to=URL` answers a page
/// that submits a form to URL as soon as it loads, as a hostile page would.
async fn other_site() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let target = head.split_whitespace().nth(1).unwrap_or("/");
                let to = target.split_once("?to=").map_or("", |(_, to)| to);
                let page = format!(
                    "<!doctype html><title>elsewhere</title><form method=post action=\"{to}\">\
<input name=everywhere value=true></form><script>document.forms[0].submit()</script>"
                );
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, task)
}

fn has_refresh_cookie(recorded: &common::Recorded) -> bool {
    recorded
        .headers
        .get_all("cookie")
        .iter()
        .any(|v| v.to_str().unwrap_or("").contains(COOKIE_NAME))
}

/// Waits (at most `WAIT`) until `script` returns `want` in the current tab.
async fn wait_for(browser: &Browser, script: &str, want: Value, what: &str) {
    common::assert_eventually(WAIT, what, || {
        let want = want.clone();
        async move { browser.run(script, json!([])).await == want }
    })
    .await;
}

/// Schedules a refresh in the current tab at Unix time `at` (ms); its answer lands in
/// `window.refreshed`.
async fn refresh_at(browser: &Browser, at: u64) {
    browser
        .run(
            "window.refreshed = null;
             setTimeout(async () => { window.refreshed = await window.portcullis.refresh(); },
                        Math.max(0, arguments[0] - Date.now()));
             return true;",
            json!([at]),
        )
        .await;
}

async fn refreshed(browser: &Browser) -> (u16, f64) {
    wait_for(
        browser,
        "return window.refreshed !== null",
        json!(true),
        "the scheduled refresh answered",
    )
    .await;
    let r = browser
        .run(
            "return {status: window.refreshed.status, sentAt: window.refreshed.sentAt}",
            json!([]),
        )
        .await;
    (
        r["status"].as_u64().unwrap() as u16,
        r["sentAt"].as_f64().unwrap(),
    )
}

/// What a protected route answers the token the current tab holds.
async fn api_status(browser: &Browser) -> Value {
    browser
        .run(
            "return fetch('/api/things', {headers: {Authorization: 'Bearer ' + window.portcullis.token()}})
                .then(r => r.status)",
            json!([]),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_shares_one_session_across_tabs_and_signs_out() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let s = setup("  revocation: {enabled: true}\n").await;
    let recorder = same_site_recorder(&s).await;
    let (elsewhere, _site) = other_site().await;

    // 1. Sign in on the sign-in page, as a user would: type, click.
    browser.go(&s.url("/auth/login")).await;
    browser.type_into("input[name=username]", "alice").await;
    browser
        .type_into("input[name=password]", "alice-password")
        .await;
    browser.click("button[type=submit]").await;
    wait_for(
        &browser,
        "return document.body.dataset.signedIn",
        json!("yes"),
        "the page says signed in",
    )
    .await;
    assert_eq!(api_status(&browser).await, json!(200));

    // 2. The refresh cookie: host-only, Secure, HttpOnly, SameSite=Strict — and no script sees it.
    let cookies = browser.cookies().await;
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == COOKIE_NAME)
        .unwrap_or_else(|| panic!("the browser holds the refresh cookie: {cookies:?}"));
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["secure"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert_eq!(cookie["path"], "/");
    assert_eq!(
        cookie["domain"], "localhost",
        "host-only: no Domain attribute"
    );
    let visible = browser.run("return document.cookie", json!([])).await;
    assert!(
        !visible.as_str().unwrap().contains(COOKIE_NAME),
        "document.cookie shows {visible}"
    );

    // 3. Two tabs share the cookie jar and refresh within 20 ms of each other: one rotates,
    // the other gets the same successor in the grace window (or rotates again, when the first
    // answer was already in the jar), and both stay signed in.
    let first = browser.current_tab().await;
    let second = browser.new_tab().await;
    browser.go(&s.url("/auth/login")).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at = now + 1500;
    refresh_at(&browser, at).await;
    browser.switch_to(&first).await;
    refresh_at(&browser, at).await;
    let (status_first, sent_first) = refreshed(&browser).await;
    browser.switch_to(&second).await;
    let (status_second, sent_second) = refreshed(&browser).await;
    assert!(
        (sent_first - sent_second).abs() < 20.0,
        "sent {:.1} ms apart",
        (sent_first - sent_second).abs()
    );
    assert_eq!((status_first, status_second), (200, 200));
    let issuer = s.issuer();
    // Whichever arrives second holds the old cookie (a grace answer: the same successor) or,
    // when the first answer landed in the jar before it left, the new one (a rotation).
    let (rotated, graced) = (
        issuer.count(Event::Refreshed),
        issuer.count(Event::RefreshGrace),
    );
    assert!(
        rotated >= 1 && rotated + graced == 2,
        "{rotated} rotations, {graced} grace answers"
    );
    assert_eq!(issuer.count(Event::ReuseDetected), 0);
    assert_eq!(api_status(&browser).await, json!(200));
    browser.switch_to(&first).await;
    assert_eq!(api_status(&browser).await, json!(200));
    // The jar holds the successor both got: the session goes on from either tab.
    let later = browser
        .run(
            "return window.portcullis.refresh().then(r => r.status)",
            json!([]),
        )
        .await;
    assert_eq!(later, json!(200));
    assert_eq!(issuer.count(Event::ReuseDetected), 0);

    // 4. Another site's form POST does not carry the cookie (SameSite=Strict); the same
    // request typed into the address bar does (so the recorder would have seen it).
    browser.switch_to(&second).await;
    let cross = format!("https://localhost:{}/cross-site", recorder.addr.port());
    browser.go(&format!("{elsewhere}/post?to={cross}")).await;
    let seen = recorder.clone();
    common::assert_eventually(
        WAIT,
        "the cross-site form reached the recorder",
        move || {
            let seen = seen.clone();
            async move { seen.requests().iter().any(|r| r.target == "/cross-site") }
        },
    )
    .await;
    let recorded_cross = recorder
        .requests()
        .into_iter()
        .find(|r| r.target == "/cross-site")
        .unwrap();
    assert_eq!(recorded_cross.method, "POST");
    assert!(
        !has_refresh_cookie(&recorded_cross),
        "a cross-site POST carried the refresh cookie"
    );
    browser
        .go(&format!(
            "https://localhost:{}/typed-in",
            recorder.addr.port()
        ))
        .await;
    let typed = recorder
        .requests()
        .into_iter()
        .find(|r| r.target == "/typed-in")
        .expect("the typed-in request reached the recorder");
    assert!(
        has_refresh_cookie(&typed),
        "a same-site navigation carries it"
    );

    // A cross-site form POST to logout is refused before any cookie is read; the session lives.
    let logout = s.url("/auth/logout");
    browser.go(&format!("{elsewhere}/post?to={logout}")).await;
    wait_for(
        &browser,
        "return document.body && document.body.innerText.includes('csrf_refused')",
        json!(true),
        "the gateway answered the cross-site logout with csrf_refused",
    )
    .await;
    assert!(issuer.count(Event::CsrfRefused) >= 1);
    assert_eq!(issuer.count(Event::Logout), 0);

    // 5. Sign out from the first tab: the cookie is cleared, the access token it held is
    // revoked (revocation is on), and a refresh is refused.
    browser.switch_to(&first).await;
    let token = browser
        .run("return window.portcullis.token()", json!([]))
        .await
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.get("/api/things", &token).await, 200);
    browser.click("#logout").await;
    wait_for(
            &browser,
            "return document.body.dataset.signedIn + ' ' + document.getElementById('status').textContent",
            json!("no signed out"), "the page says signed out")
        .await;
    assert!(
        browser
            .cookies()
            .await
            .iter()
            .all(|c| c["name"] != COOKIE_NAME),
        "the cookie is gone from the browser"
    );
    assert_eq!(
        s.get("/api/things", &token).await,
        401,
        "the token is revoked"
    );
    let after = browser
        .run(
            "return window.portcullis.refresh().then(r => r.status)",
            json!([]),
        )
        .await;
    assert_eq!(after, json!(401));
}
