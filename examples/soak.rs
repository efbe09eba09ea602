//! The soak: a real `portcullis run` process under mixed traffic for a long time while its
//! JWKS rotates and its config reloads. Run by `bench/soak.sh` (which builds the release binary
//! and plots the CSV); by hand:
//!
//! ```text
//! cargo run --release --example soak -- --bin target/release/portcullis --seconds 1800 --out soak-out
//! ```
//!
//! Traffic (each answer must be exactly the expected status; anything else is "unexpected"):
//! valid tokens of the current key (200), expired (401), forged under the current kid (401),
//! never-published kids (401), public (200), a valid token without the admin role on the
//! admin route (403), and the issuer's flow: login (200), a call with its token (200), refresh
//! (200, rotated), logout (200), refresh after logout (401).
//!
//! Meanwhile the JWKS rotates: a new key is published, signing moves to it two key refreshes
//! later, and the key before is withdrawn one rotation after that, as identity providers do.
//! The config is rewritten (a route added or removed) and `POST /reload` must answer
//! `applied`. Every second the gateway's RSS and open fds are sampled into `soak.csv`.
//!
//! Pass: zero unexpected answers, every reload applied, RSS flat after warm-up (the median of
//! the last tenth of the samples within ±10 % of the first tenth's), and no fd growth (the
//! last tenth's median at most two above the first tenth's: a key fetch or admin call may be
//! open at a sample).

#[path = "../tests/common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::issuer::{COOKIE_NAME, cookie_of, users_file};
use common::process::GatewayProcess;
use common::{AUDIENCE, GatewayYaml, ISSUER, TestJwks, TestKey, Workdir, claims_with, mint};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reqwest::header::COOKIE;
use serde_json::{Value, json};

/// What one request is, and what it must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Valid,
    Expired,
    Forged,
    UnknownKid,
    Public,
    Denied,
    Login,
    IssuedCall,
    Refresh,
    Logout,
    RefreshAfterLogout,
}

const KINDS: [Kind; 11] = [
    Kind::Valid,
    Kind::Expired,
    Kind::Forged,
    Kind::UnknownKid,
    Kind::Public,
    Kind::Denied,
    Kind::Login,
    Kind::IssuedCall,
    Kind::Refresh,
    Kind::Logout,
    Kind::RefreshAfterLogout,
];

impl Kind {
    fn expected(self) -> u16 {
        match self {
            Kind::Valid | Kind::Public | Kind::Login | Kind::IssuedCall => 200,
            Kind::Refresh | Kind::Logout => 200,
            Kind::Expired | Kind::Forged | Kind::UnknownKid | Kind::RefreshAfterLogout => 401,
            Kind::Denied => 403,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Valid => "valid",
            Kind::Expired => "expired",
            Kind::Forged => "forged",
            Kind::UnknownKid => "unknown_kid",
            Kind::Public => "public",
            Kind::Denied => "denied",
            Kind::Login => "login",
            Kind::IssuedCall => "issued_call",
            Kind::Refresh => "refresh",
            Kind::Logout => "logout",
            Kind::RefreshAfterLogout => "refresh_after_logout",
        }
    }
}

/// The order a traffic worker cycles through (weights: mostly valid tokens).
const MIX: [Kind; 20] = [
    Kind::Valid,
    Kind::Valid,
    Kind::Public,
    Kind::Valid,
    Kind::Expired,
    Kind::Valid,
    Kind::Valid,
    Kind::Forged,
    Kind::Valid,
    Kind::Denied,
    Kind::Valid,
    Kind::Valid,
    Kind::UnknownKid,
    Kind::Valid,
    Kind::Public,
    Kind::Valid,
    Kind::Valid,
    Kind::Expired,
    Kind::Valid,
    Kind::Valid,
];

