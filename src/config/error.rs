//! Configuration errors that a person can act on: every one names the file,
//! the line and the key, so `portcullis check` output can be pasted into an
//! editor's "go to line".

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not tied to a line (file unreadable).
    pub line: usize,
    pub col: usize,
    /// Dotted path of the offending key, e.g. `client[loopback].radius_secret`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Everything wrong with one file, reported together so the operator fixes
/// all of it in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

/// Turns byte spans of the source text into lines, columns and key paths.
pub(crate) struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Self { file, text }
    }

    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        (line, offset - line_start + 1)
    }

    pub(crate) fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, col) = self.line_col(span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn file_error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: 0,
            col: 0,
            key: String::new(),
            message: message.into(),
        }
    }

    /// A TOML syntax or type error from the deserializer. The key is worked
    /// out from the text: the nearest table header above plus the key on the
    /// offending line, since toml's message alone does not always name it.
    pub(crate) fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span().unwrap_or(0..0);
        let (line, col) = self.line_col(span.start);
        let key = self.key_at(span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            key,
            message: err.message().trim().to_string(),
        }
    }

    fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |p| p + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |p| offset + p);
        let line = &self.text[line_start..line_end];
        let table = self.text[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
        let trimmed = line.trim();
        let leaf = if trimmed.starts_with('[') {
            // The error is about a table header itself.
            return trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
        } else if let Some(eq) = trimmed.find('=') {
            trimmed[..eq].trim().to_string()
        } else {
            trimmed.to_string()
        };
        match table {
            Some(t) if !leaf.is_empty() => format!("{t}.{leaf}"),
            Some(t) => t,
            None => leaf,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\n[x]\nbcd = 2\n";
        let loc = Locator::new(Path::new("f.toml"), text);
        assert_eq!(loc.line_col(0), (1, 1));
        assert_eq!(loc.line_col(text.find("bcd").unwrap()), (3, 1));
        assert_eq!(loc.line_col(text.find('2').unwrap()), (3, 7));
    }

    #[test]
    fn key_path_includes_the_table() {
        let text = "[[client]]\nname = \"x\"\nsecert = 1\n";
        let loc = Locator::new(Path::new("f.toml"), text);
        assert_eq!(loc.key_at(text.find("secert").unwrap()), "client.secert");
    }
}
