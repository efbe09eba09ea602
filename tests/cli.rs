//! The built binary: `check` on good and broken configs, `run` serving and stopping gracefully
//! on SIGTERM with a request in flight.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Kills the child on drop, so a failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A config with one public route to `upstream`, written into `work`.
fn open_config(work: &Workdir, upstream: &TestUpstream) -> std::path::PathBuf {
    work.write(
        "run.yaml",
        &GatewayYaml::new()
            .upstream("app", &upstream.url())
            .public_route("open", "/", "app")
            .yaml(),
    )
}

/// Starts `portcullis run` on `config` with stderr piped; returns it (killed on drop), the
/// address it announced, and the rest of its stderr lines.
fn start_binary(
    config: &std::path::Path,
) -> (
    Running,
    String,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
) {
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the gateway exited before listening")
            .unwrap();
        if let Some(at) = line.find("address=") {
            let rest = &line[at + "address=".len()..];
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    (running, addr, lines)
}

#[test]
fn check_accepts_the_shipped_configs() {
    let root = env!("CARGO_MANIFEST_DIR");
    for config in ["config/demo.yaml", "config/reference.yaml"] {
        let out = Command::new(BIN)
            .args(["check", "--config", &format!("{root}/{config}")])
            .env(
                "PORTCULLIS_HMAC_SECRET",
                "reference-config-secret-at-least-32-bytes",
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{config}: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(": OK"), "{stdout}");
        assert!(stdout.contains("routes:"), "{stdout}");
    }
}

#[test]
fn check_reports_every_error_with_file_line_and_key() {
    let work = Workdir::new();
    let path = work.write(
        "broken.yaml",
        "listeners:\n  - address: not-an-address\nupstreams:\n  app:\n    url: http://127.0.0.1:9\nproviders:\n  - name: p\n    issuer: https://i\n    audiences: [api]\n    algorithms: [RS256]\n    jwks_file: missing.json\nroutes:\n  - name: r\n    prefix: /api\n    upstream: nowhere\n    require:\n      claim: roles\n      contains: [admin]\n",
    );
    let out = Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for expected in [
        format!("{file}:2:5: listeners[0].address: expected IP:PORT"),
        format!("{file}:7:5: providers[0].jwks_file: cannot read"),
        format!("{file}:13:5: routes[0].upstream (rule \"r\"): no upstream named \"nowhere\""),
        format!(
            "{file}:17:7: routes[0].require.contains (rule \"r\"): expected a string, number or boolean"
        ),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("4 error(s)"), "{stderr}");

    let path = work.write(
        "typo.yaml",
        "listeners:\n  - address: 127.0.0.1:0\n    tsl: {}\n",
    );
    let out = Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3:5: listeners[0].tsl: unknown field `tsl`",
            path.display()
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn run_serves_and_drains_on_sigterm() {
    let upstream = TestUpstream::start_with_delay(Duration::from_millis(1500)).await;
    let work = Workdir::new();
    let path = open_config(&work, &upstream);
    let (running, addr, lines) = start_binary(&path);
    std::thread::spawn(move || for _ in lines {});

    let slow = tokio::spawn(client().get(format!("http://{addr}/slow")).send());
    // Wait until the request is in flight at the upstream, then ask the gateway to stop.
    let upstream_ref = &upstream;
    assert_eventually(
        Duration::from_secs(10),
        "the request reached the upstream",
        || async move { upstream_ref.count() > 0 },
    )
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &running.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let response = slow
        .await
        .unwrap()
        .expect("the in-flight request was cut off");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "upstream-ok 0 bytes");
    let mut running = running;
    let exit = tokio::task::spawn_blocking(move || running.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
}

/// A log consumer that stops reading never stops serving: the binary runs with its stderr piped
/// and never read while 300 requests with 8 KiB paths (far more than a pipe holds as access
/// lines) are served.
#[tokio::test]
async fn a_stalled_log_reader_does_not_stop_serving() {
    let upstream = TestUpstream::start().await;
    let work = Workdir::new();
    let path = open_config(&work, &upstream);
    let (_running, addr, lines) = start_binary(&path);
    // From here on nobody reads stderr: the pipe (64 KiB) fills after a few lines.
    let long = "a".repeat(8000);
    let http = client();
    let served = tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..300 {
            let r = http
                .get(format!("http://{addr}/{long}/{i}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    })
    .await;
    assert!(served.is_ok(), "serving stopped while stderr was not read");
    drop(lines);
}

/// The test config builder writes the sections in file order, whatever the call order.
#[test]
fn config_builder_writes_sections_in_order() {
    let yaml = GatewayYaml::new()
        .routes("- name: r\n  prefix: /\n  upstream: app\n")
        .server("workers: 1")
        .upstream("app", "http://127.0.0.1:9")
        .yaml();
    assert_eq!(
        yaml,
        "listeners:\n  - address: 127.0.0.1:0\nserver:\n  workers: 1\nupstreams:\n  app:\n    url: http://127.0.0.1:9\nroutes:\n  - name: r\n    prefix: /\n    upstream: app\nadmin:\n  address: 127.0.0.1:0\n"
    );
}

/// `portcullis reload --config PATH`, run to its end.
fn reload_command(path: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(["reload", "--config", path.to_str().unwrap()])
        .output()
        .unwrap()
}

/// `run` reloads on SIGHUP; `portcullis reload` checks the file, asks the running gateway, and
/// exits 1 with the diagnostics when the config is refused (the running one kept).
#[tokio::test]
async fn sighup_and_the_reload_command_reload_a_running_binary() {
    let upstream = TestUpstream::start().await;
    let work = Workdir::new();
    let admin_port = {
        // A free port for the admin listener, known to the test and to `portcullis reload`.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = |prefix: &str| {
        GatewayYaml::new()
            .upstream("app", &upstream.url())
            .public_route("open", prefix, "app")
            .admin(&format!("address: 127.0.0.1:{admin_port}"))
            .top("reload:\n  watch: false")
            .yaml()
    };
    let path = work.write("run.yaml", &config("/one"));
    let (running, addr, lines) = start_binary(&path);
    std::thread::spawn(move || for _ in lines {});
    let status = |path: &'static str| {
        let url = format!("http://{addr}{path}");
        async move { client().get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!((status("/one/x").await, status("/two/x").await), (200, 404));

    work.write("run.yaml", &config("/two"));
    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eventually(Duration::from_secs(10), "SIGHUP reloads", || async {
        status("/two/x").await == 200 && status("/one/x").await == 404
    })
    .await;

    work.write("run.yaml", &config("/three"));
    let out = reload_command(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied"));
    assert_eq!(status("/three/x").await, 200);

    // Refused by the local check: an unknown upstream, with file:line:key.
    work.write(
        "run.yaml",
        &config("/four").replace("upstream: app", "upstream: nowhere"),
    );
    let out = reload_command(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("run.yaml:") && stderr.contains("routes[0].upstream"),
        "{stderr}"
    );
    // Refused by the gateway: a setting that needs a restart.
    work.write(
        "run.yaml",
        &config("/four").replace(
            "listeners:\n",
            "server:\n  max_connections: 7\nlisteners:\n",
        ),
    );
    let out = reload_command(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("server.max_connections") && stderr.contains("restart"),
        "{stderr}"
    );
    assert_eq!(status("/three/x").await, 200, "the running config is kept");
    assert_eq!(status("/four/x").await, 404);
}

/// The shipped JSON Schemas are what the code generates (after a deliberate change:
/// `PORTCULLIS_UPDATE_GOLDEN=1 cargo test --test cli`).
#[test]
fn the_shipped_schemas_match_the_config_types() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (args, file) in [
        (vec!["schema"], "config/portcullis.schema.json"),
        (
            vec!["schema", "--rules"],
            "config/portcullis-rules.schema.json",
        ),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success());
        let generated = String::from_utf8(out.stdout).unwrap();
        let path = format!("{root}/{file}");
        if std::env::var_os("PORTCULLIS_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap();
        assert!(
            generated == shipped,
            "{file} differs from `portcullis {}`; if the change is intended, rerun with PORTCULLIS_UPDATE_GOLDEN=1",
            args.join(" ")
        );
        let schema: serde_json::Value = serde_json::from_str(&shipped).unwrap();
        assert_eq!(
            schema["additionalProperties"], false,
            "{file}: unknown keys are errors"
        );
    }
}
