//! Raw config → typed runtime values. Every check names the key path; all problems are
//! collected before anything is returned, so a config is applied whole or not at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod conditions;
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
    compile_listeners, compile_paths, compile_server, compile_spoofable_headers,
    compile_trusted_proxies, token_cache_settings,
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
    let listeners = compile_listeners(&raw, base, &mut c);
    let (upstreams, upstream_index) = compile_upstreams(&raw.upstreams, base, &mut c);
    let providers = compile_providers(&raw.providers, base, &mut c);
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
        out: Vec::new(),
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
        },
        warnings: c.warnings,
    })
}

pub(super) fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}
