//! Raw config → typed runtime values. Every check names the key path; all problems are
//! collected before anything is returned, so a config is applied whole or not at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod conditions;
mod issuer;
mod providers;
mod routes;
mod server;
mod upstreams;

use super::diagnostic::Collector;
use super::raw::RawConfig;
use super::rule_files::RuleFile;
use super::{Config, ConfigErrors};
use crate::proxy::headers::HeaderRules;
use crate::routes::RouteTable;
use crate::state::Plan;
use crate::token::cache::TokenCache;
use crate::token::verify::Providers;
use providers::compile_providers;
use routes::RouteCompiler;
use server::{
    compile_admin, compile_listeners, compile_paths, compile_reload, compile_server,
    compile_spoofable_headers, compile_trusted_proxies, token_cache_settings,
};
use upstreams::compile_upstreams;

pub use providers::DEFAULT_LEEWAY_SECS;
pub use server::{DEFAULT_MAX_TOKEN_BYTES, DEFAULT_MAX_URI_BYTES};

/// Compiles a parsed file; `base` is the folder relative paths are resolved against.
pub fn compile(
    file: &Path,
    base: &Path,
    raw: RawConfig,
    rule_files: Vec<RuleFile>,
) -> Result<Config, ConfigErrors> {
    let mut c = Collector::new(file);

    let server = compile_server(&raw, &mut c);
    let mut listeners = compile_listeners(&raw, base, &mut c);
    let (admin_listener, admin) = compile_admin(raw.admin.as_ref(), &listeners, base, &mut c);
    // The admin listener comes last, so proxy listeners keep their positions.
    listeners.extend(admin_listener);
    let reload = compile_reload(&raw.reload, &mut c);
    let (upstreams, upstream_index) = compile_upstreams(&raw.upstreams, base, &mut c);
    let mut providers = compile_providers(&raw.providers, base, &mut c);
    let issuer = raw
        .issuer
        .as_ref()
        .and_then(|i| issuer::compile_issuer(i, base, &mut c));
    let mut issuer_routes = Vec::new();
    let issuer = issuer.map(|compiled| {
        if let Some(clash) = providers.iter().find(|p| {
            &*p.name == issuer::SELF_PROVIDER || p.issuer == compiled.provider.issuer
        }) {
            c.error(
                None,
                "issuer.issuer",
                format!(
                    "provider {} already verifies tokens of {}; the issuer adds its own provider \"{}\"",
                    clash.name, clash.issuer, issuer::SELF_PROVIDER
                ),
            );
        }
        let mut spec = compiled.spec;
        spec.provider = providers.len();
        providers.push(compiled.provider);
        issuer_routes = compiled.routes;
        if spec.revocation.is_some() {
            // Logout verifies the access token it is shown (through `self`) to deny its jti.
            for route in &mut issuer_routes {
                if route.local == Some(crate::issuer::Endpoint::Logout) {
                    route.providers = Some(vec![spec.provider]);
                }
            }
        }
        std::sync::Arc::new(crate::issuer::Issuer::new(spec))
    });
    let paths = compile_paths(&raw.paths);
    let trusted_proxies = compile_trusted_proxies(&raw.server.trusted_proxies, &mut c);
    let spoofable = compile_spoofable_headers(&raw.server.spoofable_headers, &mut c);
    let mut routes = RouteCompiler {
        upstreams: &upstream_index,
        upstream_list: &upstreams,
        providers: &providers,
        default_case_sensitive: raw.paths.case_sensitive.unwrap_or(true),
        default_max_body_bytes: raw.server.max_body_bytes,
        paths,
        names: HashMap::new(),
        out: issuer_routes,
    };
    routes.compile_file(file, &raw.routes, &mut c);
    for rule_file in &rule_files {
        c.file = rule_file.path.clone();
        routes.compile_file(&rule_file.path, &rule_file.raw.routes, &mut c);
    }
    c.file = file.to_path_buf();
    if routes.out.is_empty() && c.found.is_empty() {
        c.error(
            None,
            "routes",
            "expected at least one route, here or in rule_files (anything no route matches is denied)",
        );
    }
    let routes = routes.out;

    if !c.found.is_empty() {
        return Err(ConfigErrors(c.found));
    }
    let routes = RouteTable::new(routes);
    super::lint::lint(&routes, &upstreams, &raw, &mut c);
    // Warnings in reading order: by file (the main file first), then line.
    let order = |d: &super::Diagnostic| {
        let file_rank = if d.file == file { 0 } else { 1 };
        (file_rank, d.file.clone(), d.position)
    };
    c.warnings.sort_by_key(order);
    let (settings, realm, max_token_bytes, access_log) = server;
    let max_headers = settings.max_headers;
    let header_rules = HeaderRules::new(routes.identity_headers().to_vec(), spoofable);
    Ok(Config {
        file: file.to_path_buf(),
        listeners,
        server: settings,
        plan: Plan {
            paths,
            providers: Providers::new(providers),
            upstreams,
            realm: realm.into(),
            max_token_bytes,
            max_uri_bytes: raw.server.max_uri_bytes.unwrap_or(DEFAULT_MAX_URI_BYTES),
            max_headers,
            header_rules,
            routes,
            trusted_proxies,
            access_log,
            token_cache: TokenCache::new(token_cache_settings(&raw.server)),
            issuer,
        },
        admin,
        reload,
        sources: sources(file, &rule_files, c.sources),
        warnings: c.warnings,
    })
}

