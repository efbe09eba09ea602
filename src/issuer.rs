//! The issuer (off by default): the half of the JWT flow that hands tokens out.
//!
//! ```text
//!  POST /auth/login    1 CSRF  2 client-IP bucket  3 body  4 username held?  5 argon2id
//!                      (bounded)  6 failure counted, or: family created, access token signed,
//!                      refresh cookie set
//!  POST /auth/refresh  1 CSRF  2 cookie opened (MAC)  3 rotate-or-detect (one compare-and-set)
//!                      4 user still exists  5 access token signed, successor cookie set
//!  POST /auth/logout   1 CSRF  2 cookie opened  3 family (or every family of the user) revoked
//!                      3½ the access token shown denied (revocation on)  4 cookie cleared —
//!                      200 whatever the cookie was
//!  GET  /.well-known/jwks.json, /.well-known/oauth-authorization-server (and
//!       /.well-known/openid-configuration), GET /auth/login (the sign-in page)
//! ```
//!
//! The issuer's endpoints are routes like any other (public, answered here instead of by an
//! upstream). Its tokens are verified by the ordinary provider code path: compile adds a
//! provider named `self` holding the issuer's public keys.

pub mod cookie;
pub mod credentials;
pub mod csrf;
pub mod denylist;
pub mod page;
pub mod password;
pub mod refresh;
pub mod signing;
pub mod store;
pub mod throttle;
pub mod users;

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE, VARY};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value, json};

use crate::error::TokenError;
use crate::metrics::Counter;
use denylist::{Denylist, Verdict};
use password::{Busy, Hasher};
use refresh::RefreshKey;
use signing::SigningKey;
use store::{Bucket, NewFamily, RotateRequest, Rotation, Store, StoreError, StoreSpec};
use throttle::UserThrottle;
use users::Users;

/// Largest login/logout body read, in bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// Longest a client may take to send that body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// One of the issuer's endpoints (a route answered locally).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Login,
    SignInPage,
    Refresh,
    Logout,
    Jwks,
    Metadata,
}

impl Endpoint {
    /// Every endpoint with its method and path (the routes compile adds).
    pub const ALL: [(Endpoint, Method, &'static str, &'static str); 7] = [
        (Endpoint::Login, Method::POST, "/auth/login", "issuer-login"),
        (
            Endpoint::SignInPage,
            Method::GET,
            "/auth/login",
            "issuer-sign-in-page",
        ),
        (
            Endpoint::Refresh,
            Method::POST,
            "/auth/refresh",
            "issuer-refresh",
        ),
        (
            Endpoint::Logout,
            Method::POST,
            "/auth/logout",
            "issuer-logout",
        ),
        (
            Endpoint::Jwks,
            Method::GET,
            "/.well-known/jwks.json",
            "issuer-jwks",
        ),
        (
            Endpoint::Metadata,
            Method::GET,
            "/.well-known/oauth-authorization-server",
            "issuer-metadata",
        ),
        (
            Endpoint::Metadata,
            Method::GET,
            "/.well-known/openid-configuration",
            "issuer-openid-configuration",
        ),
    ];
}

/// The issuer's compiled settings.
#[derive(Debug)]
pub struct IssuerSpec {
    /// `iss` of every token; its origin is the issuer's own for CSRF.
    pub issuer: String,
    pub origin: String,
    pub audiences: Vec<String>,
    pub client_id: String,
    pub store: StoreSpec,
    pub keys: Vec<SigningKey>,
    pub refresh_key: RefreshKey,
    pub users: Users,
    pub access_ttl: Duration,
    pub refresh_idle: Duration,
    pub refresh_absolute: Duration,
    pub grace: Duration,
    pub publish_ahead: Duration,
    pub cookie_name: String,
    pub allowed_origins: Vec<String>,
    pub csrf_header: HeaderName,
    pub sign_in_page: bool,
    pub throttle: UserThrottle,
    pub client_rate: Bucket,
    pub hashing_permits: usize,
    pub hashing_queue: usize,
    /// Access-token revocation: `Some(how often the denylist is read)` when on.
    pub revocation: Option<Duration>,
    /// Index of the provider `self` among the snapshot's providers.
    pub provider: usize,
}

/// What the issuer counts (`portcullis_issuer_events_total{event}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    ClientRateLimited,
    HashingOverloaded,
    Refreshed,
    RefreshGrace,
    ReuseDetected,
    RefreshRefused,
    Logout,
    CsrfRefused,
    StoreUnavailable,
    AccessTokenRevoked,
}

