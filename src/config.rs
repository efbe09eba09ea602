//! Loading a config file: parse the YAML into `raw` types (unknown keys denied), then compile
//! them into the typed snapshot the request path reads. Every problem is collected with its
//! file, line, key path and what was expected; nothing is applied unless all of it is valid.

pub mod compile;
pub mod diagnostic;
pub mod lint;
pub mod raw;
pub mod rule_files;
pub mod values;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use diagnostic::{ConfigErrors, Diagnostic};

use crate::state::Plan;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The gateway: routes, tokens, upstreams.
    Proxy,
    /// Health, readiness, reload and the effective config, for operators only.
    Admin,
}

/// A listening socket, plain HTTP or TLS, and what it serves.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    pub address: SocketAddr,
    pub tls: Option<crate::tls::ServerMaterial>,
    pub role: Role,
}

/// The admin listener's settings beyond its address.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AdminSettings {
    /// The bearer token every admin request must carry, when set.
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.token.as_ref().map(|_| "<redacted>");
        f.debug_struct("AdminSettings")
            .field("token", &token)
            .finish()
    }
}

/// How config changes are picked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadSettings {
    /// Watch every file the config was read from (default true).
    pub watch: bool,
    /// How long changes must settle before a reload (default 2 s).
    pub debounce: Duration,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        ReloadSettings {
            watch: true,
            debounce: Duration::from_secs(2),
        }
    }
}

/// Process-wide limits and timeouts, with their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Runtime worker threads (default: number of CPUs).
    pub workers: Option<usize>,
    /// Largest request head (request line and headers) accepted, in bytes (default 65536).
    pub max_header_bytes: usize,
    /// Most request headers accepted (default 100).
    pub max_headers: usize,
    /// Most client connections open at once; further clients wait in the accept queue
    /// (default 10000).
    pub max_connections: usize,
    /// Time a client has to send a complete request head (default 10 s).
    pub header_read_timeout: Duration,
    /// Time a client has to finish the TLS handshake (default 10 s).
    pub tls_handshake_timeout: Duration,
    /// A connection on which no byte moves for this long is closed, after whatever is in
    /// flight finishes (default 60 s).
    pub idle_timeout: Duration,
    /// HTTP/2 streams a client may have open on one connection (default 100).
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 flow-control window per stream, in bytes (default 256 KiB).
    pub h2_stream_window: u32,
    /// HTTP/2 flow-control window per connection, in bytes (default 1 MiB).
    pub h2_connection_window: u32,
    /// Client connections one address may have open (default: no limit beyond
    /// `max_connections`).
    pub max_connections_per_ip: Option<usize>,
    /// HTTP/2 streams a client may reset before the server answers them, before GOAWAY
    /// (default 64; rapid-reset protection).
    pub h2_max_pending_resets: usize,
    /// HTTP/2 streams the server may have to reset for protocol errors, before GOAWAY
    /// (default 256).
    pub h2_max_error_resets: usize,
    /// Time in-flight requests get to finish after SIGTERM/SIGINT (default 30 s).
    pub shutdown_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            workers: None,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            h2_max_concurrent_streams: 100,
            h2_stream_window: 256 * 1024,
            h2_connection_window: 1024 * 1024,
            max_connections_per_ip: None,
            h2_max_pending_resets: 64,
            h2_max_error_resets: 256,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// A fully validated config.
#[derive(Debug)]
pub struct Config {
    pub file: PathBuf,
    pub listeners: Vec<ListenerSpec>,
    pub server: ServerSettings,
    /// The compiled config as data; `Plan::go_live` makes it live.
    pub plan: Plan,
    pub admin: AdminSettings,
    pub reload: ReloadSettings,
    /// Every file the config was read from: the main file, rule files, key, certificate and
    /// secret files (what a reload watches and hashes).
    pub sources: Vec<PathBuf>,
    /// Non-fatal findings: skipped JWKS keys and the rule lint (`config::lint`).
    pub warnings: Vec<Diagnostic>,
}

/// The JSON Schema of the config file (from the types it is read into), as shipped in
/// `config/portcullis.schema.json`.
pub fn schema() -> String {
    pretty(schemars::schema_for!(raw::RawConfig))
}

/// The JSON Schema of a rule file (`routes:` only), as shipped in
/// `config/portcullis-rules.schema.json`.
pub fn rules_schema() -> String {
    pretty(schemars::schema_for!(raw::RawRuleFile))
}

fn pretty(schema: schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Loads and validates `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &HashMap::new())
}

/// Loads `path` with `vars` seen by `${VAR}` substitution ahead of the environment.
pub fn load_with(path: &Path, vars: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![Diagnostic::new(
            path,
            None,
            "",
            format!("cannot read the config file: {e}"),
        )])
    })?;
    load_text(path, &text, vars)
}

/// Validates `text` as the config file at `path` (rule files and key files are read relative
/// to it).
pub fn load_text(
    path: &Path,
    text: &str,
    vars: &HashMap<String, String>,
) -> Result<Config, ConfigErrors> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let (raw, rules) = values::with_overrides(vars, || {
        let raw: raw::RawConfig = parse(path, text)?;
        let rules = rule_files::load(path, &base, &raw.rule_files)?;
        Ok::<_, ConfigErrors>((raw, rules))
    })?;
    compile::compile(path, &base, raw, rules)
}

/// Parses YAML text into a raw config type, naming the key path of the first problem.
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigErrors> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    let mut key_path = String::new();
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            key_path = key_path_without_spans(e.path());
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let location = e.location();
        ConfigErrors(vec![Diagnostic::new(
            path,
            location.as_ref(),
            key_path,
            plain_message(&e),
        )])
    })
}

/// The key path as the operator reads it: `Spanned` wrappers (used to know where each list
/// item starts) add a `value` step that is not in the file, so it is left out.
fn key_path_without_spans(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    const SPANNED_ITEMS: [&str; 6] = [
        "listeners",
        "providers",
        "routes",
        "all",
        "any",
        "rule_files",
    ];
    let mut out = String::new();
    let mut parent: Option<String> = None;
    let mut after_span = false;
    for segment in path.iter() {
        match segment {
            Segment::Map { key } if after_span && key == "value" => {
                after_span = false;
                continue;
            }
            Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
                after_span = parent
                    .as_deref()
                    .is_some_and(|p| SPANNED_ITEMS.contains(&p));
                parent = None;
            }
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
                after_span =
                    key == "require" || key == "not" || parent.as_deref() == Some("upstreams");
                parent = Some(key.clone());
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
                after_span = false;
                parent = None;
            }
            Segment::Unknown => {
                out.push_str(".?");
                after_span = false;
                parent = None;
            }
        }
    }
    out
}

/// The parser's message without the position it appends (the diagnostic prints that itself).
fn plain_message(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    text.trim().to_string()
}