struct Options {
    bin: PathBuf,
    seconds: u64,
    out: PathBuf,
    connections: usize,
    rotate_every: Duration,
    reload_every: Duration,
    /// Lifetime of the tokens minted (the verified-token cache is full after about this long).
    token_ttl: u64,
    /// Samples before this are not judged (default: a quarter of the run, at most 10 min).
    warm_up: u64,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        bin: PathBuf::from("target/release/portcullis"),
        seconds: 1800,
        out: PathBuf::from("soak-out"),
        connections: 32,
        rotate_every: Duration::from_secs(60),
        reload_every: Duration::from_secs(30),
        token_ttl: 300,
        warm_up: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let secs = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--bin" => o.bin = PathBuf::from(value()?),
            "--seconds" => o.seconds = secs(value()?)?,
            "--out" => o.out = PathBuf::from(value()?),
            "--connections" => o.connections = secs(value()?)? as usize,
            "--rotate-every" => o.rotate_every = Duration::from_secs(secs(value()?)?),
            "--reload-every" => o.reload_every = Duration::from_secs(secs(value()?)?),
            "--token-ttl" => o.token_ttl = secs(value()?)?,
            "--warm-up" => o.warm_up = secs(value()?)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.warm_up == 0 {
        o.warm_up = (o.seconds / 4).clamp(10, 600);
    }
    Ok(o)
}

/// Answer counts per kind, and the first few unexpected answers in full.
#[derive(Default)]
struct Tally {
    answered: [AtomicU64; KINDS.len()],
    unexpected: [AtomicU64; KINDS.len()],
    examples: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, kind: Kind, status: Result<u16, String>) {
        let i = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        self.answered[i].fetch_add(1, Ordering::Relaxed);
        if status.as_ref().ok() != Some(&kind.expected()) {
            self.unexpected[i].fetch_add(1, Ordering::Relaxed);
            let mut examples = self.examples.lock().unwrap();
            if examples.len() < 20 {
                examples.push(format!(
                    "{}: expected {}, got {status:?}",
                    kind.name(),
                    kind.expected()
                ));
            }
        }
    }

    fn total(&self) -> (u64, u64) {
        let sum = |a: &[AtomicU64]| a.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        (sum(&self.answered), sum(&self.unexpected))
    }
}

/// The signing keys as the identity provider holds them.
struct Keys {
    /// Signs tokens now.
    current: Arc<TestKey>,
    /// Published, signing from the next switch.
    next: Option<Arc<TestKey>>,
    /// Bumped at each switch (workers re-mint their tokens).
    generation: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    std::process::exit(match run(options).await {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("soak: {e}");
            2
        }
    });
}

