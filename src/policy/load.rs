//! Reading a policy directory: every `*.yaml`/`*.yml` file (not recursive, sorted by name, and
//! not the `*.test.yaml` files of `policy test`), each split into its `---` documents, each
//! deserialized by its `kind`, then compiled as one set.
//!
//! This is the policy side's only file I/O: besides the policy files, it probes the files an
//! Issuer names (`jwksFile`, `caFile`) so that `compile` stays pure.
//!
//! Every file and document is read even after a problem, so one run reports everything. The one
//! exception is a YAML syntax error: past it the document boundaries of that file cannot be
//! trusted, so the rest of that file is skipped (and the problem says so).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};
use sha2::{Digest, Sha256};

use crate::policy::PolicySet;
use crate::policy::compile::{BrokenDeclaration, RawPolicySet, ReferencedFiles, SourcedDocument};
use crate::policy::load::source_map::{Position, SourceMap};
use crate::policy::model::Origin;
use crate::policy::raw::{Document, KINDS};
use crate::policy::{LoadErrors, Problem};

/// Largest policy file read, in bytes: policies are text written by people, and a stray
/// multi-gigabyte file in the directory must not exhaust memory.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Most documents read from one file.
pub const MAX_DOCUMENTS_PER_FILE: usize = 10_000;

/// Loads and compiles every policy file in `dir`, reporting every problem found in one pass.
///
/// # Errors
/// [`LoadErrors`] with every problem: an unreadable or empty directory, unreadable or non-UTF-8
/// files, YAML syntax errors, unknown kinds, unknown fields and wrong types (with their field
/// path), and everything compilation checks (unknown names, invalid URLs, CEL that does not
/// compile, ...).
pub fn load_dir(dir: &Path) -> Result<PolicySet, LoadErrors> {
    let mut problems = Vec::new();
    let mut sources = SourceMap::default();
    let raw = read_dir(dir, &mut sources, &mut problems);
    compile(raw, sources, problems)
}

/// Loads and compiles policy files given in memory as `(file name, text)` pairs, in the given
/// order, exactly as [`load_dir`] would had it read them from a directory (same document
/// splitting, limits, content hash and problem reports, with `name` as the file location).
/// Used by fuzzing and by tests; an empty slice is an empty (but valid-shaped) input whose
/// compilation decides the outcome.
///
/// # Errors
/// [`LoadErrors`] with every problem, as for [`load_dir`] minus the file-system ones.
pub fn load_texts(files: &[(&str, &str)]) -> Result<PolicySet, LoadErrors> {
    let mut problems = Vec::new();
    let mut sources = SourceMap::default();
    let mut raw = RawPolicySet::default();
    let mut hasher = Sha256::new();
    for (name, text) in files {
        if text.len() as u64 > MAX_FILE_BYTES {
            problems.push(Problem {
                location: (*name).to_string(),
                path: String::new(),
                message: format!(
                    "file is {} bytes; policy files may be at most {MAX_FILE_BYTES}",
                    text.len()
                ),
                position: None,
            });
            continue;
        }
        read_text(Path::new(name), text, &mut hasher, &mut raw, &mut problems);
        sources.insert(Path::new(name).display().to_string(), (*text).to_string());
    }
    raw.content_hash = hex(hasher);
    compile(raw, sources, problems)
}

/// Compiles `raw`, merging its problems with those found while reading. The files its Issuers
/// name are probed first, so that compiling does no I/O. Problems are placed at
/// `file:line:column` in `sources` (the texts just read, so never a second read); the set
/// keeps `sources` for what places lints and declarations later.
fn compile(
    mut raw: RawPolicySet,
    sources: SourceMap,
    mut problems: Vec<Problem>,
) -> Result<PolicySet, LoadErrors> {
    raw.files = referenced_files(&raw.documents);
    match PolicySet::try_from(raw) {
        Ok(set) if problems.is_empty() => Ok(set.with_sources(sources)),
        Ok(_) => Err(LoadErrors(placed(sorted(problems), &sources))),
        Err(LoadErrors(more)) => {
            problems.extend(more);
            Err(LoadErrors(placed(sorted(problems), &sources)))
        }
    }
}

/// Fills each problem's `position` (unless the parser gave one) where its document (and
/// field) can be found in `sources`.
fn placed(mut problems: Vec<Problem>, sources: &SourceMap) -> Vec<Problem> {
    for p in problems.iter_mut().filter(|p| p.position.is_none()) {
        p.position = sources.locate(&p.location, &p.path);
    }
    problems
}

