//! A real PostgreSQL server for one test: `initdb` into a temp dir, `postgres` on an
//! ephemeral loopback port (its socket in the temp dir), run as `nobody` when the test runs
//! as root. Stopped (fast shutdown) and its files removed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Postgres {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    pub port: u16,
}

/// The folder holding `initdb` and `postgres`: on PATH, else Debian's versioned folder.
fn server_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"));
    on_path
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as `nobody` when we are root (PostgreSQL refuses to run as root).
fn command(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    /// Starts a server, or `None` (with a message) when the server binaries are missing and
    /// `PORTCULLIS_REQUIRE_POSTGRES` is not set (`.ci/run` sets it: there, missing fails).
    pub fn start() -> Option<Postgres> {
        let Some(bin) = server_bin() else {
            assert!(
                std::env::var_os("PORTCULLIS_REQUIRE_POSTGRES").is_none(),
                "PostgreSQL server binaries (initdb, postgres) not found"
            );
            eprintln!("SKIPPED: PostgreSQL server binaries not found (apt-get install postgresql)");
            return None;
        };
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("portcullis-pg")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if root {
            let status = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let out = command(&bin.join("initdb"), root)
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "portcullis",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let child = command(&bin.join("postgres"), root)
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "fsync=off", "-c", "max_connections=50"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Ready when the server says so on stderr (read on a thread that keeps draining it).
        let mut child = child;
        let stderr = child.stderr.take().unwrap();
        let (ready, is_ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("ready to accept connections") {
                    let _ = ready.send(());
                }
            }
        });
        let server = Postgres {
            child: Some(child),
            _dir: dir,
            port,
        };
        is_ready
            .recv_timeout(Duration::from_secs(30))
            .expect("postgres says it is ready within 30 s");
        Some(server)
    }

    /// A URL for a new database `name` (created now).
    pub async fn database(&self, name: &str) -> String {
        let url = format!("postgres://portcullis@127.0.0.1:{}/postgres", self.port);
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        format!("postgres://portcullis@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT: fast shutdown (through setpriv, which execs, so the pid is postgres's).
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            // Wait (at most 10 s) for it to exit, on a thread, then make sure it is gone.
            let pid = child.id();
            let (exited, has_exited) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = exited.send(child.wait());
            });
            if has_exited.recv_timeout(Duration::from_secs(10)).is_ok() {
                return;
            }
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let _ = has_exited.recv_timeout(Duration::from_secs(10));
        }
    }
}