async fn run(o: Options) -> Result<bool, String> {
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let first = Arc::new(TestKey::ec256("k0"));
    let jwks = Arc::new(TestJwks::start(&[&first]).await);
    // The provider's keys are fresh for 2 s: the gateway refetches every ~1.8 s in the
    // background, so a key published ahead is known before a token uses it.
    jwks.set_max_age(Some(2));
    let upstream = start_upstream().await;
    let work = Workdir::new();
    users_file(&work);
    let jwks_uri = jwks.jwks_uri();
    let config = write_config(&work, &jwks_uri, &upstream, 0);
    let gateway = GatewayProcess::start(&o.bin, &config).await?;
    println!(
        "soak: gateway pid {} at {}, admin {}; {} s, {} connections",
        gateway.child.id(),
        gateway.url,
        gateway.admin,
        o.seconds,
        o.connections
    );

    let keys = Arc::new(Mutex::new(Keys {
        current: first,
        next: None,
        generation: 0,
    }));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let rotations = Arc::new(AtomicU64::new(0));
    let reloads = Arc::new(AtomicU64::new(0));
    let failed_reloads = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(o.connections + 4)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let outsider = Arc::new(TestKey::ec256("k0"));

    let mut tasks = Vec::new();
    let ttl = o.token_ttl;
    for worker in 0..o.connections {
        let (http, url, keys, tally, stop, outsider) = (
            http.clone(),
            gateway.url.clone(),
            keys.clone(),
            tally.clone(),
            stop.clone(),
            outsider.clone(),
        );
        tasks.push(tokio::spawn(async move {
            traffic(worker, http, url, keys, tally, stop, outsider, ttl).await;
        }));
    }
    {
        let (http, url, tally, stop) = (
            http.clone(),
            gateway.url.clone(),
            tally.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            issuer_flow(http, url, tally, stop).await;
        }));
    }
    {
        let (keys, stop, rotations) = (keys.clone(), stop.clone(), rotations.clone());
        let (jwks, every) = (jwks.clone(), o.rotate_every);
        tasks.push(tokio::spawn(async move {
            rotate(keys, &jwks, every, stop, rotations).await;
        }));
    }
    {
        // A connection per admin call: the admin listener closes a keep-alive connection
        // idle for its header-read timeout (10 s), and a POST on a connection closing under
        // it is lost, not retried.
        let admin_client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let (http, admin, stop, reloads, failed) = (
            admin_client,
            gateway.admin.clone(),
            stop.clone(),
            reloads.clone(),
            failed_reloads.clone(),
        );
        let every = o.reload_every;
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !sleep_unless_stopped(every, &stop).await {
                n += 1;
                write_config(&work, &jwks_uri, &upstream, n);
                match reload(&http, &admin).await {
                    Ok(()) => reloads.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("soak: reload {n}: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            drop(work);
        }));
    }
    let sampler = Sampler {
        pid: gateway.child.id(),
        tally: tally.clone(),
        jwks: jwks.clone(),
        rotations: rotations.clone(),
        reloads: reloads.clone(),
    };
    let csv = o.out.join("soak.csv");
    let seconds = o.seconds;
    let samples = {
        let stop = stop.clone();
        tokio::spawn(async move { sampler.run(&csv, seconds, stop).await })
    };

    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let samples = samples.await.map_err(|e| e.to_string())??;
    let metrics = http
        .get(format!("{}/metrics", gateway.admin))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    drop(gateway);
    let failed = failed_reloads.load(Ordering::Relaxed);
    Ok(report(&o, &tally, &samples, &metrics, failed))
}

/// One traffic worker: cycles through `MIX`, re-minting its tokens every second (so most are
/// verified-token cache hits, as with real clients).
#[allow(clippy::too_many_arguments)]
async fn traffic(
    worker: usize,
    http: reqwest::Client,
    url: String,
    keys: Arc<Mutex<Keys>>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    outsider: Arc<TestKey>,
    ttl: u64,
) {
    let mut step = worker;
    let mut minted: Option<(Instant, u64, String, String)> = None;
    let mut ghost = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let kind = MIX[step % MIX.len()];
        step += 1;
        let (generation, key) = {
            let k = keys.lock().unwrap();
            (k.generation, k.current.clone())
        };
        let fresh = minted
            .as_ref()
            .is_some_and(|(at, g, _, _)| *g == generation && at.elapsed() < Duration::from_secs(1));
        if !fresh {
            let exp = common::now() + ttl;
            let valid = mint(
                &key,
                "ES256",
                &claims_with(json!({"roles": ["admin"], "exp": exp})),
            );
            let viewer = mint(
                &key,
                "ES256",
                &claims_with(json!({"roles": ["viewer"], "exp": exp})),
            );
            minted = Some((Instant::now(), generation, valid, viewer));
        }
        let Some((_, _, valid, viewer)) = &minted else {
            continue;
        };
        let request = match kind {
            Kind::Valid => http.get(format!("{url}/api/orders")).bearer_auth(valid),
            Kind::Public => http.get(format!("{url}/public/status")),
            Kind::Denied => http.get(format!("{url}/admin/users")).bearer_auth(viewer),
            Kind::Expired => {
                let now = common::now();
                let claims =
                    claims_with(json!({"iat": now - 900, "nbf": now - 900, "exp": now - 600}));
                http.get(format!("{url}/api/orders"))
                    .bearer_auth(mint(&key, "ES256", &claims))
            }
            Kind::Forged => {
                // The outsider's key under the current kid: a signature that does not verify.
                let forged = common::mint_with(
                    &outsider,
                    "ES256",
                    json!({"kid": key.kid}),
                    &claims_with(json!({})),
                );
                http.get(format!("{url}/api/orders")).bearer_auth(forged)
            }
            Kind::UnknownKid => {
                ghost += 1;
                let token = common::mint_with(
                    &outsider,
                    "ES256",
                    json!({"kid": format!("ghost-{worker}-{ghost}")}),
                    &claims_with(json!({})),
                );
                http.get(format!("{url}/api/orders")).bearer_auth(token)
            }
            _ => continue,
        };
        tally.record(kind, status(request).await);
    }
}