/// Probes the files Issuers name, each resolved against its policy file's directory: which
/// `jwksFile`s exist (reading them is `issuers`' job), and the contents of each readable
/// `caFile`. What is missing or unreadable is left out; compile reports it.
fn referenced_files(documents: &[SourcedDocument]) -> ReferencedFiles {
    let mut files = ReferencedFiles::default();
    for doc in documents {
        let Document::Issuer(issuer) = &doc.document else {
            continue;
        };
        if let Some(file) = &issuer.jwks_file {
            let resolved = doc.origin.resolve(file);
            if resolved.is_file() {
                files.jwks_files.insert(resolved);
            }
        }
        if let Some(file) = &issuer.ca_file {
            let resolved = doc.origin.resolve(file);
            if let Ok(bytes) = fs::read(&resolved) {
                files.ca_files.insert(resolved, bytes);
            }
        }
    }
    files
}

/// Orders problems as an operator reads the files: directory first, then by file and document
/// (numerically: `#10` after `#9`). The sort is stable, so problems of one document keep the
/// order in which their fields were checked.
fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by_cached_key(|p| match p.location.rsplit_once('#') {
        Some((file, doc)) => (file.to_string(), doc.parse::<usize>().unwrap_or(0)),
        None => (p.location.clone(), 0),
    });
    problems
}

fn read_dir(dir: &Path, sources: &mut SourceMap, problems: &mut Vec<Problem>) -> RawPolicySet {
    let mut raw = RawPolicySet::default();
    let mut hasher = Sha256::new();
    for path in policy_files(dir, problems) {
        let Some(text) = read_file(&path, problems) else {
            continue;
        };
        read_text(&path, &text, &mut hasher, &mut raw, problems);
        sources.insert(path.display().to_string(), text);
    }
    raw.content_hash = hex(hasher);
    raw
}

/// Hashes one file's name and text, then reads its documents into `raw`.
fn read_text(
    path: &Path,
    text: &str,
    hasher: &mut Sha256,
    raw: &mut RawPolicySet,
    problems: &mut Vec<Problem>,
) {
    let name = path
        .file_name()
        .map(|n| n.as_encoded_bytes())
        .unwrap_or_default();
    // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    hasher.update((name.len() as u64).to_be_bytes());
    hasher.update(name);
    hasher.update((text.len() as u64).to_be_bytes());
    hasher.update(text.as_bytes());
    read_documents(path, text, raw, problems);
}

fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `path` names a `policy test` case file (`*.test.yaml`, `*.test.yml`): those sit
/// beside the policies but are not policies, and must not change the set or its hash.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"))
}

/// The `*.yaml`/`*.yml` files directly in `dir` (test case files excluded), sorted by file
/// name. Problems reading the directory are pushed to `problems`.
pub(crate) fn policy_files(dir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let dir_problem = |message: String| Problem {
        location: String::new(),
        path: String::new(),
        message,
        position: None,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(dir_problem(format!(
                "cannot read policy directory {}: {e}",
                dir.display()
            )));
            return Vec::new();
        }
    };
    let mut files: Vec<(OsString, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(dir_problem(format!(
                    "cannot list policy directory {}: {e}",
                    dir.display()
                )));
                continue;
            }
        };
        let name = entry.file_name();
        let is_yaml = Path::new(&name)
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
            && !is_test_file(Path::new(&name));
        let path = dir.join(&name);
        // is_file follows symlinks: Kubernetes mounts ConfigMap keys as links into `..data/`.
        if is_yaml && path.is_file() {
            files.push((name, path));
        }
    }
    if files.is_empty() && problems.is_empty() {
        problems.push(dir_problem(format!(
            "policy directory {} holds no *.yaml or *.yml files; refusing to load an empty \
             policy set",
            dir.display()
        )));
    }
    files.sort();
    files.into_iter().map(|(_, path)| path).collect()
}

fn read_file(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    let file_problem = |message: String| Problem {
        location: path.display().to_string(),
        path: String::new(),
        message,
        position: None,
    };
    match fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_FILE_BYTES => {
            problems.push(file_problem(format!(
                "file is {} bytes; policy files may be at most {MAX_FILE_BYTES}",
                meta.len()
            )));
            return None;
        }
        Ok(_) => {}
        Err(e) => {
            problems.push(file_problem(format!("cannot read: {e}")));
            return None;
        }
    }
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            problems.push(file_problem(format!("cannot read: {e}")));
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) => {
            problems.push(file_problem(format!("not UTF-8 text: {}", e.utf8_error())));
            None
        }
    }
}

