//! Headless Chromium for one test, driven through ChromeDriver's W3C WebDriver endpoint (plain
//! JSON over HTTP on loopback). ChromeDriver is started on an ephemeral port with a fresh
//! profile in a temp dir, and it and the browser are stopped on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub struct Browser {
    driver: Option<Child>,
    _profile: tempfile::TempDir,
    base: String,
    session: String,
    http: reqwest::Client,
}

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Browser {
    /// A browser with an empty profile, or `None` (with a message) when Chromium or ChromeDriver
    /// is missing and `PORTCULLIS_REQUIRE_BROWSER` is not set (CI sets it: there a missing
    /// browser fails the test).
    pub async fn start() -> Option<Browser> {
        let present = std::path::Path::new(CHROMIUM).is_file()
            && std::path::Path::new(CHROMEDRIVER).is_file();
        if !present {
            assert!(
                std::env::var_os("PORTCULLIS_REQUIRE_BROWSER").is_none(),
                "PORTCULLIS_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing"
            );
            eprintln!("skipped: Debian's chromium and chromium-driver are not installed");
            return None;
        }
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // It prints the port it chose: "… started successfully on port N."
        let stdout = driver.stdout.take().unwrap();
        let port = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let port = lines.by_ref().map_while(Result::ok).find_map(|line| {
                line.split("on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
                    .filter(|_| line.contains("successfully"))
            });
            // Keep reading so the driver never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            port
        });
        let port = tokio::time::timeout(Duration::from_secs(20), port)
            .await
            .expect("chromedriver says its port within 20 s")
            .unwrap()
            .expect("chromedriver's port");
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            // Tabs in the background keep their timers exact (two tabs act together).
            "--disable-background-timer-throttling".into(),
            "--disable-renderer-backgrounding".into(),
            "--disable-backgrounding-occluded-windows".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if is_root() {
            args.push("--no-sandbox".into());
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // The gateway's certificate is from the test's own CA.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Some(Browser {
            driver: Some(driver),
            _profile: profile,
            base,
            session,
            http,
        })
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!("webdriver {path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    pub async fn go(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns what it returns;
    /// a returned promise is awaited.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Types `text` into the element `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    /// The cookies the browser holds for the current page's URL (HttpOnly ones included).
    pub async fn cookies(&self) -> Vec<Value> {
        self.command(reqwest::Method::GET, "/cookie", Value::Null)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Opens a new tab and switches to it; returns its handle.
    pub async fn new_tab(&self) -> String {
        let made = self
            .command(reqwest::Method::POST, "/window/new", json!({"type": "tab"}))
            .await;
        let handle = made["handle"].as_str().unwrap().to_string();
        self.switch_to(&handle).await;
        handle
    }

    pub async fn current_tab(&self) -> String {
        self.command(reqwest::Method::GET, "/window", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn switch_to(&self, handle: &str) {
        self.command(reqwest::Method::POST, "/window", json!({"handle": handle}))
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session quits the browser (one blocking HTTP/1.1 exchange); then the
        // driver goes.
        use std::io::{Read, Write};
        let address = self.base.trim_start_matches("http://").to_string();
        if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            // The answer's head means the browser is gone (the driver keeps the connection).
            let (mut seen, mut buf) = (Vec::new(), [0u8; 512]);
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
        }
        if let Some(mut driver) = self.driver.take() {
            let _ = driver.kill();
            let _ = driver.wait();
        }
    }
}
