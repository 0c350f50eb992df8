//! docs/RELIABILITY.md cannot drift: every file it names exists, and every
//! test it names (`path/to/file.rs::module::test_name`, `*` for the
//! flavour modules) is a function of that file.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The backticked spans of `text`.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_file_and_test_the_reliability_doc_names_exists() {
    let doc = std::fs::read_to_string(repo().join("docs/RELIABILITY.md")).unwrap();
    let mut files = 0;
    let mut tests = 0;
    for span in code_spans(&doc) {
        let (path, items) = match span.split_once("::") {
            Some((path, items)) => (path, Some(items)),
            None => (span, None),
        };
        let is_path = path.contains('/')
            && !path.contains(' ')
            && [".rs", ".sh", ".toml", ".supp", ".md"]
                .iter()
                .any(|ext| path.ends_with(ext));
        if !is_path {
            continue;
        }
        let file = repo().join(path);
        assert!(file.exists(), "docs/RELIABILITY.md names {path}, which does not exist");
        files += 1;
        if let Some(items) = items {
            let name = items.rsplit("::").next().unwrap();
            if name == "*" {
                continue;
            }
            let source = std::fs::read_to_string(&file).unwrap();
            assert!(
                source.contains(&format!("fn {name}(")),
                "docs/RELIABILITY.md names the test {span}, but {path} has no fn {name}"
            );
            tests += 1;
        }
    }
    assert!(
        files > 20 && tests > 20,
        "the doc names {files} files and {tests} tests: the parser lost them"
    );
}
