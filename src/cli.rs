//! The command line: `run` a gateway, `check` a config, `explain` one request against it,
//! `reload` a running gateway, print the config `schema`, `demo`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use portcullis::config::{self, Config};
use portcullis::resources::Resources;
use portcullis::routes::policy::Policy;
use portcullis::{demo, server};
use tracing_subscriber::EnvFilter;

/// A reverse proxy that verifies Bearer JWTs and enforces per-route claim rules.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway with a config file (stops gracefully on SIGTERM or SIGINT).
    Run {
        /// The YAML config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a config file and its rule files (keys, certificates, rules), lint the rules and
    /// print a summary; exit 1 on errors (and on warnings with --deny-warnings).
    Check {
        /// The YAML config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Exit 1 when the lint finds anything (for CI).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Show what the gateway would do with one request under a config: the normalised path,
    /// every route considered, the token check, each claim rule, and the response.
    Explain {
        /// The YAML config file.
        #[arg(short, long)]
        config: PathBuf,
        /// A token to send as `Authorization: Bearer` (verified with the config's keys).
        #[arg(long, conflicts_with = "claims")]
        token: Option<String>,
        /// Claims as a JSON object, taken as if a valid token carried them (no signature).
        #[arg(long)]
        claims: Option<String>,
        /// A request header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// The request method.
        method: String,
        /// The request URL (`https://host/path?query`) or path (`/path`).
        url: String,
    },
    /// Validate a config file, then have the running gateway (found by the config's admin
    /// address) reload it; exit 1 with every diagnostic if either refuses it.
    Reload {
        /// The YAML config file the gateway runs with.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the JSON Schema of the config file (or, with --rules, of a rule file), for
    /// editors: `# yaml-language-server: $schema=…` at the top of a file.
    Schema {
        /// The schema of a rule file (routes only) instead of the main config.
        #[arg(long)]
        rules: bool,
    },
    /// Read a password without echo (twice, on a terminal; one line from a pipe) and print
    /// its argon2id hash (m=19456 KiB, t=2, p=1) for the issuer's user file.
    HashPassword,
    /// Start the gateway from the demo config with a built-in echo backend, and print curl
    /// commands with fresh demo tokens (dev-only keys from certs/).
    Demo {
        /// The demo config.
        #[arg(short, long, default_value = "config/demo.yaml")]
        config: PathBuf,
        /// Where the echo backend listens (the demo config reads it as ${PORTCULLIS_DEMO_ECHO}).
        #[arg(long, default_value = "127.0.0.1:8081")]
        echo_addr: SocketAddr,
        /// The dev-only RSA key that signs the demo tokens (PKCS#1 PEM).
        #[arg(long, default_value = "certs/demo-signing-key.pem")]
        signing_key: PathBuf,
    },
}

pub fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    // Held until the end of main: flushes what is still queued.
    let _logs = init_logging(cli.log_format);
    match cli.command {
        Command::Check {
            config,
            format,
            deny_warnings,
        } => check(&config, format, deny_warnings),
        Command::Explain {
            config,
            token,
            claims,
            headers,
            format,
            method,
            url,
        } => explain(&config, token, claims, &headers, format, &method, &url),
        Command::Run { config } => {
            let config = config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            print_warnings(&config);
            let runtime = runtime()?;
            runtime.block_on(async {
                let gateway = server::start(config).await?;
                gateway.run_until_signal().await;
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload { config } => reload(&config),
        Command::HashPassword => hash_password(),
        Command::Schema { rules } => {
            print!(
                "{}",
                if rules {
                    config::rules_schema()
                } else {
                    config::schema()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            config,
            echo_addr,
            signing_key,
        } => {
            let runtime = runtime()?;
            runtime.block_on(run_demo(&config, echo_addr, &signing_key))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `portcullis hash-password`: the password never appears on screen or in argv.
fn hash_password() -> Result<ExitCode> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            eprintln!("the two passwords differ");
            return Ok(ExitCode::from(1));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    match portcullis::issuer::password::hash(password.as_bytes()) {
        Ok(hash) => {
            println!("{hash}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Lines queued for stderr; past this, new lines are dropped (and counted) rather than making
/// a request wait for a reader of stderr that has stopped reading.
const LOG_QUEUE_LINES: usize = 16_384;

/// Log lines go to stderr through a bounded, lossy queue and one writer thread, so a stalled
/// log consumer never stops a worker. Dropped lines are counted and reported once the queue
/// drains again.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("portcullis-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let _ = std::thread::Builder::new()
        .name("portcullis-log-drops".into())
        .spawn(move || {
            let mut reported = 0;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(10));
                let now = dropped.dropped_lines();
                if now > reported {
                    tracing::warn!(
                        dropped_lines = now - reported,
                        total_dropped_lines = now,
                        "log lines dropped: stderr was not read fast enough"
                    );
                    reported = now;
                }
            }
        });
    guard
}

/// The main thread's runtime: single-threaded; `server::start` adds one thread with a runtime of
/// its own per further worker.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the async runtime")
}

fn print_warnings(config: &Config) {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
}

fn check(path: &Path, format: OutputFormat, deny_warnings: bool) -> Result<ExitCode> {
    portcullis::tls::install_crypto_provider();
    let loaded = config::load(path);
    if format == OutputFormat::Json {
        let (errors, warnings, routes) = match &loaded {
            Ok(c) => (Vec::new(), c.warnings.clone(), c.plan.routes.routes().len()),
            Err(e) => (e.0.clone(), Vec::new(), 0),
        };
        let ok = errors.is_empty() && (!deny_warnings || warnings.is_empty());
        let report = serde_json::json!({
            "file": path,
            "ok": ok,
            "errors": errors.iter().map(diagnostic_json).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(diagnostic_json).collect::<Vec<_>>(),
            "routes": routes,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let config = match loaded {
        Ok(c) => c,
        Err(errors) => {
            for d in &errors.0 {
                eprintln!("error: {d}");
            }
            eprintln!(
                "{}: {} error(s); nothing would be applied",
                path.display(),
                errors.0.len()
            );
            return Ok(ExitCode::from(1));
        }
    };
    for w in &config.warnings {
        println!("warning: {w}");
    }
    let s = &config.plan;
    println!("{}: OK", path.display());
    println!("listeners:");
    for l in config
        .listeners
        .iter()
        .filter(|l| l.role == config::Role::Proxy)
    {
        println!(
            "  {} ({})",
            l.address,
            if l.tls.is_some() {
                "https, h2 + http/1.1"
            } else {
                "http"
            }
        );
    }
    match config
        .listeners
        .iter()
        .find(|l| l.role == config::Role::Admin)
    {
        Some(admin) => println!("admin: {} (healthz, readyz, reload, config)", admin.address),
        None => println!("admin: off"),
    }
    println!("upstreams:");
    for u in &s.upstreams {
        println!("  {} -> {}", u.name, u.describe_targets());
    }
    println!("providers:");
    for p in s.providers.list() {
        let algs: Vec<_> = p.algorithms.iter().map(|a| format!("{a:?}")).collect();
        println!(
            "  {}: iss {} aud [{}] alg [{}] keys: {}, leeway {}s",
            p.name,
            p.issuer,
            p.audiences
                .as_deref()
                .map_or("none (not checked)".to_string(), |a| a.join(", ")),
            algs.join(", "),
            p.keys.describe(),
            p.leeway
        );
    }
    println!("routes:");
    for r in s.routes.routes() {
        let policy = match &r.policy {
            Policy::Authenticated(Some(_)) => "authenticated + claims",
            other => other.describe(),
        };
        let upstream = r.upstream.and_then(|i| s.upstreams.get(i)).map_or(
            if r.local.is_some() {
                "(answered by the issuer)"
            } else {
                "(nothing forwarded)"
            },
            |u| &*u.name,
        );
        println!(
            "  {}: {} -> {upstream} [{policy}]",
            r.name,
            r.describe_match(),
        );
    }
    if deny_warnings && !config.warnings.is_empty() {
        eprintln!(
            "{}: {} warning(s) and --deny-warnings",
            path.display(),
            config.warnings.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn diagnostic_json(d: &config::Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "file": d.file,
        "line": d.line(),
        "column": d.column(),
        "path": d.path,
        "rule": d.rule,
        "message": d.message,
    })
}

/// `portcullis reload`: check locally (no half-valid config reaches the gateway), then
/// `POST /reload` on its admin listener and print what it did.
fn reload(path: &Path) -> Result<ExitCode> {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: refused; the running config is kept", path.display());
            return Ok(ExitCode::from(1));
        }
    };
    let admin = config
        .listeners
        .iter()
        .find(|l| l.role == config::Role::Admin)
        .map(|l| l.address)
        .context("the config turns the admin listener off (admin.enabled: false); send SIGHUP to the gateway instead")?;
    let url = format!("http://{admin}/reload");
    let runtime = runtime()?;
    let (status, body) = runtime
        .block_on(async {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(30))
                .build()?;
            let mut request = client.post(&url);
            if let Some(token) = &config.admin.token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await?;
            let status = response.status();
            let bytes = response.bytes().await.unwrap_or_default();
            let body: serde_json::Value =
                serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            anyhow::Ok((status, body))
        })
        .with_context(|| format!("cannot reach the gateway's admin listener at {url}"))?;
    match body["result"].as_str() {
        Some(result @ ("applied" | "unchanged")) if status.is_success() => {
            println!(
                "{}: {result} (sha256 {})",
                path.display(),
                body["sha256"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            for e in body["errors"].as_array().into_iter().flatten() {
                eprintln!("{}", e.as_str().unwrap_or_default());
            }
            eprintln!(
                "{}: refused by the gateway ({status}); the running config is kept",
                path.display()
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn explain(
    config_path: &Path,
    token: Option<String>,
    claims: Option<String>,
    header_args: &[String],
    format: OutputFormat,
    method: &str,
    url: &str,
) -> Result<ExitCode> {
    use portcullis::explain::{self, Credential};
    portcullis::tls::install_crypto_provider();
    let config = config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let method = http::Method::from_bytes(method.as_bytes())
        .with_context(|| format!("{method:?} is not an HTTP method"))?;
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a URL or path"))?;
    let mut headers = http::HeaderMap::new();
    for h in header_args {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header {h:?}: expected Name: value"))?;
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("header {h:?}: invalid name"))?,
            http::HeaderValue::from_str(value.trim())
                .with_context(|| format!("header {h:?}: invalid value"))?,
        );
    }
    if let Some(token) = &token {
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token is not a valid header value")?,
        );
    }
    let credential = match claims {
        None => Credential::FromRequest,
        Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => Credential::Claims(map),
            _ => anyhow::bail!("--claims: expected a JSON object such as '{{\"sub\":\"alice\"}}'"),
        },
    };
    let runtime = runtime()?;
    let explanation = runtime.block_on(async {
        // Detached: no connection, no task; keys are fetched only for a token to check.
        let snapshot = config.plan.go_live(&Resources::detached()).await?;
        let snapshot = &snapshot;
        if token.is_some() {
            for p in snapshot.providers.list() {
                if p.keys.is_remote()
                    && let Err(e) = p.keys.initial_load().await
                {
                    tracing::warn!(provider = %p.name, "cannot fetch keys: {e}");
                }
            }
        }
        anyhow::Ok(explain::explain(snapshot, method, uri, headers, credential).await)
    })?;
    match format {
        OutputFormat::Text => print!("{explanation}"),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_demo(config_path: &Path, echo_addr: SocketAddr, signing_key: &Path) -> Result<()> {
    let echo = demo::start_echo(echo_addr)
        .await
        .with_context(|| format!("cannot start the echo backend on {echo_addr}"))?;
    let vars = HashMap::from([("PORTCULLIS_DEMO_ECHO".to_string(), echo.to_string())]);
    let config = config::load_with(config_path, &vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    print_warnings(&config);
    let issuer = config
        .plan
        .providers
        .list()
        .first()
        .and_then(|p| Some((p.issuer.clone(), p.audiences.as_ref()?.first()?.clone())))
        .context("the demo config has no provider with an audience")?;
    let minter = demo::Minter::from_pem_file(signing_key, "demo-rsa-1", &issuer.0, &issuer.1)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load the demo signing key {}: {e}",
                signing_key.display()
            )
        })?;
    let has_issuer = config.plan.issuer.is_some();
    let gateway = server::start_with(config, vars).await?;
    let http = gateway
        .addresses()
        .first()
        .copied()
        .context("the demo config has no listener")?;
    let https = gateway.addresses().get(1).copied();
    let mut text = demo::instructions(&minter, http, https).map_err(anyhow::Error::msg)?;
    if let (Some(https), true) = (https, has_issuer) {
        text.push_str(&demo::issuer_walkthrough(https));
    }
    println!("{text}");
    gateway.run_until_signal().await;
    Ok(())
}
