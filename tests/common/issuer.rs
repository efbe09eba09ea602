//! The issuer's side of the harness: a gateway with `issuer:` on over TLS, two users, and
//! helpers that log in, refresh and read the refresh cookie.

use std::sync::Arc;

use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};

use super::{GatewayYaml, TestGateway, TestUpstream, Workdir, pki, tls_client};

pub const COOKIE_NAME: &str = "__Host-portcullis-refresh";

pub struct Setup {
    /// The CA certificate (PEM file) the gateway's certificate chains to.
    pub ca: std::path::PathBuf,
    pub gw: TestGateway,
    pub upstream: TestUpstream,
    pub client: reqwest::Client,
}

pub fn users_file(work: &Workdir) {
    let alice = portcullis::issuer::password::hash(b"alice-password").unwrap();
    let bob = portcullis::issuer::password::hash(b"bob-password").unwrap();
    work.write(
        "users.yaml",
        &format!(
            "users:\n  alice:\n    password_hash: \"{alice}\"\n    claims:\n      roles: [admin]\n      tenant: acme\n  bob:\n    password_hash: \"{bob}\"\n    claims:\n      roles: [viewer]\n"
        ),
    );
}

/// A gateway with the issuer on (`extra`: more `issuer:` keys, indented two spaces).
pub async fn setup(extra: &str) -> Setup {
    setup_with(extra, &[]).await
}

/// The same, with `files` written to its folder first (shared keys for replicas).
pub async fn setup_with(extra: &str, files: &[(&str, &str)]) -> Setup {
    setup_at(None, extra, files).await
}

/// The same on a chosen port, the issuer being `https://localhost:PORT` (so its metadata
/// URLs are real ones); `None`: an ephemeral port and `https://localhost`.
pub async fn setup_at(port: Option<u16>, extra: &str, files: &[(&str, &str)]) -> Setup {
    portcullis::tls::install_crypto_provider();
    let upstream = TestUpstream::start().await;
    let work = Workdir::new();
    for (name, content) in files {
        work.write(name, content);
    }
    let pki = pki(&work);
    users_file(&work);
    let origin = port.map_or("https://localhost".to_string(), |p| {
        format!("https://localhost:{p}")
    });
    let address = format!("127.0.0.1:{}", port.unwrap_or(0));
    let issuer = format!(
        "issuer:\n  issuer: {origin}\n  audiences: [api]\n  users_file: users.yaml\n  data_dir: state\n  allowed_origins: [https://app.example]\n{extra}"
    );
    let gw = GatewayYaml::new()
        .https_only_at(&address, &pki.cert, &pki.key)
        .upstream("app", &upstream.url())
        .routes(
            "- name: admin\n  prefix: /api/admin\n  upstream: app\n  providers: [self]\n  require:\n    claim: roles\n    contains: admin\n- name: api\n  prefix: /api\n  upstream: app\n  providers: [self]\n  policy: authenticated\n- name: open\n  prefix: /public\n  upstream: app\n  policy: public\n",
        )
        .top(&issuer)
        .start_in(work)
        .await;
    Setup {
        ca: pki.ca.clone(),
        gw,
        upstream,
        client: tls_client(&pki.ca_pem, false),
    }
}

impl Setup {
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.gw.addr(0).port())
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(path))
            .header("x-portcullis-csrf", "1")
            .json(&body);
        if let Some(c) = cookie {
            request = request.header(COOKIE, format!("{COOKIE_NAME}={c}"));
        }
        request.send().await.unwrap()
    }

    /// `POST /auth/logout` with the refresh cookie (if any) and `Authorization: Bearer token`.
    pub async fn logout_showing(&self, cookie: Option<&str>, token: &str) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/auth/logout"))
            .header("x-portcullis-csrf", "1")
            .bearer_auth(token)
            .json(&json!({}));
        if let Some(c) = cookie {
            request = request.header(COOKIE, format!("{COOKIE_NAME}={c}"));
        }
        request.send().await.unwrap()
    }

    pub async fn login(&self, user: &str, password: &str) -> reqwest::Response {
        self.post(
            "/auth/login",
            None,
            json!({"username": user, "password": password}),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: &str) -> u16 {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub fn issuer(&self) -> Arc<portcullis::issuer::Issuer> {
        self.gw
            .gateway
            .state
            .snapshot
            .load()
            .issuer
            .clone()
            .unwrap()
    }
}

/// The refresh cookie's value and its whole `Set-Cookie` line.
/// The refresh cookie's value a response sets (`None`: none, or one that clears it).
pub fn cookie_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| line.strip_prefix(&format!("{COOKIE_NAME}=")))
        .and_then(|rest| rest.split(';').next())
        .filter(|value| !value.is_empty())
        .map(str::to_string)
}

pub fn refresh_cookie(response: &reqwest::Response) -> (String, String) {
    let line = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|l| l.starts_with(&format!("{COOKIE_NAME}=")))
        .expect("a refresh cookie");
    let value = line
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    (value, line)
}

pub async fn token_of(response: reqwest::Response) -> (String, String, u64) {
    assert_eq!(response.status(), 200);
    let (cookie, _) = refresh_cookie(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    (
        body["access_token"].as_str().unwrap().to_string(),
        cookie,
        body["expires_in"].as_u64().unwrap(),
    )
}

pub fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}
