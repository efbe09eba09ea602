//! Config problems that name the file, the line and column, the key path and what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column where the parser or a `Spanned` value gives them.
    pub position: Option<(u64, u64)>,
    /// Key path such as `routes[3].require.all[0].claim`; empty for the whole file.
    pub path: String,
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
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
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

/// Collects diagnostics for one file while it is compiled.
#[derive(Debug)]
pub struct Collector<'a> {
    pub file: &'a Path,
    pub found: Vec<Diagnostic>,
}

impl<'a> Collector<'a> {
    pub fn new(file: &'a Path) -> Self {
        Collector {
            file,
            found: Vec::new(),
        }
    }

    /// Records a problem at `path`, at `location` when one is known.
    pub fn error(
        &mut self,
        location: Option<&Location>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.found
            .push(Diagnostic::new(self.file, location, path, message));
    }
}