fn read_documents(path: &Path, text: &str, raw: &mut RawPolicySet, problems: &mut Vec<Problem>) {
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            file: path.to_path_buf(),
            document: i + 1,
        };
        if i >= MAX_DOCUMENTS_PER_FILE {
            problems.push(problem(
                &origin,
                "",
                format!(
                    "more than {MAX_DOCUMENTS_PER_FILE} documents in one file; split it up \
                     (the rest of the file was not read)"
                ),
            ));
            return;
        }
        let value = match Value::deserialize(document) {
            Ok(value) => value,
            Err(e) => {
                // After a syntax error the parser cannot find the next document reliably (and
                // the iterator would repeat the error forever), so stop reading this file. The
                // parser knows exactly where it stopped: that is the position, not the
                // document's first line.
                let mut syntax = problem(
                    &origin,
                    "",
                    format!("invalid YAML: {e} (the rest of the file was not read)"),
                );
                syntax.position = e.location().map(|at| Position {
                    file: path.display().to_string(),
                    line: at.line(),
                    column: at.column(),
                });
                problems.push(syntax);
                return;
            }
        };
        match document_from_value(value) {
            Ok(None) => {}
            Ok(Some(document)) => raw.documents.push(SourcedDocument { origin, document }),
            Err((path, message, broken)) => {
                problems.push(problem(&origin, path, message));
                raw.broken.extend(broken.map(|b| *b));
            }
        }
    }
}

/// (field path, message, what the broken document still declares).
type DocumentError = (String, String, Option<Box<BrokenDeclaration>>);

/// The document `value` holds: `None` for an empty document.
fn document_from_value(mut value: Value) -> Result<Option<Document>, DocumentError> {
    if value.is_null() {
        return Ok(None);
    }
    if let Err(e) = value.apply_merge() {
        return Err((
            String::new(),
            format!("invalid YAML merge (`<<`): {e}"),
            None,
        ));
    }
    let Value::Mapping(mut mapping) = value else {
        return Err((
            String::new(),
            format!(
                "a policy document must be a mapping with a `kind` (one of {})",
                KINDS.join(", ")
            ),
            None,
        ));
    };
    let kind = match mapping.remove("kind") {
        Some(Value::String(kind)) => kind,
        Some(_) => {
            return Err((
                "kind".into(),
                format!("kind must be a string, one of {}", KINDS.join(", ")),
                None,
            ));
        }
        None => {
            return Err((
                String::new(),
                format!("document has no `kind`; add one of {}", KINDS.join(", ")),
                None,
            ));
        }
    };
    let broken = || broken_declaration(&kind, &mapping);
    let parsed = match kind.as_str() {
        "Issuer" => typed(&mapping).map(Document::Issuer),
        "Tenant" => typed(&mapping).map(Document::Tenant),
        "Application" => typed(&mapping).map(Document::Application),
        "ServicePrincipal" => typed(&mapping).map(Document::ServicePrincipal),
        "ManagedIdentity" => typed(&mapping).map(Document::ManagedIdentity),
        _ => {
            return Err((
                "kind".into(),
                format!(
                    "unknown kind {kind:?}; expected one of {}",
                    KINDS.join(", ")
                ),
                None,
            ));
        }
    };
    parsed
        .map(Some)
        .map_err(|(path, message)| (path, message, Some(Box::new(broken()))))
}

/// Deserializes a document body, reporting the field path of the first error.
fn typed<T: DeserializeOwned>(mapping: &Mapping) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(Value::Mapping(mapping.clone())).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.into_inner().to_string())
    })
}

fn broken_declaration(kind: &str, mapping: &Mapping) -> BrokenDeclaration {
    let string = |key: &str| mapping.get(key).and_then(Value::as_str).map(str::to_string);
    let identifier_uris = mapping
        .get("identifierUris")
        .and_then(Value::as_sequence)
        .map(|uris| {
            uris.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    BrokenDeclaration {
        kind: kind.to_string(),
        name: string("name"),
        app_id: string("appId"),
        identifier_uris,
    }
}

fn problem(origin: &Origin, path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        location: origin.to_string(),
        path: path.into(),
        message: message.into(),
        position: None,
    }
}

pub mod source_map;

#[cfg(test)]
mod tests;
