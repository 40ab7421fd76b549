//! docs/ARCHITECTURE.md's module table is the map of the source: every source file of the
//! three crates is in it, and everything it names is there (as tests/openapi.rs keeps the
//! routes and docs/openapi.json in step).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, relative to the repository.
fn sources(dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = dir.join(entry.file_name());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.insert(path.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// `src/a/{b,c}.rs` → `src/a/b.rs`, `src/a/c.rs`.
fn expand(name: &str) -> Vec<String> {
    match (name.find('{'), name.find('}')) {
        (Some(open), Some(close)) if open < close => name[open + 1..close]
            .split(',')
            .map(|part| format!("{}{}{}", &name[..open], part, &name[close + 1..]))
            .collect(),
        _ => vec![name.to_string()],
    }
}

/// The paths the module table's first column names (in backticks).
fn named() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap_or_default();
    let table = doc
        .split("| Module | Owns |")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default();
    let mut names = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split(" | ").next().unwrap_or_default();
        for (i, part) in first.split('`').enumerate() {
            if i % 2 == 1 && (part.ends_with(".rs") || part.ends_with('/')) {
                names.extend(expand(part));
            }
        }
    }
    names
}

#[test]
fn every_source_file_is_in_the_module_table_and_every_name_there_exists() {
    let names = named();
    assert!(names.len() > 50, "the table is read: {names:?}");
    for name in &names {
        assert!(
            root().join(name).exists(),
            "docs/ARCHITECTURE.md names `{name}`, which is not there: change the table with the code"
        );
    }
    let mut files = BTreeSet::new();
    for dir in ["src", "engine/src", "plugins/src"] {
        sources(Path::new(dir), &mut files);
    }
    let missing: Vec<&String> = files
        .iter()
        .filter(|file| {
            !names.iter().any(|name| {
                *name == **file || (name.ends_with('/') && file.starts_with(name.as_str()))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/ARCHITECTURE.md's module table (say what each owns there): {missing:?}"
    );
}

#[test]
fn braces_expand() {
    assert_eq!(expand("src/a/{b,c}.rs"), ["src/a/b.rs", "src/a/c.rs"]);
    assert_eq!(expand("src/app.rs"), ["src/app.rs"]);
}
