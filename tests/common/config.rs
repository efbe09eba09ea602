//! A gateway config written as what differs from a plain one: one HTTP listener on an
//! ephemeral loopback port and whatever the test adds. Fragments are YAML written flush left,
//! as they would stand under their section; the builder indents them.

use std::path::Path;

use super::{TestGateway, Workdir};

/// A gateway config under construction.
#[derive(Debug, Clone, Default)]
pub struct GatewayYaml {
    listeners: Vec<String>,
    server: Vec<String>,
    upstreams: Vec<String>,
    providers: Vec<String>,
    routes: Vec<String>,
    admin: String,
    top: Vec<String>,
}

/// `text` without its leading newline, each line prefixed with `by`.
pub fn indent(text: &str, by: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    text.lines()
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                format!("{by}{line}\n")
            }
        })
        .collect()
}

impl GatewayYaml {
    /// One plain HTTP listener and the admin listener, both on ephemeral ports, nothing else
    /// yet.
    pub fn new() -> Self {
        GatewayYaml {
            listeners: vec!["  - address: 127.0.0.1:0\n".to_string()],
            admin: "admin:\n  address: 127.0.0.1:0\n".to_string(),
            ..GatewayYaml::default()
        }
    }

    /// `admin:` with these keys instead of the ephemeral address alone.
    pub fn admin(mut self, keys: &str) -> Self {
        self.admin = format!("admin:\n{}", indent(keys, "  "));
        self
    }

    /// The one listener is HTTPS with this certificate and key instead.
    pub fn https_only(self, certificate: &Path, private_key: &Path) -> Self {
        self.https_only_at("127.0.0.1:0", certificate, private_key)
    }

    /// The one listener is HTTPS at `address`.
    pub fn https_only_at(mut self, address: &str, certificate: &Path, private_key: &Path) -> Self {
        self.listeners = vec![format!(
            "  - address: {address}\n    tls:\n      certificate: {}\n      private_key: {}\n",
            certificate.display(),
            private_key.display()
        )];
        self
    }

    /// A further listener, HTTPS with this certificate and key.
    pub fn and_https(mut self, certificate: &Path, private_key: &Path) -> Self {
        self.listeners.push(format!(
            "  - address: 127.0.0.1:0\n    tls:\n      certificate: {}\n      private_key: {}\n",
            certificate.display(),
            private_key.display()
        ));
        self
    }

    /// Keys under `server:`.
    pub fn server(mut self, keys: &str) -> Self {
        self.server.push(indent(keys, "  "));
        self
    }

    /// Upstream `name` at `url`.
    pub fn upstream(self, name: &str, url: &str) -> Self {
        self.upstream_with(name, &format!("url: {url}"))
    }

    /// Upstream `name` with these keys (`url:` or `targets:` among them).
    pub fn upstream_with(mut self, name: &str, keys: &str) -> Self {
        self.upstreams
            .push(format!("  {name}:\n{}", indent(keys, "    ")));
        self
    }

    /// Items of `providers:` (each starting with `- name:`).
    pub fn providers(mut self, items: &str) -> Self {
        self.providers.push(indent(items, "  "));
        self
    }

    /// A provider `name` with issuer `issuer`, audience `AUDIENCE`, these algorithms (`RS256`
    /// or `RS256, ES256`) and the keys of a local JWKS file.
    pub fn file_provider(
        self,
        name: &str,
        issuer: &str,
        algorithms: &str,
        jwks_file: &str,
    ) -> Self {
        self.providers(&format!(
            "- name: {name}\n  issuer: {issuer}\n  audiences: [{}]\n  algorithms: [{algorithms}]\n  jwks_file: {jwks_file}\n",
            super::AUDIENCE
        ))
    }

    /// Items of `routes:` (each starting with `- name:`).
    pub fn routes(mut self, items: &str) -> Self {
        self.routes.push(indent(items, "  "));
        self
    }

    /// A public route `name` forwarding everything under `prefix` to `upstream`.
    pub fn public_route(self, name: &str, prefix: &str, upstream: &str) -> Self {
        self.routes(&format!(
            "- name: {name}\n  prefix: {prefix}\n  upstream: {upstream}\n  policy: public\n"
        ))
    }

    /// Top-level keys added as they are (`rule_files:`, `paths:`).
    pub fn top(mut self, text: &str) -> Self {
        self.top.push(indent(text, ""));
        self
    }

    /// The YAML text.
    pub fn yaml(&self) -> String {
        // Empty fragments (a helper's "nothing extra") add nothing, not an empty section.
        let section = |name: &str, parts: &[String]| {
            let text = parts.concat();
            if text.is_empty() {
                text
            } else {
                format!("{name}:\n{text}")
            }
        };
        [
            section("listeners", &self.listeners),
            section("server", &self.server),
            section("upstreams", &self.upstreams),
            section("providers", &self.providers),
            section("routes", &self.routes),
            self.admin.clone(),
            self.top.concat(),
        ]
        .concat()
    }

    /// Starts the gateway in `work` (relative paths resolve there).
    pub async fn start_in(&self, work: Workdir) -> TestGateway {
        TestGateway::start(work, &self.yaml()).await
    }

    /// Starts the gateway in a new work folder.
    pub async fn start(&self) -> TestGateway {
        self.start_in(Workdir::new()).await
    }
}
