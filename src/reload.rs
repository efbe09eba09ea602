//! Hot reload: read every file of the config again, check all of it, and swap it in whole — or
//! keep the running config entirely. Triggered by SIGHUP, `POST /reload` on the admin listener,
//! or a change of any file the config was read from (`watch`).
//!
//! In-flight requests finish on the snapshot they loaded; new requests see the new one.
//! Unchanged upstreams and key stores are kept (`Plan::go_live`), every reload starts a fresh
//! verified-token cache, listener certificates are swapped for new handshakes. What the process
//! was started with — listener addresses, `server:` settings, the admin address, `reload:` —
//! cannot change live: a config that changes them is refused with a diagnostic that says so.

pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::config::{self, Config, ConfigErrors, Diagnostic, ListenerSpec, ServerSettings};
use crate::resources::ResourceError;
use crate::state::AppState;
use crate::tls::CertResolver;

/// Why a reload kept the running config.
#[derive(Debug, Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(ConfigErrors),
    #[error("{0}")]
    Resources(#[from] ResourceError),
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new config is in force.
    Applied { sha256: String },
    /// Every file is as it was: nothing to do.
    Unchanged { sha256: String },
}

/// The config in force: where it came from and its digest.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// SHA-256 over every source file's path and content.
    pub sha256: String,
    pub sources: Vec<PathBuf>,
    /// Unix seconds when it was applied.
    pub applied_at: f64,
}

/// Counts of reloads, for the admin listener and metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub applied: AtomicU64,
    pub unchanged: AtomicU64,
    pub failed: AtomicU64,
}

/// What the process was started with: what a reload compares against.
#[derive(Debug, Clone)]
pub struct Started {
    pub file: PathBuf,
    pub listeners: Vec<ListenerSpec>,
    pub server: ServerSettings,
    pub reload: config::ReloadSettings,
    pub sources: Vec<PathBuf>,
    pub admin_token: Option<String>,
}

impl Started {
    /// Everything of `config` but its plan.
    pub fn of(config: &Config) -> Self {
        Started {
            file: config.file.clone(),
            listeners: config.listeners.clone(),
            server: config.server.clone(),
            reload: config.reload,
            sources: config.sources.clone(),
            admin_token: config.admin.token.clone(),
        }
    }
}

/// Reloads the config of one running gateway; one reload at a time.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    vars: HashMap<String, String>,
    state: Arc<AppState>,
    /// The listeners and settings the process was started with.
    listeners: Vec<ListenerSpec>,
    server: ServerSettings,
    reload: config::ReloadSettings,
    /// Each listener's certificate, by listener position (`None`: plain HTTP).
    certs: Vec<Option<Arc<CertResolver>>>,
    current: Mutex<Loaded>,
    /// The admin token in force (`None`: none required); swapped by a reload.
    admin_token: arc_swap::ArcSwapOption<String>,
    pub stats: ReloadStats,
}

impl Reloader {
    /// The reloader of a gateway `started` so; `certs` are its listeners' certificates, by
    /// listener position.
    pub fn new(
        started: Started,
        vars: HashMap<String, String>,
        state: Arc<AppState>,
        certs: Vec<Option<Arc<CertResolver>>>,
    ) -> Self {
        Reloader {
            path: started.file,
            vars,
            state,
            listeners: started.listeners,
            server: started.server,
            reload: started.reload,
            certs,
            current: Mutex::new(Loaded {
                sha256: fingerprint(&started.sources),
                sources: started.sources,
                applied_at: crate::token::verify::unix_now(),
            }),
            admin_token: arc_swap::ArcSwapOption::from(started.admin_token.map(Arc::new)),
            stats: ReloadStats::default(),
        }
    }

    /// How changes are picked up (fixed at start).
    pub fn reload_settings(&self) -> config::ReloadSettings {
        self.reload
    }

    /// The config file being served.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bearer token admin requests must carry, if any.
    pub fn admin_token(&self) -> Option<Arc<String>> {
        self.admin_token.load_full()
    }

    /// The config in force, unless a reload holds it right now.
    pub fn current_now(&self) -> Option<Loaded> {
        self.current.try_lock().ok().map(|l| l.clone())
    }

    /// The config in force.
    pub async fn current(&self) -> Loaded {
        self.current.lock().await.clone()
    }

    /// Loads the config again and applies it whole, or keeps the running one and says why.
    /// `trigger` is logged (`SIGHUP`, `admin`, `file change`).
    pub async fn reload(&self, trigger: &str) -> Result<Outcome, ReloadError> {
        let mut current = self.current.lock().await;
        let result = self.try_reload(&mut current).await;
        match &result {
            Ok(Outcome::Applied { sha256 }) => {
                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                info!(trigger, sha256 = %sha256, "config reloaded");
            }
            Ok(Outcome::Unchanged { .. }) => {
                self.stats.unchanged.fetch_add(1, Ordering::Relaxed);
                info!(trigger, "config unchanged; nothing reloaded");
            }
            Err(ReloadError::Invalid(errors)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                for d in &errors.0 {
                    warn!(trigger, "config refused: {d}");
                }
                warn!(trigger, "reload refused; the running config is kept");
            }
            Err(ReloadError::Resources(e)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                warn!(trigger, error = %e, "reload refused; the running config is kept");
            }
        }
        result
    }