async fn status(request: reqwest::RequestBuilder) -> Result<u16, String> {
    match request.send().await {
        Ok(response) => {
            let code = response.status().as_u16();
            // Read the body so the connection is reused.
            let _ = response.bytes().await;
            Ok(code)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The issuer's flow, one session every 5 s (the default `client_rate` lets one address log
/// in 20 times a minute): login, a call, three refreshes (each a call too), and every fourth
/// session a logout followed by a refresh that must fail.
async fn issuer_flow(http: reqwest::Client, url: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut session = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if session > 0 && sleep_unless_stopped(Duration::from_secs(5), &stop).await {
            break;
        }
        session += 1;
        let login = http
            .post(format!("{url}/auth/login"))
            .header("x-portcullis-csrf", "1")
            .json(&json!({"username": "alice", "password": "alice-password"}))
            .send()
            .await;
        let Some((mut cookie, mut token)) = answer(&tally, Kind::Login, login).await else {
            continue;
        };
        for _ in 0..3 {
            let call = http
                .get(format!("{url}/api/orders"))
                .bearer_auth(&token)
                .send()
                .await;
            let _ = answer(&tally, Kind::IssuedCall, call).await;
            let refresh = http
                .post(format!("{url}/auth/refresh"))
                .header("x-portcullis-csrf", "1")
                .header(COOKIE, format!("{COOKIE_NAME}={cookie}"))
                .send()
                .await;
            match answer(&tally, Kind::Refresh, refresh).await {
                Some((c, t)) => (cookie, token) = (c, t),
                None => break,
            }
        }
        if session.is_multiple_of(4) {
            let logout = http
                .post(format!("{url}/auth/logout"))
                .header("x-portcullis-csrf", "1")
                .header(COOKIE, format!("{COOKIE_NAME}={cookie}"))
                .send()
                .await;
            let _ = answer(&tally, Kind::Logout, logout).await;
            let after = http
                .post(format!("{url}/auth/refresh"))
                .header("x-portcullis-csrf", "1")
                .header(COOKIE, format!("{COOKIE_NAME}={cookie}"))
                .send()
                .await;
            let _ = answer(&tally, Kind::RefreshAfterLogout, after).await;
        }
    }
}

/// Records the answer; for login and refresh, the new cookie and access token.
async fn answer(
    tally: &Tally,
    kind: Kind,
    response: reqwest::Result<reqwest::Response>,
) -> Option<(String, String)> {
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            tally.record(kind, Err(e.to_string()));
            return None;
        }
    };
    let code = response.status().as_u16();
    let cookie = cookie_of(&response);
    let body: Option<Value> = response.json().await.ok();
    tally.record(kind, Ok(code));
    let token = body?.get("access_token")?.as_str()?.to_string();
    Some((cookie?, token))
}

/// Rotates like an identity provider: publish the next key; two key refreshes later sign with
/// it; at the next rotation withdraw the key before.
async fn rotate(
    keys: Arc<Mutex<Keys>>,
    jwks: &TestJwks,
    every: Duration,
    stop: Arc<AtomicBool>,
    rotations: Arc<AtomicU64>,
) {
    let mut n = 0;
    while !sleep_unless_stopped(every, &stop).await {
        n += 1;
        let next = Arc::new(TestKey::ec256(&format!("k{n}")));
        {
            let mut k = keys.lock().unwrap();
            k.next = Some(next.clone());
            let published: Vec<&TestKey> = [Some(&k.current), k.next.as_ref()]
                .into_iter()
                .flatten()
                .map(|k| &**k)
                .collect();
            // The key before the current one is withdrawn now.
            jwks.set_keys(&published);
        }
        if sleep_unless_stopped(Duration::from_secs(5), &stop).await {
            break;
        }
        let mut k = keys.lock().unwrap();
        k.current = next;
        k.next = None;
        k.generation += 1;
        rotations.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sleeps `for_`, waking early when stopped; true when stopped.
async fn sleep_unless_stopped(for_: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + for_;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100).min(until - Instant::now())).await;
    }
    stop.load(Ordering::Relaxed)
}

