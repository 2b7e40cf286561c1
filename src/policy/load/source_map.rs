//! `file:line:column` for a problem or lint that names a document (`policies/ci.yaml#3`) and a
//! field path (`federatedCredentials[0].issuer`): what every load error, lint and graph node
//! shows (`serve` logs, `policy check|test|explain|graph`, the admin API and console).
//!
//! The loader deserializes documents through `serde_yaml_ng::Value`, which keeps no positions,
//! so this maps positions back from the text: document boundaries are the `---` / `...` lines
//! at column 1 (the YAML spec forbids those in any scalar, so scanning finds exactly the
//! parser's boundaries), and a field path is followed through block-style mappings and
//! sequences by indentation. Where the text is written in flow style (`[a, b]`, `{k: v}`) the
//! deepest key that was found is named; where nothing is found, the document's first line.
//!
//! It never decides anything: a wrong guess only moves an annotation, never a verdict.

use std::collections::BTreeMap;
use std::ops::Range;

/// A position in a policy file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The file, as the loader names it.
    pub file: String,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The text of every policy file of a set, by the name the loader gives it, with each file's
/// line and document boundaries found once (placing a problem then costs one document's lines,
/// not the file's).
///
/// The loader builds it from the texts it read (no second read, and positions always match
/// the text that was loaded); a loaded [`PolicySet`](crate::policy::PolicySet) keeps it so
/// lints, the graph and `policy explain` place what they show.
#[derive(Clone, Default)]
pub struct SourceMap {
    files: BTreeMap<String, SourceFile>,
}

/// Names the files only: their text may be large, and is not for logs.
impl std::fmt::Debug for SourceMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.files.keys()).finish()
    }
}

#[derive(Clone)]
struct SourceFile {
    text: String,
    /// Byte range of each line, without its `\n` or `\r\n` (as [`str::lines`] splits).
    lines: Vec<Range<usize>>,
    /// `[start, end)` line ranges of each document.
    documents: Vec<(usize, usize)>,
}

impl SourceFile {
    fn new(text: String) -> Self {
        let mut lines = Vec::new();
        let mut offset = 0;
        for piece in text.split_inclusive('\n') {
            let line = piece.strip_suffix('\n').unwrap_or(piece);
            let line = if piece.ends_with('\n') {
                line.strip_suffix('\r').unwrap_or(line)
            } else {
                line
            };
            lines.push(offset..offset + line.len());
            offset += piece.len();
        }
        let documents = {
            let all: Vec<&str> = lines.iter().map(|r| &text[r.clone()]).collect();
            documents(&all)
        };
        SourceFile {
            text,
            lines,
            documents,
        }
    }
}

impl SourceMap {
    /// A map over texts already in hand, keyed by file name as the loader names it.
    pub fn from_texts(files: impl IntoIterator<Item = (String, String)>) -> SourceMap {
        SourceMap {
            files: files
                .into_iter()
                .map(|(name, text)| (name, SourceFile::new(text)))
                .collect(),
        }
    }

    /// Adds (or replaces) one file.
    pub(crate) fn insert(&mut self, name: String, text: String) {
        self.files.insert(name, SourceFile::new(text));
    }

    /// Where `location` (`file#N`) and the field `path` inside that document are; `None` when
    /// the location names no document of a known file.
    pub fn locate(&self, location: &str, path: &str) -> Option<Position> {
        let (file, document) = location.rsplit_once('#')?;
        let document: usize = document.parse().ok()?;
        let source = self.files.get(file)?;
        let (start, end) = *source.documents.get(document.checked_sub(1)?)?;
        let lines: Vec<&str> = source.lines[start..end]
            .iter()
            .map(|r| &source.text[r.clone()])
            .collect();
        let (line, column) = follow(&lines, 0, lines.len(), path);
        Some(Position {
            file: file.to_string(),
            line: start + line + 1,
            column: column + 1,
        })
    }
}

/// `[start, end)` line ranges of each document, in the parser's order. `start` is the first
/// content line (or the `---` line of a document with nothing after it).
fn documents(lines: &[&str]) -> Vec<(usize, usize)> {
    let mut docs = Vec::new();
    let mut open: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let marker = |m: &str| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        };
        if marker("---") {
            if let Some(start) = open.take() {
                docs.push((start, i));
            }
            open = Some(i);
        } else if marker("...") {
            if let Some(start) = open.take() {
                docs.push((start, i));
            }
        } else if open.is_none() && is_content(line) && !line.starts_with('%') {
            open = Some(i);
        }
    }
    if let Some(start) = open {
        docs.push((start, lines.len()));
    }
    // Point at the first content line rather than at `---`.
    docs.into_iter()
        .map(|(start, end)| {
            let first = (start..end)
                .find(|&i| is_content(lines[i]) && !lines[i].starts_with("---"))
                .unwrap_or(start);
            (first, end)
        })
        .collect()
}

