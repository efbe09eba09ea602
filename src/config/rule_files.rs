//! `rule_files:` — more routes from other YAML files. Each entry is a file, a directory (every
//! `*.yaml` / `*.yml` directly in it) or a glob, relative to the main config. Entries are taken
//! in the order listed and each expansion sorted by path, so the merged order is defined; a file
//! reached twice is read once; an entry that matches nothing is an error (a rule that silently
//! never loads is the bug we are preventing).

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::raw::RawRuleFile;
use super::values::Text;
use super::{ConfigErrors, Diagnostic};

/// One parsed rule file.
#[derive(Debug)]
pub struct RuleFile {
    pub path: PathBuf,
    pub raw: RawRuleFile,
}

/// Expands and parses every entry of `rule_files`; all problems are reported together.
pub fn load(
    config: &Path,
    base: &Path,
    entries: &[Spanned<Text>],
) -> Result<Vec<RuleFile>, ConfigErrors> {
    let mut problems = Vec::new();
    let mut paths: Vec<PathBuf> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = Some(&entry.referenced);
        let key = format!("rule_files[{i}]");
        match expand(base, entry.value.as_str()) {
            Ok(found) if found.is_empty() => problems.push(Diagnostic::new(
                config,
                at,
                key,
                format!(
                    "{:?} matches no rule file (expected a file, a directory with *.yaml files, or a glob)",
                    entry.value.as_str()
                ),
            )),
            Ok(found) => {
                for path in found {
                    if !paths.contains(&path) {
                        paths.push(path);
                    }
                }
            }
            Err(message) => problems.push(Diagnostic::new(config, at, key, message)),
        }
    }
    let mut files = Vec::new();
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Diagnostic::new(
                    &path,
                    None,
                    "",
                    format!("cannot read the rule file: {e}"),
                ));
                continue;
            }
        };
        match super::parse::<RawRuleFile>(&path, &text) {
            Ok(raw) => files.push(RuleFile { path, raw }),
            Err(e) => problems.extend(e.0),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(ConfigErrors(problems))
    }
}

/// The files one entry names, sorted.
fn expand(base: &Path, entry: &str) -> Result<Vec<PathBuf>, String> {
    if entry.is_empty() {
        return Err("expected a file, directory or glob".into());
    }
    let full = if Path::new(entry).is_absolute() {
        PathBuf::from(entry)
    } else {
        base.join(entry)
    };
    if entry.contains(['*', '?', '[']) {
        let pattern = full.to_string_lossy().into_owned();
        let matches = glob::glob(&pattern).map_err(|e| format!("invalid glob: {e}"))?;
        let mut out = Vec::new();
        for m in matches {
            let path = m.map_err(|e| format!("cannot read {}: {}", e.path().display(), e))?;
            if path.is_file() {
                out.push(path);
            }
        }
        out.sort();
        return Ok(out);
    }
    if full.is_dir() {
        let dir =
            std::fs::read_dir(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
        let mut out = Vec::new();
        for item in dir {
            let path = item
                .map_err(|e| format!("cannot read {}: {e}", full.display()))?
                .path();
            let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if yaml && path.is_file() {
                out.push(path);
            }
        }
        out.sort();
        return Ok(out);
    }
    if full.is_file() {
        return Ok(vec![full]);
    }
    Err(format!("{} does not exist", full.display()))
}
