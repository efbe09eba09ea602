//! A `portcullis run` process (the real binary), for tests and the soak that need one: started
//! with a config, its listeners' addresses read from what it announces, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The gateway process, killed on drop.
pub struct GatewayProcess {
    pub child: Child,
    /// `http://` and the proxy listener's address.
    pub url: String,
    /// `http://` and the admin listener's address.
    pub admin: String,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProcess {
    /// Starts `bin run --config config` and waits (at most 30 s) until it announces both
    /// listeners (the config has the admin listener on, as `GatewayYaml` writes it); its
    /// warnings and errors are passed on to stderr.
    pub async fn start(bin: &Path, config: &Path) -> Result<GatewayProcess, String> {
        let mut child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let announced = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let (mut proxy, mut admin) = (None, None);
            for line in lines.by_ref().map_while(Result::ok) {
                let Some(at) = line.find("address=") else {
                    continue;
                };
                let address = line[at + "address=".len()..]
                    .split_whitespace()
                    .next()
                    .map(str::to_string);
                if !line.contains("listening") {
                    continue;
                }
                if line.contains("admin") {
                    admin = address;
                } else {
                    proxy = address;
                }
                if proxy.is_some() && admin.is_some() {
                    break;
                }
            }
            // Keep draining (warnings, reloads), so the process never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    if line.contains("WARN") || line.contains("ERROR") {
                        eprintln!("gateway: {line}");
                    }
                }
            });
            proxy.zip(admin)
        });
        let found = tokio::time::timeout(Duration::from_secs(30), announced)
            .await
            .map_err(|_| "the gateway did not announce its listeners within 30 s".to_string())?
            .map_err(|e| e.to_string())?;
        let (proxy, admin) = found.ok_or("the gateway exited before listening")?;
        Ok(GatewayProcess {
            child,
            url: format!("http://{proxy}"),
            admin: format!("http://{admin}"),
        })
    }
}
