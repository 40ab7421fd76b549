//! Problems found in a file, reported the way compilers do: `file:line:col: message`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based line and column in a text file.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 1 };

    pub fn new(line: usize, column: usize) -> Self {
        Position { line, column }
    }
}

/// One problem in one file, with the place an editor should jump to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    #[serde(flatten)]
    pub position: Position,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: &Path, position: Position, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.position.line,
            self.position.column,
            self.message
        )
    }
}

/// Collects every problem of a file so an operator sees them all at once, not one per save.
#[derive(Debug)]
pub struct Diagnostics<'a> {
    file: &'a Path,
    found: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub fn new(file: &'a Path) -> Self {
        Diagnostics {
            file,
            found: Vec::new(),
        }
    }

    pub fn error(&mut self, position: Position, message: impl Into<String>) {
        self.found
            .push(Diagnostic::new(self.file, position, message));
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub fn file(&self) -> &Path {
        self.file
    }

    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        self.found.sort_by_key(|d| d.position);
        self.found
    }
}

/// "did you mean …?" for a misspelt key or name: the closest candidates, quoted, or `None`
/// when nothing is close enough.
pub fn suggestion<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<String> {
    let scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, c)| *distance <= 2.max(c.len() / 4) && *distance < c.len())
        .collect();
    let best = scored.iter().map(|(d, _)| *d).min()?;
    let names: Vec<String> = scored
        .iter()
        .filter(|(d, _)| *d == best)
        .map(|(_, c)| format!("`{c}`"))
        .collect();
    Some(names.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_file_line_col() {
        let d = Diagnostic::new(Path::new("rules/main.yaml"), Position::new(3, 7), "oops");
        assert_eq!(d.to_string(), "rules/main.yaml:3:7: oops");
    }

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["name", "when", "route", "script"];
        assert_eq!(suggestion("rout", keys).as_deref(), Some("`route`"));
        assert_eq!(suggestion("wen", keys).as_deref(), Some("`when`"));
        assert_eq!(suggestion("priority", keys), None);
        assert_eq!(
            suggestion("callr", ["call", "caller"]).as_deref(),
            Some("`call` or `caller`")
        );
    }
}
