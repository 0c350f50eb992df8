//! `docs/ARCHITECTURE.md` cannot drift from the code: every file path it
//! names exists, and every `Type::method` (or `Type::field`,
//! `Enum::Variant`, `module::function`, `file.rs::function`) it names is
//! defined where it says: when the paragraph that names it also names a
//! file that defines the type (two `Context`s exist, say), the item must be
//! in that file.
//!
//! The check reads the workspace's Rust sources with a small scanner (brace
//! depth and the nearest enclosing `impl`/`struct`/`enum`/`trait`), not a
//! Rust parser: enough to find `fn name` inside `impl Name`, a field inside
//! `struct Name` and a variant inside `enum Name`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every `.rs` file of the workspace (not `target/`), as paths relative to
/// the root.
fn sources(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if name == "target" || name.starts_with('.') {
                    continue;
                }
                walk(&path, root, out);
            } else if name.ends_with(".rs") {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// What the sources define: the names inside each type's blocks, and the
/// functions of each file.
#[derive(Default)]
struct Index {
    /// Type name → file → names defined in its `impl`, `struct`, `enum`
    /// and `trait` blocks there (methods, fields, variants, constants).
    members: HashMap<String, HashMap<PathBuf, HashSet<String>>>,
    /// File (relative path) → functions and macros defined in it.
    functions: HashMap<PathBuf, HashSet<String>>,
}

fn ident_after<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = text.split_once(keyword)?.1.trim_start();
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// `line` without a leading `pub`, `pub(crate)`, `pub(super)` or
/// `pub(in path)`.
fn without_visibility(line: &str) -> &str {
    let Some(rest) = line.strip_prefix("pub") else {
        return line;
    };
    let rest = match rest.strip_prefix('(') {
        Some(inner) => inner.split_once(')').map_or(rest, |(_, after)| after),
        None => rest,
    };
    rest.trim_start()
}

/// The type an `impl` header is for: the last path segment after `for`, or
/// of the implemented type.
fn impl_target(header: &str) -> Option<String> {
    let header = header.split('{').next()?;
    let header = header.split(" where ").next()?;
    let target = match header.rsplit_once(" for ") {
        Some((_, t)) => t,
        None => header.trim_start().strip_prefix("impl")?,
    };
    // Drop generics on `impl` itself and on the type.
    let mut target = target.trim();
    if target.starts_with('<') {
        let mut depth = 0;
        for (i, c) in target.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        target = target[i + 1..].trim();
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    let target = target.trim_start_matches('&').trim_start_matches("mut ").trim();
    let path = target.split('<').next()?.trim();
    let name = path.rsplit("::").next()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

impl Index {
    fn add(&mut self, ty: &str, file: &Path, name: &str) {
        self.members
            .entry(ty.to_string())
            .or_default()
            .entry(file.to_path_buf())
            .or_default()
            .insert(name.to_string());
    }

    /// True if `ty` defines `name` in one of `files` (in any file, if none
    /// of `files` defines `ty`).
    fn has(&self, ty: &str, name: &str, files: &HashSet<PathBuf>) -> bool {
        let Some(by_file) = self.members.get(ty) else {
            return false;
        };
        let named: Vec<_> = by_file.iter().filter(|(f, _)| files.contains(*f)).collect();
        if named.is_empty() {
            by_file.values().any(|names| names.contains(name))
        } else {
            named.iter().any(|(_, names)| names.contains(name))
        }
    }

    fn build(root: &Path) -> Index {
        let mut index = Index::default();
        for file in sources(root) {
            let text = std::fs::read_to_string(root.join(&file)).unwrap();
            let mut functions = HashSet::new();
            // (depth at which the block's body lives, type name)
            let mut blocks: Vec<(usize, String)> = Vec::new();
            let mut depth = 0usize;
            let mut pending: Option<String> = None;
            // Test code is not what the document describes: from a
            // `#[cfg(...test...)]` module's opening line to its end, nothing
            // is indexed.
            let mut test_cfg = false;
            let mut test_depth: Option<usize> = None;
            for raw in text.lines() {
                let line = raw.split("//").next().unwrap_or("");
                let trimmed = without_visibility(line.trim_start());
                if trimmed.starts_with("#[cfg(") && trimmed.contains("test") {
                    test_cfg = true;
                } else if test_cfg && trimmed.starts_with("mod ") && test_depth.is_none() {
                    if trimmed.ends_with(';') {
                        test_cfg = false;
                    } else {
                        test_depth = Some(depth);
                    }
                } else if !trimmed.starts_with("#[") && !trimmed.is_empty() {
                    test_cfg = false;
                }
                if let Some(d) = test_depth {
                    for c in line.chars() {
                        match c {
                            '{' => depth += 1,
                            '}' => depth = depth.saturating_sub(1),
                            _ => {}
                        }
                    }
                    if depth == d && line.contains('}') {
                        test_depth = None;
                        test_cfg = false;
                    }
                    continue;
                }
                let words: Vec<&str> = trimmed.split_whitespace().collect();
                let is_item = |kw: &str| {
                    words
                        .iter()
                        .take_while(|w| !w.contains('('))
                        .any(|w| *w == kw || w.starts_with(&format!("{kw}<")))
                };
                if trimmed.starts_with("impl") || (is_item("impl") && trimmed.starts_with("unsafe")) {
                    pending = impl_target(trimmed);
                } else if is_item("struct") {
                    pending = ident_after(trimmed, "struct ").map(str::to_string);
                } else if is_item("enum") {
                    pending = ident_after(trimmed, "enum ").map(str::to_string);
                } else if is_item("trait") {
                    pending = ident_after(trimmed, "trait ").map(str::to_string);
                }
                if let Some(name) = ident_after(line, "fn ") {
                    functions.insert(name.to_string());
                    if let Some((_, ty)) = blocks.last() {
                        let ty = ty.clone();
                        index.add(&ty, &file, name);
                    }
                }
                if let Some(name) = ident_after(line, "macro_rules! ") {
                    functions.insert(format!("{name}!"));
                }
                if let Some((body_depth, ty)) = blocks.last() {
                    if depth == *body_depth {
                        // A field, variant or constant at the block's top level.
                        let item = trimmed
                            .trim_start_matches("pub(crate) ")
                            .trim_start_matches("pub(super) ")
                            .trim_start_matches("pub ")
                            .trim_start_matches("const ");
                        let end = item
                            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .unwrap_or(item.len());
                        if end > 0 {
                            let ty = ty.clone();
                            index.add(&ty, &file, &item[..end]);
                        }
                    }
                }
                for c in line.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            if let Some(ty) = pending.take() {
                                blocks.push((depth, ty));
                            }
                        }
                        '}' => {
                            if blocks.last().is_some_and(|(d, _)| *d == depth) {
                                blocks.pop();
                            }
                            depth = depth.saturating_sub(1);
                        }
                        ';' if pending.is_some() && !line.contains('{') => pending = None,
                        _ => {}
                    }
                }
            }
            index.functions.insert(file.clone(), functions);
        }
        index
    }
}

