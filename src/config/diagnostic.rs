//! Config problems that name the file, the line and column, the key path and what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_saphyr::Location;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column where the parser or a `Spanned` value gives them.
    #[serde(skip)]
    pub position: Option<(u64, u64)>,
    /// Key path such as `routes[3].require.all[0].claim`; empty for the whole file.
    pub path: String,
    /// The name of the route (rule) the problem is in, if any.
    pub rule: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn new(
        file: &Path,
        location: Option<&Location>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let position = location
            .filter(|l| l.line() > 0)
            .map(|l| (l.line(), l.column()));
        Diagnostic {
            file: file.to_path_buf(),
            position,
            path: path.into(),
            rule: None,
            message: message.into(),
        }
    }

    /// The same diagnostic, naming the rule it is in.
    pub fn in_rule(mut self, rule: Option<&str>) -> Self {
        self.rule = rule.map(str::to_string);
        self
    }

    /// 1-based line, if known.
    pub fn line(&self) -> Option<u64> {
        self.position.map(|p| p.0)
    }

    /// 1-based column, if known.
    pub fn column(&self) -> Option<u64> {
        self.position.map(|p| p.1)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        if let Some(rule) = &self.rule {
            write!(f, " (rule {rule:?})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found while loading a config; nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors and warnings while a config (and its rule files) is compiled.
#[derive(Debug)]
pub struct Collector {
    /// The file being compiled now.
    pub file: PathBuf,
    /// The rule being compiled now, if any.
    pub rule: Option<String>,
    pub found: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Files read besides the config and rule files (keys, certificates, secrets).
    pub sources: Vec<PathBuf>,
}

impl Collector {
    pub fn new(file: &Path) -> Self {
        Collector {
            file: file.to_path_buf(),
            rule: None,
            found: Vec::new(),
            warnings: Vec::new(),
            sources: Vec::new(),
        }
    }

    /// Records a problem at `path`, at `location` when one is known.
    /// Notes that the config depends on `path` (a reload watches it).
    pub fn source(&mut self, path: &Path) {
        if !self.sources.iter().any(|p| p == path) {
            self.sources.push(path.to_path_buf());
        }
    }

    pub fn error(
        &mut self,
        location: Option<&Location>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        let d = self.diagnostic(location, path, message);
        self.found.push(d);
    }

    /// Records a finding that does not stop the config from loading.
    pub fn warn(
        &mut self,
        location: Option<&Location>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        let d = self.diagnostic(location, path, message);
        self.warnings.push(d);
    }

    fn diagnostic(
        &self,
        location: Option<&Location>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(&self.file, location, path, message).in_rule(self.rule.as_deref())
    }
}