impl Event {
    pub const ALL: [Event; 13] = [
        Event::LoginSucceeded,
        Event::LoginFailed,
        Event::LoginThrottled,
        Event::ClientRateLimited,
        Event::HashingOverloaded,
        Event::Refreshed,
        Event::RefreshGrace,
        Event::ReuseDetected,
        Event::RefreshRefused,
        Event::Logout,
        Event::CsrfRefused,
        Event::StoreUnavailable,
        Event::AccessTokenRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::LoginSucceeded => "login_succeeded",
            Event::LoginFailed => "login_failed",
            Event::LoginThrottled => "login_throttled",
            Event::ClientRateLimited => "client_rate_limited",
            Event::HashingOverloaded => "hashing_overloaded",
            Event::Refreshed => "refreshed",
            Event::RefreshGrace => "refresh_grace",
            Event::ReuseDetected => "reuse_detected",
            Event::RefreshRefused => "refresh_refused",
            Event::Logout => "logout",
            Event::CsrfRefused => "csrf_refused",
            Event::StoreUnavailable => "store_unavailable",
            Event::AccessTokenRevoked => "access_token_revoked",
        }
    }
}

/// A clock that tests can move: system time plus an offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Unix milliseconds now.
    pub fn now_ms(&self) -> i64 {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        system + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves the clock forward by `by` (tests).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

/// The live issuer: its settings, its store and the hashing limiter.
#[derive(Debug)]
pub struct Issuer {
    pub spec: IssuerSpec,
    store: OnceLock<Arc<dyn Store>>,
    denylist: OnceLock<Arc<Denylist>>,
    hasher: OnceLock<Arc<Hasher>>,
    /// When each key (in `spec.keys` order) was first seen; read from the store once.
    first_seen: ArcSwapOption<Vec<i64>>,
    pub clock: Arc<Clock>,
    events: [Counter; Event::ALL.len()],
}

/// A request body the endpoints can read (hyper's, limited or not).
pub trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send
{
}

impl<B> RequestBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
{
}

/// What a local endpoint answers with.
pub type Reply = Response<Full<Bytes>>;

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn error_reply(status: StatusCode, error: &str, description: &str) -> Reply {
    json_reply(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn with_cookie(mut reply: Reply, set_cookie: &str) -> Reply {
    if let Ok(value) = HeaderValue::from_str(set_cookie) {
        reply.headers_mut().append(SET_COOKIE, value);
    }
    reply
}

fn unavailable(retry_after: &'static str, what: &str) -> Reply {
    let mut reply = error_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        what,
    );
    reply.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from_static(retry_after),
    );
    reply
}

/// The one answer to every failed login: unknown user, wrong password, held username.
fn login_refused() -> Reply {
    error_reply(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "invalid username or password",
    )
}

impl Issuer {
    pub fn new(spec: IssuerSpec) -> Issuer {
        Issuer {
            spec,
            store: OnceLock::new(),
            denylist: OnceLock::new(),
            hasher: OnceLock::new(),
            first_seen: ArcSwapOption::empty(),
            clock: Arc::new(Clock::default()),
            events: Default::default(),
        }
    }

    /// Attaches the live store, its denylist and the hashing pool (once, when the plan goes
    /// live) and reads the key schedule, and the denylist when revocation is on and it was
    /// never read; a store that cannot answer yet is asked again later (the schedule at the
    /// first token signed, the denylist by its sync task, the issuer's tokens refused until
    /// then).
    pub async fn attach(
        &self,
        store: Arc<dyn Store>,
        denylist: Arc<Denylist>,
        hasher: Arc<Hasher>,
    ) {
        let _ = self.hasher.set(hasher);
        if let Some(every) = self.spec.revocation {
            denylist.want(every);
            if !denylist.is_loaded()
                && let Err(e) = denylist.sync(&*store, self.clock.now_ms()).await
            {
                tracing::warn!(error = %e, "issuer store: denylist not read yet; the issuer's tokens are refused until it is");
            }
        }
        let _ = self.denylist.set(denylist);
        let _ = self.store.set(store);
        if let Err(e) = self.schedule().await {
            tracing::warn!(error = %e, "issuer store: signing key schedule not read yet");
        }
    }

    /// Step 7½ for a token provider `provider` verified, with `claims`: when revocation is
    /// on and the provider is `self`, a revoked `jti` is refused — and every such token while
    /// the denylist has never been read (never allowed unchecked).
    pub fn check_revocation(
        &self,
        provider: usize,
        claims: &Map<String, Value>,
    ) -> Result<(), TokenError> {
        if self.spec.revocation.is_none() || provider != self.spec.provider {
            return Ok(());
        }
        let Some(denylist) = self.denylist.get() else {
            return Err(TokenError::RevocationUnavailable);
        };
        let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
        match denylist.verdict(&self.spec.issuer, jti, self.clock.now_ms()) {
            Verdict::Allowed => Ok(()),
            Verdict::Denied => Err(TokenError::Revoked),
            Verdict::NotLoaded => Err(TokenError::RevocationUnavailable),
        }
    }

    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.get()
    }

    /// How often `event` happened.
    pub fn count(&self, event: Event) -> u64 {
        self.events[event as usize].get()
    }

    fn note(&self, event: Event) {
        self.events[event as usize].inc();
    }

    /// The hashing pool `attach` gave (the registry's, kept across reloads); one of its own
    /// for an issuer never attached.
    fn hasher(&self) -> Option<&Hasher> {
        if let Some(h) = self.hasher.get() {
            return Some(h);
        }
        let made = Hasher::new(self.spec.hashing_permits, self.spec.hashing_queue).ok()?;
        Some(self.hasher.get_or_init(|| Arc::new(made)))
    }

    /// The public JWK set.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.spec.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }

    /// When each key was first seen (from the store, recorded there if new).
    async fn schedule(&self) -> Result<Arc<Vec<i64>>, StoreError> {
        if let Some(known) = self.first_seen.load_full() {
            return Ok(known);
        }
        let store = self
            .store()
            .ok_or_else(|| StoreError::Unavailable("no store".into()))?;
        let now = self.clock.now_ms();
        let mut seen = Vec::with_capacity(self.spec.keys.len());
        for key in &self.spec.keys {
            seen.push(store.key_first_seen(&key.kid, now).await?);
        }
        let seen = Arc::new(seen);
        self.first_seen.store(Some(seen.clone()));
        Ok(seen)
    }

    /// A signed access token for `sub` with `claims`, and its lifetime in seconds.
    async fn access_token(
        &self,
        sub: &str,
        claims: &Map<String, Value>,
    ) -> Result<(String, u64), Reply> {
        let store_down = |_| unavailable("5", "token store unavailable");
        let schedule = self.schedule().await.map_err(store_down)?;
        let now_ms = self.clock.now_ms();
        let key = signing::signer(
            &schedule,
            now_ms,
            self.spec.publish_ahead.as_millis() as i64,
        )
        .and_then(|i| self.spec.keys.get(i))
        .ok_or_else(|| unavailable("5", "no signing key"))?;
        let now = now_ms / 1000;
        let ttl = self.spec.access_ttl.as_secs();
        let mut body = claims.clone();
        let aud = match self.spec.audiences.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        let jti = refresh::random_text(16).ok_or_else(|| unavailable("1", "no randomness"))?;
        for (name, value) in [
            ("iss", json!(self.spec.issuer)),
            ("aud", aud),
            ("sub", json!(sub)),
            ("iat", json!(now)),
            ("nbf", json!(now)),
            ("exp", json!(now + ttl as i64)),
            ("jti", json!(jti)),
            ("client_id", json!(self.spec.client_id)),
        ] {
            body.insert(name.into(), value);
        }
        let token = key
            .sign(&Value::Object(body))
            .map_err(|_| unavailable("1", "signing failed"))?;
        Ok((token, ttl))
    }

    fn token_reply(
        &self,
        token: String,
        expires_in: u64,
        cookie_value: &str,
        max_age: i64,
    ) -> Reply {
        let reply = json_reply(
            StatusCode::OK,
            &json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}),
        );
        with_cookie(
            reply,
            &cookie::set(
                &self.spec.cookie_name,
                cookie_value,
                (max_age / 1000).max(0) as u64,
            ),
        )
    }

    fn clear_cookie(&self, reply: Reply) -> Reply {
        with_cookie(reply, &cookie::clear(&self.spec.cookie_name))
    }

    /// Serves one request to endpoint `endpoint`; `client` is the client address as the
    /// gateway believes it (trusted proxies applied); `token` the claims of the access token
    /// the request presented, verified through `self` (logout, with revocation on).
    pub async fn serve<B: RequestBody>(
        &self,
        endpoint: Endpoint,
        parts: &Parts,
        body: B,
        client: IpAddr,
        token: Option<&Map<String, Value>>,
    ) -> Reply {
        let mut reply = match endpoint {
            Endpoint::Jwks => {
                let mut r = json_reply(StatusCode::OK, &self.jwks());
                r.headers_mut().insert(
                    CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                );
                r.headers_mut().remove(http::header::PRAGMA);
                return r;
            }
            Endpoint::Metadata => {
                let base = self.spec.issuer.trim_end_matches('/');
                let mut r = json_reply(
                    StatusCode::OK,
                    &json!({
                        "issuer": self.spec.issuer,
                        "jwks_uri": format!("{base}/.well-known/jwks.json"),
                        "token_endpoint": format!("{base}/auth/login"),
                    }),
                );
                r.headers_mut().insert(
                    CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                );
                r.headers_mut().remove(http::header::PRAGMA);
                return r;
            }
            Endpoint::SignInPage => return page::sign_in(&self.spec),
            Endpoint::Login | Endpoint::Refresh | Endpoint::Logout => {
                match self.post(endpoint, parts, body, client, token).await {
                    Ok(r) | Err(r) => r,
                }
            }
        };
        reply
            .headers_mut()
            .insert(VARY, HeaderValue::from_static("Origin, Sec-Fetch-Site"));
        reply
    }

    async fn post<B: RequestBody>(
        &self,
        endpoint: Endpoint,
        parts: &Parts,
        body: B,
        client: IpAddr,
        token: Option<&Map<String, Value>>,
    ) -> Result<Reply, Reply> {
        // Step 1: CSRF, before anything is read or any cookie is touched.
        let policy = csrf::Policy {
            own_origin: &self.spec.origin,
            allowed_origins: &self.spec.allowed_origins,
            header: &self.spec.csrf_header,
        };
        if let Err(refusal) = csrf::check(&parts.headers, policy) {
            self.note(Event::CsrfRefused);
            let why = match refusal {
                csrf::Refusal::CrossSite => "cross-site request",
                csrf::Refusal::ForeignOrigin => "origin not allowed",
                csrf::Refusal::MissingHeader => "missing CSRF header",
            };
            return Err(error_reply(StatusCode::FORBIDDEN, "csrf_refused", why));
        }
        let Some(store) = self.store().cloned() else {
            self.note(Event::StoreUnavailable);
            return Err(unavailable("5", "token store unavailable"));
        };
        match endpoint {
            Endpoint::Login => self.login(&*store, parts, body, client).await,
            Endpoint::Refresh => self.refresh(&*store, parts).await,
            _ => self.logout(&*store, parts, body, token).await,
        }
    }

    fn store_down(&self, e: StoreError) -> Reply {
        tracing::warn!(error = %e, "issuer store");
        self.note(Event::StoreUnavailable);
        unavailable("5", "token store unavailable")
    }

    async fn read_body<B: RequestBody>(body: B) -> Result<Bytes, Reply> {
        let too_large = || {
            error_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "body too large",
            )
        };
        match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(_)) => Err(too_large()),
            Err(_) => Err(error_reply(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "body too slow",
            )),
        }
    }

    async fn login<B: RequestBody>(
        &self,
        store: &dyn Store,
        parts: &Parts,
        body: B,
        client: IpAddr,
    ) -> Result<Reply, Reply> {
        let now = self.clock.now_ms();
        // Step 2: the client address's bucket.
        let key = format!("ip:{client}");
        if !store
            .take_token(&key, now, self.spec.client_rate)
            .await
            .map_err(|e| self.store_down(e))?
        {
            self.note(Event::ClientRateLimited);
            let mut r = error_reply(
                StatusCode::TOO_MANY_REQUESTS,
                "slow_down",
                "too many login attempts from this address",
            );
            let wait = 60 / self.spec.client_rate.per_minute.max(1);
            if let Ok(v) = HeaderValue::from_str(&wait.max(1).to_string()) {
                r.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
            return Err(r);
        }
        // Step 3: the body.
        let body = Self::read_body(body).await?;
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let Some((username, password)) = credentials::read(content_type, &body) else {
            return Err(error_reply(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "expected username and password (JSON or form; password 1–1024 bytes)",
            ));
        };
        // Step 4: a username held after repeated failures gets the same answer as a wrong
        // password, after the same work.
        let window = self.spec.throttle.window.as_millis() as i64;
        let failures = store
            .failures(&username, now, window)
            .await
            .map_err(|e| self.store_down(e))?;
        let held = now
            < self
                .spec
                .throttle
                .held_until(failures.count, failures.last_at);
        let user = self.spec.users.by_name.get(&username);
        // Step 5: the hash, bounded.
        let Some(hasher) = self.hasher() else {
            return Err(unavailable("1", "password hashing unavailable"));
        };
        let stored = if held {
            None
        } else {
            user.map(|u| u.hash.clone())
        };
        let matched = match hasher.check(password, stored).await {
            Ok(matched) => matched,
            Err(Busy::Overloaded) => {
                self.note(Event::HashingOverloaded);
                return Err(unavailable("1", "too many logins at once"));
            }
        };
        // Step 6.
        let (true, Some(user)) = (matched, user) else {
            if held {
                self.note(Event::LoginThrottled);
            } else {
                self.note(Event::LoginFailed);
                store
                    .record_failure(&username, now, window)
                    .await
                    .map_err(|e| self.store_down(e))?;
            }
            return Err(login_refused());
        };
        if failures.count > 0 {
            store
                .clear_failures(&username)
                .await
                .map_err(|e| self.store_down(e))?;
        }
        let family = refresh::new_family_id().ok_or_else(|| unavailable("1", "no randomness"))?;
        let expires_at = now + self.spec.refresh_absolute.as_millis() as i64;
        store
            .create_family(&NewFamily {
                id: family.clone(),
                sub: username.clone(),
                now,
                expires_at,
            })
            .await
            .map_err(|e| self.store_down(e))?;
        let (token, ttl) = self.access_token(&username, &user.claims).await?;
        let cookie_value = self
            .spec
            .refresh_key
            .token(&family, 1)
            .ok_or_else(|| unavailable("1", "token"))?;
        self.note(Event::LoginSucceeded);
        Ok(self.token_reply(token, ttl, &cookie_value, expires_at - now))
    }

    async fn refresh(&self, store: &dyn Store, parts: &Parts) -> Result<Reply, Reply> {
        let refused = |why: &str| {
            self.note(Event::RefreshRefused);
            self.clear_cookie(error_reply(StatusCode::UNAUTHORIZED, "invalid_grant", why))
        };
        // Step 2: the cookie, and its MAC.
        let Some(presented) = cookie::read(&parts.headers, &self.spec.cookie_name)
            .and_then(|value| self.spec.refresh_key.open(value))
        else {
            return Err(refused("no valid refresh token"));
        };
        // Step 3: rotate-or-detect.
        let now = self.clock.now_ms();
        let rotation = store
            .rotate(RotateRequest {
                id: &presented.family,
                generation: presented.generation,
                now,
                idle_ms: self.spec.refresh_idle.as_millis() as i64,
                grace_ms: self.spec.grace.as_millis() as i64,
            })
            .await
            .map_err(|e| self.store_down(e))?;
        let (family, event) = match rotation {
            Rotation::Rotated(f) => (f, Event::Refreshed),
            Rotation::Grace(f) => (f, Event::RefreshGrace),
            Rotation::ReuseDetected => {
                self.note(Event::ReuseDetected);
                tracing::warn!(target: "security", "refresh token reuse detected: family revoked");
                return Err(self.clear_cookie(error_reply(
                    StatusCode::UNAUTHORIZED,
                    "invalid_grant",
                    "refresh token reused: session revoked",
                )));
            }
            Rotation::Revoked => return Err(refused("session revoked")),
            Rotation::Expired => return Err(refused("session expired")),
            Rotation::Unknown => return Err(refused("unknown session")),
        };
        // Step 4: a user removed from the user file loses every session.
        let Some(user) = self.spec.users.by_name.get(&family.sub) else {
            store
                .revoke_subject(&family.sub, now, "user_removed")
                .await
                .map_err(|e| self.store_down(e))?;
            return Err(refused("unknown user"));
        };
        // Step 5.
        let (token, ttl) = self.access_token(&family.sub, &user.claims).await?;
        let successor = self
            .spec
            .refresh_key
            .token(&presented.family, family.generation)
            .ok_or_else(|| unavailable("1", "token"))?;
        self.note(event);
        Ok(self.token_reply(token, ttl, &successor, family.expires_at - now))
    }

    async fn logout<B: RequestBody>(
        &self,
        store: &dyn Store,
        parts: &Parts,
        body: B,
        token: Option<&Map<String, Value>>,
    ) -> Result<Reply, Reply> {
        let body = Self::read_body(body).await?;
        let everywhere = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("everywhere").and_then(Value::as_bool))
            .unwrap_or(false)
            || body.as_ref() == b"everywhere=true";
        let now = self.clock.now_ms();
        let presented = cookie::read(&parts.headers, &self.spec.cookie_name)
            .and_then(|value| self.spec.refresh_key.open(value));
        let mut revoked = 0u64;
        if let Some(p) = presented {
            if everywhere {
                if let Some(sub) = self.subject_of(store, &p.family, now).await? {
                    revoked = store
                        .revoke_subject(&sub, now, "logout_everywhere")
                        .await
                        .map_err(|e| self.store_down(e))?;
                }
            } else if store
                .revoke_family(&p.family, now, "logout")
                .await
                .map_err(|e| self.store_down(e))?
            {
                revoked = 1;
            }
        }
        // Step 3½: with revocation on, the access token shown is refused from now on.
        let mut token_revoked = false;
        if let (Some(claims), Some(denylist)) = (token, self.denylist.get())
            && let (Some(jti), Some(exp)) = (
                claims.get("jti").and_then(Value::as_str),
                claims.get("exp").and_then(Value::as_f64),
            )
        {
            let denial = store::Denial {
                iss: self.spec.issuer.clone(),
                jti: jti.to_string(),
                // Held past `exp` by more than any leeway a provider allows.
                expires_at: (exp * 1000.0) as i64 + 5 * 60_000,
            };
            store
                .deny(&denial.iss, &denial.jti, denial.expires_at, now)
                .await
                .map_err(|e| self.store_down(e))?;
            denylist.add(std::slice::from_ref(&denial), now);
            self.note(Event::AccessTokenRevoked);
            token_revoked = true;
        }
        self.note(Event::Logout);
        let reply = json_reply(
            StatusCode::OK,
            &json!({"logged_out": true, "sessions_revoked": revoked, "access_token_revoked": token_revoked}),
        );
        Ok(self.clear_cookie(reply))
    }

    /// The subject of a live family (`None`: unknown, revoked or expired), without moving it.
    async fn subject_of(
        &self,
        store: &dyn Store,
        family: &str,
        now: i64,
    ) -> Result<Option<String>, Reply> {
        store
            .family_subject(family, now)
            .await
            .map_err(|e| self.store_down(e))
    }
}