/// The backticked spans of the document.
fn spans(doc: &str) -> Vec<String> {
    doc.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .collect()
}

fn looks_like_path(span: &str) -> bool {
    !span.contains(' ')
        && !span.contains("::")
        && (span.ends_with(".rs") || span.ends_with(".md") || span.ends_with(".toml") || span.ends_with(".sh"))
        || (span.ends_with('/') && span.chars().all(|c| c.is_alphanumeric() || "/_-".contains(c)))
}

/// Crates other than Weft's, and the standard library's types the document
/// walks through: `mio::Poll::poll`, `Waker::wake` name their API, not ours.
const FOREIGN: &[&str] = &[
    "std",
    "mio",
    "hyper",
    "tokio",
    "crossbeam_deque",
    "tracing",
    "cudarc",
    "mpi",
    "futures",
    "futures_io",
    "libc",
    "Waker",
];

/// The files a path span may mean (a path from the root, or a suffix of
/// one: `task/mod.rs`); empty if none exists. A directory matches the files
/// under it.
fn resolve_path(span: &str, root: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    let span = span.trim_end_matches('/');
    let matches: Vec<PathBuf> = files
        .iter()
        .filter(|f| {
            let f = f.to_string_lossy();
            f == span
                || f.ends_with(&format!("/{span}"))
                || f.starts_with(&format!("{span}/"))
                || f.contains(&format!("/{span}/"))
        })
        .cloned()
        .collect();
    if matches.is_empty() && root.join(span).exists() {
        // A file that is not Rust (a script, a document): it exists.
        return vec![PathBuf::from(span)];
    }
    matches
}