/// A backend that answers every request 200 `ok` and keeps nothing.
async fn start_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Writes the gateway's config; `n` adds route `extra-n` so each reload changes something.
fn write_config(work: &Workdir, jwks_uri: &str, upstream: &str, n: u64) -> PathBuf {
    let provider = format!(
        "- name: idp\n  issuer: {ISSUER}\n  audiences: [{AUDIENCE}]\n  algorithms: [ES256]\n  jwks_uri: {jwks_uri}\n  remote_keys:\n    allow_http: true\n    min_refresh: 1s\n    max_refresh: 10s\n"
    );
    let extra = if n % 2 == 1 {
        format!("- name: extra-{n}\n  prefix: /extra-{n}\n  upstream: app\n  policy: public\n")
    } else {
        String::new()
    };
    let routes = format!(
        "- name: public\n  prefix: /public\n  upstream: app\n  policy: public\n- name: api\n  prefix: /api\n  upstream: app\n  policy: authenticated\n- name: admin\n  prefix: /admin\n  upstream: app\n  require:\n    claim: roles\n    contains: admin\n{extra}"
    );
    let issuer = "issuer:\n  issuer: http://localhost\n  audiences: [test-api]\n  users_file: users.yaml\n  data_dir: state\nreload:\n  watch: false\n";
    let yaml = GatewayYaml::new()
        .server("access_log: false\n")
        .upstream("app", upstream)
        .providers(&provider)
        .routes(&routes)
        .top(issuer)
        .yaml();
    work.write("gateway.yaml", &yaml)
}