/// Removes the issuer's cookie from a request's `Cookie` headers (proxied requests never carry
/// it upstream).
pub fn strip_cookie(headers: &mut http::HeaderMap, name: &str) {
    let mentioned = |v: &HeaderValue| v.to_str().map_or(true, |t| t.contains(name));
    if !headers.get_all(COOKIE).iter().any(mentioned) {
        return;
    }
    let values: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    headers.remove(COOKIE);
    for value in values {
        let Ok(text) = value.to_str() else { continue };
        if let Some(kept) = cookie::without(text, &[name])
            && let Ok(v) = HeaderValue::from_str(&kept)
        {
            headers.append(COOKIE, v);
        }
    }
}

/// Drops upstream `Set-Cookie` headers that set the issuer's cookie.
pub fn drop_set_cookie(headers: &mut http::HeaderMap, name: &str) {
    let ours = |v: &HeaderValue| v.to_str().map_or(true, |t| cookie::set_name(t) == name);
    if !headers.get_all(SET_COOKIE).iter().any(ours) {
        return;
    }
    let values: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    headers.remove(SET_COOKIE);
    for value in values {
        if value.to_str().is_ok_and(|t| cookie::set_name(t) != name) {
            headers.append(SET_COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_cookie_never_crosses_the_proxy() {
        let name = "__Host-portcullis-refresh";
        let mut request = http::HeaderMap::new();
        request.append(
            COOKIE,
            HeaderValue::from_static("a=1; __Host-portcullis-refresh=t"),
        );
        request.append(
            COOKIE,
            HeaderValue::from_static("__Host-portcullis-refresh=u"),
        );
        strip_cookie(&mut request, name);
        let left: Vec<_> = request.get_all(COOKIE).iter().collect();
        assert_eq!(left, vec!["a=1"]);
        let mut response = http::HeaderMap::new();
        response.append(SET_COOKIE, HeaderValue::from_static("sid=1; Path=/"));
        response.append(
            SET_COOKIE,
            HeaderValue::from_static("__Host-portcullis-refresh=evil; Path=/"),
        );
        drop_set_cookie(&mut response, name);
        let left: Vec<_> = response.get_all(SET_COOKIE).iter().collect();
        assert_eq!(left, vec!["sid=1; Path=/"]);
    }
}