    async fn try_reload(&self, current: &mut Loaded) -> Result<Outcome, ReloadError> {
        let config = config::load_with(&self.path, &self.vars).map_err(ReloadError::Invalid)?;
        let sha256 = fingerprint(&config.sources);
        if sha256 == current.sha256 {
            return Ok(Outcome::Unchanged { sha256 });
        }
        let mut refused = self.restart_only_changes(&config);
        // New certificates are checked before anything is swapped.
        let mut certs = Vec::new();
        for (i, (listener, resolver)) in config.listeners.iter().zip(&self.certs).enumerate() {
            match (&listener.tls, resolver) {
                (Some(material), Some(resolver)) => match material.certified_key() {
                    Ok(key) => certs.push((resolver.clone(), key)),
                    Err(e) => refused.push(Diagnostic::new(
                        &config.file,
                        None,
                        format!("listeners[{i}].tls"),
                        e,
                    )),
                },
                (None, None) => {}
                _ => refused.push(Diagnostic::new(
                    &config.file,
                    None,
                    format!("listeners[{i}].tls"),
                    "turning TLS on or off takes effect only after a restart; the running config is kept",
                )),
            }
        }
        if !refused.is_empty() {
            return Err(ReloadError::Invalid(ConfigErrors(refused)));
        }
        let snapshot = config.plan.go_live(&self.state.resources).await?;
        self.state.snapshot.store(Arc::new(snapshot));
        for (resolver, key) in certs {
            resolver.replace(key);
        }
        self.admin_token
            .store(config.admin.token.clone().map(Arc::new));
        *current = Loaded {
            sha256: sha256.clone(),
            sources: config.sources,
            applied_at: crate::token::verify::unix_now(),
        };
        Ok(Outcome::Applied { sha256 })
    }

    /// What the new config changes that only a restart can apply.
    fn restart_only_changes(&self, new: &Config) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut refuse = |key: String, what: String| {
            out.push(Diagnostic::new(
                &new.file,
                None,
                key,
                format!(
                    "{what}; this takes effect only after a restart, so the running config is kept"
                ),
            ));
        };
        if new.listeners.len() != self.listeners.len() {
            refuse(
                "listeners".into(),
                format!(
                    "{} listeners (admin included) instead of {}",
                    new.listeners.len(),
                    self.listeners.len()
                ),
            );
        } else {
            for (i, (old, new)) in self.listeners.iter().zip(&new.listeners).enumerate() {
                if old.address != new.address || old.role != new.role {
                    let key = match new.role {
                        config::Role::Admin => "admin.address".to_string(),
                        config::Role::Proxy => format!("listeners[{i}].address"),
                    };
                    refuse(key, format!("{} instead of {}", new.address, old.address));
                }
            }
        }
        for (field, changed) in server_changes(&self.server, &new.server) {
            if changed {
                refuse(format!("server.{field}"), "changed".into());
            }
        }
        if new.reload != self.reload {
            refuse("reload".into(), "changed".into());
        }
        out
    }
}

/// Each `server:` setting and whether it differs. Destructured, so a new setting must be
/// listed here.
fn server_changes(old: &ServerSettings, new: &ServerSettings) -> [(&'static str, bool); 14] {
    let ServerSettings {
        workers,
        max_header_bytes,
        max_headers,
        max_connections,
        header_read_timeout,
        tls_handshake_timeout,
        idle_timeout,
        h2_max_concurrent_streams,
        h2_stream_window,
        h2_connection_window,
        max_connections_per_ip,
        h2_max_pending_resets,
        h2_max_error_resets,
        shutdown_timeout,
    } = new;
    [
        ("workers", *workers != old.workers),
        (
            "max_header_bytes",
            *max_header_bytes != old.max_header_bytes,
        ),
        ("max_headers", *max_headers != old.max_headers),
        ("max_connections", *max_connections != old.max_connections),
        (
            "header_read_timeout",
            *header_read_timeout != old.header_read_timeout,
        ),
        (
            "tls_handshake_timeout",
            *tls_handshake_timeout != old.tls_handshake_timeout,
        ),
        ("idle_timeout", *idle_timeout != old.idle_timeout),
        (
            "h2_max_concurrent_streams",
            *h2_max_concurrent_streams != old.h2_max_concurrent_streams,
        ),
        (
            "h2_stream_window",
            *h2_stream_window != old.h2_stream_window,
        ),
        (
            "h2_connection_window",
            *h2_connection_window != old.h2_connection_window,
        ),
        (
            "max_connections_per_ip",
            *max_connections_per_ip != old.max_connections_per_ip,
        ),
        (
            "h2_max_pending_resets",
            *h2_max_pending_resets != old.h2_max_pending_resets,
        ),
        (
            "h2_max_error_resets",
            *h2_max_error_resets != old.h2_max_error_resets,
        ),
        (
            "shutdown_timeout",
            *shutdown_timeout != old.shutdown_timeout,
        ),
    ]
}

/// SHA-256 over each file's path and content, in order (hex). A file that cannot be read
/// counts as its path alone, so it differs from any content it may get.
pub fn fingerprint(sources: &[PathBuf]) -> String {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for path in sources {
        let name = path.to_string_lossy();
        digest.update(&(name.len() as u64).to_be_bytes());
        digest.update(name.as_bytes());
        match std::fs::read(path) {
            Ok(bytes) => {
                digest.update(&(bytes.len() as u64).to_be_bytes());
                digest.update(&bytes);
            }
            Err(_) => digest.update(&u64::MAX.to_be_bytes()),
        }
    }
    digest
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