#[test]
fn every_path_and_item_architecture_names_exists() {
    let root = root();
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let files = sources(&root);
    let index = Index::build(&root);
    let mut missing = Vec::new();
    let mut checked = 0;
    for paragraph in doc.split("\n\n") {
        let paragraph_spans = spans(paragraph);
        let named_files: HashSet<PathBuf> = paragraph_spans
            .iter()
            .filter(|s| looks_like_path(s))
            .flat_map(|s| resolve_path(s, &root, &files))
            .collect();
        for span in paragraph_spans {
            let span = span.trim_end_matches("()").to_string();
            if looks_like_path(&span) {
                checked += 1;
                if resolve_path(&span, &root, &files).is_empty() {
                    missing.push(format!("path `{span}`"));
                }
                continue;
            }
            let Some((owner, name)) = span.rsplit_once("::") else {
                continue;
            };
            if span.contains(' ') || span.contains('(') || span.contains('<') || name.is_empty() {
                continue;
            }
            let first = span.split("::").next().unwrap();
            if FOREIGN.contains(&first) {
                continue;
            }
            let owner = owner.rsplit("::").next().unwrap();
            checked += 1;
            let found = if owner.ends_with(".rs") {
                // `task/waker.rs::wake_by_val`
                files
                    .iter()
                    .filter(|f| f.to_string_lossy().ends_with(owner))
                    .any(|f| index.functions.get(f).is_some_and(|fns| fns.contains(name)))
            } else if owner.chars().next().is_some_and(char::is_uppercase) {
                // `Type::method`, `Type::field`, `Enum::Variant`
                index.has(owner, name, &named_files)
            } else {
                // `module::function`: a function in `module.rs` or in the
                // module's directory
                files
                    .iter()
                    .filter(|f| {
                        let f = f.to_string_lossy();
                        f.ends_with(&format!("/{owner}.rs")) || f.contains(&format!("/{owner}/"))
                    })
                    .any(|f| index.functions.get(f).is_some_and(|fns| fns.contains(name)))
            };
            if !found {
                missing.push(format!("item `{span}`"));
            }
        }
    }
    assert!(
        checked > 50,
        "the check found only {checked} names to check: is the scanner broken?"
    );
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md names what the code no longer has (fix the document or the code):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_scanner_finds_what_it_should_and_misses_what_is_absent() {
    // The check above is only as good as its scanner: it must see methods
    // in impls (generic ones too), trait impls, fields, variants, and
    // reject names that are not there.
    let index = Index::build(&root());
    let has = |ty: &str, name: &str| index.has(ty, name, &HashSet::new());
    assert!(has("Driver", "turn"));
    assert!(has("Standby", "enter_or_sleep"));
    assert!(has("Registered", "poll_keyed"), "an impl with bounds");
    assert!(has("RuntimeMetrics", "callback_panics"), "a field");
    assert!(has("HandOff", "AnySleeper"), "a variant");
    assert!(!has("Driver", "no_such_method"));
    assert!(!has("NoSuchType", "turn"));
    // Two `Context`s: named next to its file, only that one counts.
    let worker: HashSet<PathBuf> = [PathBuf::from("executor/src/scheduler/multi_thread/worker.rs")].into();
    let current: HashSet<PathBuf> = [PathBuf::from("executor/src/scheduler/current_thread.rs")].into();
    assert!(index.has("Context", "rescue", &worker));
    assert!(!index.has("Context", "rescue", &current));
}
