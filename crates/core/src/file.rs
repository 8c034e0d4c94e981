//! Files people write by hand (scenes, agent specs, evaluation settings): RON, read with the
//! extensions that let `Some(x)` be written `x`, and errors that name the file, the line and
//! column, and the field.

use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

/// A file that could not be read, parsed or validated: which file, where in it, which field.
#[derive(Debug, Clone, PartialEq)]
pub struct FileError {
    pub file: PathBuf,
    /// Line and column (1-based) where known.
    pub position: Option<(usize, usize)>,
    /// The field the problem is in, as a path (`walls[2].doors[0].half_width`), where known.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for FileError {}

/// Parses RON `text` into `T`; `file` names it in the error, with the line and column.
pub fn parse_ron<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, FileError> {
    let options = ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES)
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    options.from_str(text).map_err(|e| FileError {
        file: file.to_path_buf(),
        position: Some((e.span.start.line, e.span.start.col)),
        field: None,
        message: e.code.to_string(),
    })
}

/// Finds the line and column of a field path such as `walls[1].doors[0].half_width` in RON
/// text, by walking its keys and list items. Returns `None` when the text does not follow the
/// path (the message still names the field).
pub fn locate_field(text: &str, path: &str) -> Option<(usize, usize)> {
    // Split `walls[1].doors[0].half_width` into steps: Key("walls"), Index(1), Key("doors"), …
    enum Step<'a> {
        Key(&'a str),
        Index(usize),
    }
    let mut steps = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(b) = rest.find('[') {
            steps.push(Step::Key(&rest[..b]));
            rest = &rest[b..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let e = stripped.find(']')?;
                steps.push(Step::Index(stripped[..e].parse().ok()?));
                rest = &stripped[e + 1..];
            }
        } else {
            steps.push(Step::Key(rest));
        }
    }
    let bytes = text.as_bytes();
    let mut pos = 0usize;
    // Skip a comment or string starting at `i`; returns the index after it, or `i` if none.
    let skip = |i: usize| -> usize {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'/') {
            text[i..].find('\n').map_or(bytes.len(), |n| i + n)
        } else if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            text[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 2)
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            j + 1
        } else {
            i
        }
    };
    for (k, step) in steps.iter().enumerate() {
        match step {
            Step::Key(key) => {
                // Find `key` followed by `:` at depth 0 relative to `pos`.
                let mut depth = 0i32;
                let mut i = pos;
                let mut found = None;
                while i < bytes.len() {
                    let j = skip(i);
                    if j != i {
                        i = j;
                        continue;
                    }
                    match bytes[i] {
                        b'(' | b'[' | b'{' => depth += 1,
                        b')' | b']' | b'}' => {
                            depth -= 1;
                            if depth < 0 && k > 0 {
                                return None;
                            }
                        }
                        _ => {}
                    }
                    let at_word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                    if depth <= 1 && at_word_start && bytes[i..].starts_with(key.as_bytes()) {
                        // `key` is ASCII, so `i + key.len()` is a character boundary.
                        let rest = &text[i + key.len()..];
                        let boundary = rest
                            .chars()
                            .next()
                            .is_some_and(|c| !(c.is_ascii_alphanumeric() || c == '_'));
                        if boundary && rest.trim_start().starts_with(':') {
                            found = Some(i);
                            break;
                        }
                    }
                    i += 1;
                }
                pos = found?;
                // Move past the colon.
                pos += text[pos..].find(':')? + 1;
            }
            Step::Index(n) => {
                let open = pos + text[pos..].find('[')?;
                let mut depth = 0i32;
                let mut item = 0usize;
                let mut i = open + 1;
                let mut start = None;
                while i < bytes.len() {
                    let j = skip(i);
                    if j != i {
                        i = j;
                        continue;
                    }
                    let c = bytes[i];
                    if depth == 0 && item == *n && start.is_none() && !c.is_ascii_whitespace() {
                        start = Some(i);
                        break;
                    }
                    match c {
                        b'(' | b'[' | b'{' => depth += 1,
                        b')' | b'}' => depth -= 1,
                        b']' => {
                            if depth == 0 {
                                return None;
                            }
                            depth -= 1;
                        }
                        b',' if depth == 0 => item += 1,
                        _ => {}
                    }
                    i += 1;
                }
                pos = start?;
            }
        }
    }
    // Point at the value (skip white space after the colon).
    while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
        pos += 1;
    }
    let line = text[..pos].matches('\n').count() + 1;
    let col = pos - text[..pos].rfind('\n').map_or(0, |n| n + 1) + 1;
    Some((line, col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_field_walks_keys_and_items() {
        let text = "TopDown(\n  name: \"x\",\n  walls: [\n    (at: Fixed(1)),\n    (at: Fixed(2), doors: [(half_width: 3)]),\n  ],\n)";
        assert_eq!(locate_field(text, "name"), Some((2, 9)));
        assert_eq!(locate_field(text, "walls[1].at"), Some((5, 10)));
        assert_eq!(locate_field(text, "walls[1].doors[0].half_width"), Some((5, 41)));
        assert_eq!(locate_field(text, "walls[3].at"), None);
    }
}

/// `path` written relative to the folder `base` (`../x` where it lies beside it); both are
/// taken from the current folder where relative. A path that shares no root with `base` (another
/// drive) comes back as it is.
pub fn relative_path(path: &Path, base: &Path) -> std::path::PathBuf {
    use std::path::{Component, PathBuf};
    let absolute = |p: &Path| -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        };
        // Lexical normalisation (`a/./b/../c` → `a/c`): the files need not exist.
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other.as_os_str()),
            }
        }
        out
    };
    let (p, b) = (absolute(path), absolute(base));
    let (pc, bc): (Vec<_>, Vec<_>) = (p.components().collect(), b.components().collect());
    if pc.first() != bc.first() {
        return path.to_path_buf();
    }
    let common = pc.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..bc.len() {
        out.push("..");
    }
    for c in &pc[common..] {
        out.push(c.as_os_str());
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod relative_path_tests {
    use super::relative_path;
    use std::path::Path;

    #[test]
    fn paths_become_relative_to_their_folder() {
        assert_eq!(
            relative_path(Path::new("/a/b/c.st"), Path::new("/a/b")),
            Path::new("c.st")
        );
        assert_eq!(
            relative_path(Path::new("/a/x/c.st"), Path::new("/a/b")),
            Path::new("../x/c.st")
        );
        assert_eq!(
            relative_path(Path::new("runs/r/c.st"), Path::new("runs/r")),
            Path::new("c.st")
        );
        assert_eq!(
            relative_path(Path::new("runs/r/./c.st"), Path::new("runs/q/../r")),
            Path::new("c.st")
        );
    }
}