fn is_content(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Column where a line's key starts: past the indentation and any `- ` item markers.
fn key_column(line: &str) -> usize {
    let mut col = indent(line);
    while line[col..].starts_with("- ") {
        col += 2;
        col += indent(&line[col..]);
    }
    col
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[0].c` → Key(a) Key(b) Index(0) Key(c).
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Segment::Key(key.trim_matches('"')));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                out.push(Segment::Index(i));
            }
        }
    }
    out
}

/// The (line, column) of `path` inside the document lines `[start, end)`, 0-based: the deepest
/// segment found.
fn follow(lines: &[&str], start: usize, end: usize, path: &str) -> (usize, usize) {
    let mut found = (start, key_column(lines.get(start).copied().unwrap_or("")));
    // The block holding the next segment: its lines, and the column its entries sit right of.
    let (mut from, mut to, mut parent): (usize, usize, Option<usize>) = (start, end, None);
    for segment in segments(path) {
        let hit = match segment {
            Segment::Key(key) => find_key(lines, from, to, parent, key),
            Segment::Index(i) => find_item(lines, from, to, parent, i),
        };
        let Some((line, column, block_end)) = hit else {
            break;
        };
        found = (line, column);
        (from, to, parent) = (line, block_end, Some(column));
        if matches!(segment, Segment::Key(_)) {
            from = line + 1;
        }
    }
    found
}

/// The line and column of `key:` among the entries right of `parent`, and where its value ends.
fn find_key(
    lines: &[&str],
    from: usize,
    to: usize,
    parent: Option<usize>,
    key: &str,
) -> Option<(usize, usize, usize)> {
    for i in from..to {
        let line = lines[i];
        if !is_content(line) {
            continue;
        }
        let col = key_column(line);
        if parent.is_some_and(|p| col <= p) && i > from {
            return None;
        }
        let rest = &line[col..];
        let named = [key.to_string(), format!("\"{key}\""), format!("'{key}'")]
            .iter()
            .any(|k| {
                rest.strip_prefix(k.as_str())
                    .is_some_and(|r| r.starts_with(':'))
            });
        if named && parent.is_none_or(|p| col > p) {
            return Some((i, col, block_end(lines, i + 1, to, col, true)));
        }
    }
    None
}

/// The line and column of the `index`-th `- ` item of the block sequence in `[from, to)`.
fn find_item(
    lines: &[&str],
    from: usize,
    to: usize,
    parent: Option<usize>,
    index: usize,
) -> Option<(usize, usize, usize)> {
    // On the key's own line (`- - a`), or on the lines below it.
    let mut seen = 0;
    let mut dash: Option<usize> = None;
    for i in from..to {
        let line = lines[i];
        if !is_content(line) {
            continue;
        }
        let col = indent(line);
        let is_item = line[col..].starts_with("- ") || line[col..].trim_end() == "-";
        match dash {
            None if is_item && parent.is_none_or(|p| col >= p) => dash = Some(col),
            None => return None,
            Some(d) if col < d => return None,
            _ => {}
        }
        if is_item && Some(col) == dash {
            if seen == index {
                return Some((i, col, block_end(lines, i + 1, to, col, false)));
            }
            seen += 1;
        }
    }
    None
}

/// The end of the block that starts after line `from - 1` whose entries sit right of `col`
/// (or, for a key's value, also block sequence items at `col`).
fn block_end(lines: &[&str], from: usize, to: usize, col: usize, key_value: bool) -> usize {
    (from..to)
        .find(|&i| {
            let line = lines[i];
            if !is_content(line) {
                return false;
            }
            let c = indent(line);
            let item_at_col = key_value && c == col && line[c..].starts_with('-');
            c < col || (c == col && !item_at_col)
        })
        .unwrap_or(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# head comment
kind: Tenant
name: ok
---
kind: Application
name: a
federatedCredentials:
  - name: c
    issuer: nope
    audiences: [x]
  - name: d
    issuer: gh
    claimMappings:
      repo: claims.repository
---
# comment first
kind: ServicePrincipal
appRoleAssignments:
- resource: api://x
  roles:
    - A
    - B
";

    fn at(location: &str, path: &str) -> String {
        SourceMap::from_texts([("p/f.yaml".to_string(), FILE.to_string())])
            .locate(location, path)
            .map(|p| p.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn documents_start_at_their_first_content_line() {
        assert_eq!(at("p/f.yaml#1", ""), "p/f.yaml:2:1");
        assert_eq!(at("p/f.yaml#2", ""), "p/f.yaml:5:1");
        assert_eq!(at("p/f.yaml#3", ""), "p/f.yaml:17:1");
        assert_eq!(at("p/f.yaml#4", ""), "");
        assert_eq!(at("other.yaml#1", ""), "");
        assert_eq!(at("p/f.yaml", ""), "");
    }

    #[test]
    fn field_paths_are_followed_through_block_collections() {
        let cases = [
            ("p/f.yaml#1", "name", "p/f.yaml:3:1"),
            ("p/f.yaml#2", "federatedCredentials", "p/f.yaml:7:1"),
            ("p/f.yaml#2", "federatedCredentials[0]", "p/f.yaml:8:3"),
            (
                "p/f.yaml#2",
                "federatedCredentials[0].issuer",
                "p/f.yaml:9:5",
            ),
            (
                "p/f.yaml#2",
                "federatedCredentials[1].issuer",
                "p/f.yaml:12:5",
            ),
            (
                "p/f.yaml#2",
                "federatedCredentials[1].claimMappings.repo",
                "p/f.yaml:14:7",
            ),
            // Flow style: the deepest key found.
            (
                "p/f.yaml#2",
                "federatedCredentials[0].audiences[0]",
                "p/f.yaml:10:5",
            ),
            // Unknown: the deepest segment found.
            (
                "p/f.yaml#2",
                "federatedCredentials[5].issuer",
                "p/f.yaml:7:1",
            ),
            (
                "p/f.yaml#3",
                "appRoleAssignments[0].roles[1]",
                "p/f.yaml:22:5",
            ),
            (
                "p/f.yaml#3",
                "appRoleAssignments[0].resource",
                "p/f.yaml:19:3",
            ),
        ];
        for (location, path, want) in cases {
            assert_eq!(at(location, path), want, "{location} {path}");
        }
    }
}