async fn reload(http: &reqwest::Client, admin: &str) -> Result<(), String> {
    let response = http
        .post(format!("{admin}/reload"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let code = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    match body["result"].as_str() {
        Some("applied") if code == 200 => Ok(()),
        _ => Err(format!("{code}: {body}")),
    }
}

/// One row of `soak.csv`.
#[derive(Debug, Clone)]
struct Sample {
    t: f64,
    rss_kib: u64,
    fds: u64,
    answered: u64,
    unexpected: u64,
    jwks_fetches: u64,
    rotations: u64,
    reloads: u64,
}

struct Sampler {
    pid: u32,
    tally: Arc<Tally>,
    jwks: Arc<TestJwks>,
    rotations: Arc<AtomicU64>,
    reloads: Arc<AtomicU64>,
}

impl Sampler {
    async fn run(
        self,
        csv: &Path,
        seconds: u64,
        stop: Arc<AtomicBool>,
    ) -> Result<Vec<Sample>, String> {
        let mut file = std::fs::File::create(csv).map_err(|e| format!("{}: {e}", csv.display()))?;
        writeln!(
            file,
            "seconds,rss_kib,open_fds,answered,unexpected,jwks_fetches,rotations,reloads"
        )
        .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if stop.load(Ordering::Relaxed) || started.elapsed().as_secs() > seconds {
                break;
            }
            let (answered, unexpected) = self.tally.total();
            let sample = Sample {
                t: started.elapsed().as_secs_f64(),
                rss_kib: rss_kib(self.pid).unwrap_or(0),
                fds: open_fds(self.pid).unwrap_or(0),
                answered,
                unexpected,
                jwks_fetches: self.jwks.fetches() as u64,
                rotations: self.rotations.load(Ordering::Relaxed),
                reloads: self.reloads.load(Ordering::Relaxed),
            };
            writeln!(
                file,
                "{:.1},{},{},{},{},{},{},{}",
                sample.t,
                sample.rss_kib,
                sample.fds,
                sample.answered,
                sample.unexpected,
                sample.jwks_fetches,
                sample.rotations,
                sample.reloads
            )
            .map_err(|e| e.to_string())?;
            samples.push(sample);
        }
        Ok(samples)
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Prints the verdict and writes `summary.txt`; true when the soak passed.
fn report(
    o: &Options,
    tally: &Tally,
    samples: &[Sample],
    metrics: &str,
    failed_reloads: u64,
) -> bool {
    let mut out = String::new();
    let mut line = |s: String| {
        println!("{s}");
        out.push_str(&s);
        out.push('\n');
    };
    let (answered, unexpected) = tally.total();
    let last = samples.last();
    let elapsed = last.map_or(0.0, |s| s.t);
    line(format!(
        "soak: {answered} answers in {elapsed:.0} s ({:.0}/s), {unexpected} unexpected",
        answered as f64 / elapsed.max(1.0)
    ));
    for (i, kind) in KINDS.iter().enumerate() {
        line(format!(
            "  {:<22} {:>10} answered {:>6} unexpected (expected {})",
            kind.name(),
            tally.answered[i].load(Ordering::Relaxed),
            tally.unexpected[i].load(Ordering::Relaxed),
            kind.expected()
        ));
    }
    for example in tally.examples.lock().unwrap().iter() {
        line(format!("  unexpected: {example}"));
    }
    let warm = o.warm_up as f64;
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t >= warm).collect();
    let mut pass = unexpected == 0 && failed_reloads == 0 && after.len() >= 20;
    if let Some(end) = after.last() {
        // Medians of the first and the last tenth after warm-up: a leak is a trend between
        // them; one sample caught mid-reload is not.
        let tenth = (after.len() / 10).max(3);
        let rss_start = median(after.iter().take(tenth).map(|s| s.rss_kib).collect());
        let rss_end = median(after.iter().rev().take(tenth).map(|s| s.rss_kib).collect());
        let lo = after.iter().map(|s| s.rss_kib).min().unwrap_or(0);
        let hi = after.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let rss_flat = (rss_end as f64 - rss_start as f64).abs() <= rss_start as f64 * 0.10;
        let fds_start = median(after.iter().take(tenth).map(|s| s.fds).collect());
        let fds_end = median(after.iter().rev().take(tenth).map(|s| s.fds).collect());
        let fds_flat = fds_end <= fds_start + 2;
        line(format!(
            "  RSS after {warm:.0} s warm-up: {:.1} MiB (first tenth's median) -> {:.1} MiB (last tenth's), range {:.1}..{:.1}, last {:.1}: {}",
            rss_start as f64 / 1024.0,
            rss_end as f64 / 1024.0,
            lo as f64 / 1024.0,
            hi as f64 / 1024.0,
            end.rss_kib as f64 / 1024.0,
            if rss_flat {
                "flat (±10 %)"
            } else {
                "NOT flat"
            }
        ));
        line(format!(
            "  open fds: {fds_start} after warm-up, {fds_end} at end (max {}): {}",
            after.iter().map(|s| s.fds).max().unwrap_or(0),
            if fds_flat { "no growth" } else { "GROWTH" }
        ));
        pass &= rss_flat && fds_flat;
    }
    if let Some(last) = last {
        line(format!(
            "  JWKS: {} rotations, {} fetches; config: {} reloads applied, {failed_reloads} failed",
            last.rotations, last.jwks_fetches, last.reloads
        ));
    }
    for metric in metrics.lines().filter(|l| {
        l.starts_with("portcullis_jwks_fetches_total")
            || l.starts_with("portcullis_config_reloads_total")
    }) {
        line(format!("  {metric}"));
    }
    line(format!("soak: {}", if pass { "PASS" } else { "FAIL" }));
    let _ = std::fs::write(o.out.join("summary.txt"), out);
    pass
}
