//! docs/ARCHITECTURE.md's GPU section names files and functions; this
//! fails when one of them is gone or renamed.

use std::path::Path;

#[test]
fn the_gpu_section_of_the_architecture_names_what_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let start = doc
        .find("### When the wake comes from the GPU")
        .expect("the GPU section");
    let end = doc[start + 4..].find("\n### ").map_or(doc.len(), |e| start + 4 + e);
    let section = &doc[start..end];
    let sources: String = ["gpu/src", "io/src/source"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap())
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    let mut checked = 0;
    for token in section.split('`').skip(1).step_by(2) {
        if token.ends_with(".rs") {
            assert!(
                root.join(token).is_file(),
                "ARCHITECTURE.md names {token}, which is gone"
            );
            checked += 1;
        } else if let Some((ty, method)) = token.split_once("::") {
            let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
            if ident(ty) && ident(method) && ty.chars().next().unwrap().is_uppercase() {
                let defined = sources.contains(&format!("fn {method}(")) || sources.contains(&format!("fn {method}<"));
                let variant = sources.contains(&format!("{method},")) || sources.contains(&format!("{method} {{"));
                assert!(defined || variant, "ARCHITECTURE.md names {token}, which is gone");
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 10,
        "the section names files and functions ({checked} checked)"
    );
}