/// The main file, then the rule files, then the other files read, each once.
fn sources(file: &Path, rule_files: &[RuleFile], others: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut all = vec![file.to_path_buf()];
    for path in rule_files.iter().map(|r| r.path.clone()).chain(others) {
        if !all.contains(&path) {
            all.push(path);
        }
    }
    all
}

/// `path` resolved against `base`, noted as a file the config depends on.
pub(super) fn source_file(base: &Path, path: &str, c: &mut Collector) -> PathBuf {
    let resolved = resolve(base, path);
    c.source(&resolved);
    resolved
}

pub(super) fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid config: one listener, one upstream, one remote provider (no fetch at compile),
    /// one public route. Cases change one part of it.
    const BASE: &str = "listeners:
  - address: 127.0.0.1:0
upstreams:
  app:
    url: http://127.0.0.1:9000
providers:
  - name: idp
    issuer: https://idp.example
    audiences: [api]
    algorithms: [RS256]
    jwks_uri: https://idp.example/jwks.json
routes:
  - name: open
    prefix: /
    upstream: app
    policy: public
";

    /// The errors of `yaml` as printed, one line each.
    fn diagnose(yaml: &str) -> Vec<String> {
        let file = Path::new("t.yaml");
        let raw: RawConfig = match crate::config::parse(file, yaml) {
            Ok(raw) => raw,
            Err(e) => return e.0.iter().map(ToString::to_string).collect(),
        };
        match compile(file, Path::new("."), raw, Vec::new()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    /// `BASE` with `from` replaced by `to` (which must occur).
    fn with(from: &str, to: &str) -> String {
        assert!(BASE.contains(from), "{from:?} is not in the base config");
        BASE.replacen(from, to, 1)
    }

    #[test]
    fn the_base_config_compiles() {
        assert_eq!(diagnose(BASE), Vec::<String>::new());
    }

    #[test]
    fn raw_yaml_to_diagnostic_table() {
        let route = "  - name: open\n    prefix: /\n    upstream: app\n    policy: public\n";
        let cases: Vec<(String, &str)> = vec![
            // server
            (
                format!("server:\n  workers: 0\n{BASE}"),
                "t.yaml: server.workers: expected a number greater than 0",
            ),
            (
                format!("server:\n  h2_stream_window: 10\n{BASE}"),
                "t.yaml: server.h2_stream_window: expected 65535 to 2147483647 bytes",
            ),
            (
                format!("server:\n  trusted_proxies: [10.0.0.0/33]\n{BASE}"),
                "t.yaml: server.trusted_proxies[0]: expected an address or CIDR such as 10.0.0.0/8 or ::1, found \"10.0.0.0/33\"",
            ),
            (
                format!("server:\n  spoofable_headers: [authorization]\n{BASE}"),
                "t.yaml: server.spoofable_headers[0]: \"authorization\" is a header the gateway manages itself; it cannot be listed here",
            ),
            (
                with("address: 127.0.0.1:0", "address: localhost:80"),
                "t.yaml:2:5: listeners[0].address: expected IP:PORT such as 0.0.0.0:8443 or [::1]:8080, found \"localhost:80\"",
            ),
            // upstreams
            (
                with(
                    "url: http://127.0.0.1:9000",
                    "url: http://127.0.0.1:9000/path",
                ),
                "t.yaml:5:5: upstreams.app.url: expected an http or https URL with host and port and no path, such as http://127.0.0.1:8080, found \"http://127.0.0.1:9000/path\"",
            ),
            (
                with(
                    "url: http://127.0.0.1:9000",
                    "url: http://127.0.0.1:9000\n    max_requests: 0",
                ),
                "t.yaml:5:5: upstreams.app.max_requests: expected a number greater than 0",
            ),
            (
                with(
                    "url: http://127.0.0.1:9000",
                    "url: http://127.0.0.1:9000\n    tls: {}",
                ),
                "t.yaml:5:5: upstreams.app.tls: tls settings need https targets",
            ),
            // providers
            (
                with("algorithms: [RS256]", "algorithms: [RS257]"),
                "t.yaml:7:5: providers[0].algorithms[0]: expected one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA HS256 HS384 HS512, found \"RS257\"",
            ),
            (
                with("audiences: [api]", "audiences: []"),
                "t.yaml:7:5: providers[0].audiences: expected a list of one or more accepted aud values, or none for tokens without aud (then bind the client with clients)",
            ),
            (
                with(
                    "jwks_uri: https://idp.example/jwks.json",
                    "jwks_uri: http://idp.example/jwks.json",
                ),
                "t.yaml:7:5: providers[0].jwks_uri: \"http://idp.example/jwks.json\" is plain http: keys must come over https (or set remote_keys.allow_http: true)",
            ),
            (
                with(
                    "jwks_uri: https://idp.example/jwks.json",
                    "jwks_uri: https://idp.example/jwks.json\n    leeway: 1h",
                ),
                "t.yaml:7:5: providers[0].leeway: expected at most 600s",
            ),
            // routes
            (
                with("upstream: app", "upstream: api"),
                "t.yaml:13:5: routes[0].upstream (rule \"open\"): no upstream named \"api\" (known: app)",
            ),
            (
                with("prefix: /", "prefix: /a/../b"),
                "t.yaml:13:5: routes[0].prefix (rule \"open\"): requests are matched in normal form, so \"/a/../b\" can never match; write \"/b\"",
            ),
            (
                format!("{BASE}{}", route.replace("prefix: /", "path: /x")),
                "t.yaml:17:5: routes[1].name (rule \"open\"): route name \"open\" is already used at t.yaml:13; every route needs its own name",
            ),
            (
                with("policy: public", "policy: deny"),
                "t.yaml:13:5: routes[0].upstream (rule \"open\"): a policy: deny route forwards nothing: remove upstream",
            ),
            (
                with("policy: public", "policy: public\n    strip_prefix: /api"),
                "t.yaml:13:5: routes[0].strip_prefix (rule \"open\"): \"/api\" is not a leading part of the route's path \"\", so it would not always apply",
            ),
            (
                with(
                    "policy: public",
                    "policy: public\n    close_at_token_expiry: true",
                ),
                "t.yaml:13:5: routes[0].close_at_token_expiry (rule \"open\"): close_at_token_expiry applies to upgraded connections: list upgrades too",
            ),
            // conditions
            (
                with("    policy: public\n", "    require:\n      claim: role\n"),
                "t.yaml:17:7: routes[0].require (rule \"open\"): expected exactly one of equals, in, contains, contains_any, contains_all, scope, exists, regex, gt, gte, lt, lte beside claim, found none",
            ),
            (
                with(
                    "    policy: public\n",
                    "    require:\n      claim: role\n      in: []\n",
                ),
                "t.yaml:17:7: routes[0].require.in (rule \"open\"): expected a list of one or more values",
            ),
            (
                with(
                    "    policy: public\n",
                    "    require:\n      all:\n        - claim: role\n          equals: [a]\n",
                ),
                "t.yaml:18:11: routes[0].require.all[0].equals (rule \"open\"): expected a string, number or boolean (for a list, use in, contains_any or contains_all)",
            ),
            (
                with(
                    "    policy: public\n",
                    "    require:\n      claim: tenant\n      equals: {param: id}\n",
                ),
                "t.yaml:17:7: routes[0].require.equals.param (rule \"open\"): no path parameter {id} (this route's path has no parameters; write path: /users/{id})",
            ),
            (
                with(
                    "    policy: public\n",
                    "    require:\n      claim: scope\n      scope: \"\"\n",
                ),
                "t.yaml:17:7: routes[0].require.scope (rule \"open\"): expected one or more scope names without spaces",
            ),
        ];
        let mut wrong = Vec::new();
        for (yaml, want) in &cases {
            let got = diagnose(yaml);
            if got != [want.to_string()] {
                wrong.push(format!("want {want}\n got {got:#?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    }
}
