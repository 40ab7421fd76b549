//! The Debian package's sources (`debian/`, `[package.metadata.deb]`) stay in step with the
//! program: the man pages and completions it installs are what the CLI generates now, its
//! belroute.yaml is `belroute init`'s, and its systemd unit is the documented one. `.ci/run`
//! builds the package itself and checks what it installs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::binary::belroute;

fn root(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const REGENERATE: &str = "run debian/generate to write them again, and commit the result";

/// Every file in `dir`, by name, with its text.
fn texts(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                read(&path),
            )
        })
        .collect()
}

#[test]
fn the_packaged_man_pages_are_the_ones_the_cli_writes() {
    let mut command = belroute();
    let out = command.cwd().join("man");
    std::fs::create_dir(&out).unwrap();
    let status = command.arg("manpages").arg(&out).status().unwrap();
    assert!(status.success());
    let now = texts(&out);
    assert!(now.contains_key("belroute.1"));
    assert!(now.contains_key("belroute-serve.1"));
    assert!(
        now["belroute.1"].contains(".SH \"EXIT STATUS\"")
            || now["belroute.1"].contains(".SH EXIT STATUS"),
        "{}",
        now["belroute.1"]
    );
    let packaged = texts(&root("debian/man"));
    assert_eq!(
        packaged.keys().collect::<Vec<_>>(),
        now.keys().collect::<Vec<_>>(),
        "debian/man: {REGENERATE}"
    );
    for (name, text) in &now {
        assert!(
            &packaged[name] == text,
            "debian/man/{name} is out of date: {REGENERATE}"
        );
    }
}

#[test]
fn the_packaged_completions_are_the_ones_the_cli_prints() {
    for (shell, file) in [
        ("bash", "belroute.bash"),
        ("zsh", "_belroute"),
        ("fish", "belroute.fish"),
    ] {
        let output = belroute().args(["completions", shell]).output().unwrap();
        assert!(output.status.success());
        let now = String::from_utf8(output.stdout).unwrap();
        assert!(
            read(&root("debian/completions").join(file)) == now,
            "debian/completions/{file} is out of date: {REGENERATE}"
        );
    }
}

/// The package's /etc/belroute/belroute.yaml is the commented starter `belroute init` writes.
#[test]
fn the_packaged_belroute_yaml_is_the_init_template() {
    let mut command = belroute();
    let dir = command.cwd().to_path_buf();
    assert!(command.arg("init").status().unwrap().success());
    assert!(
        read(&root("debian/belroute.yaml")) == read(&dir.join("belroute.yaml")),
        "debian/belroute.yaml differs from what `belroute init` writes: copy that file over it"
    );
}

/// docs/belroute.service (installing by hand) and debian/belroute.service (the package) are
/// one unit: they differ only in where the binary and the docs are.
#[test]
fn the_packaged_unit_is_the_documented_one() {
    let significant = |path: &str| -> Vec<String> {
        read(&root(path))
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                l.replace("/usr/local/bin/", "/usr/bin/")
                    .replace("/usr/local/share/", "/usr/share/")
            })
            .collect()
    };
    assert_eq!(
        significant("docs/belroute.service"),
        significant("debian/belroute.service")
    );
    let unit = read(&root("debian/belroute.service"));
    for line in [
        "ExecStart=/usr/bin/belroute serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=belroute",
        "Environment=BELROUTE_CONFIG=/etc/belroute/belroute.yaml",
        "Environment=BELROUTE_RULES=/etc/belroute/rules",
        "Environment=BELROUTE_DATABASE=sqlite:///var/lib/belroute/belroute.db",
        "Documentation=man:belroute(1) file:///usr/share/doc/belroute/operators.md",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
}

/// What the unit points at is what the package installs: every asset's source exists, and
/// the docs the unit names are among them.
#[test]
fn the_package_installs_what_the_unit_and_the_readme_name() {
    let manifest = read(&root("Cargo.toml"));
    let deb = manifest
        .split("[package.metadata.deb]")
        .nth(1)
        .expect("[package.metadata.deb] in Cargo.toml");
    let assets = deb.split("assets = [").nth(1).unwrap();
    let assets = &assets[..assets.find("\n]").unwrap()];
    let mut installed = Vec::new();
    for line in assets.lines().map(str::trim).filter(|l| l.starts_with('[')) {
        let parts: Vec<&str> = line.split('"').collect();
        let (source, dest) = (parts[1], parts[3]);
        if !source.starts_with("target/") {
            let matched = if source.ends_with('*') || source.contains("*.") {
                let (dir, pattern) = source.rsplit_once('/').unwrap();
                let suffix = pattern.trim_start_matches('*');
                std::fs::read_dir(root(dir))
                    .unwrap()
                    .filter(|e| {
                        e.as_ref()
                            .unwrap()
                            .file_name()
                            .to_string_lossy()
                            .ends_with(suffix)
                    })
                    .count()
            } else {
                usize::from(root(source).is_file())
            };
            assert!(matched > 0, "asset {source} matches no file");
        }
        installed.push((source.to_string(), dest.to_string()));
    }
    let installs = |source: &str, dest: &str| {
        installed
            .iter()
            .any(|(s, d)| (s == source || s == "docs/*.md") && d == dest)
    };
    assert!(installs("docs/operators.md", "usr/share/doc/belroute/"));
    assert!(installs("README.md", "usr/share/doc/belroute/"));
    assert!(
        installed
            .iter()
            .any(|(s, d)| s == "debian/man/*.1" && d == "usr/share/man/man1/")
    );
    for file in ["main.yaml", "main.test.yaml", "support.yaml"] {
        assert!(
            installed
                .iter()
                .any(|(s, d)| s == &format!("rules/{file}") && d == "etc/belroute/rules/"),
            "the example rule set: {file}"
        );
    }
    // Every example rule file is packaged (a new one must be added to the assets).
    let shipped = std::fs::read_dir(root("rules")).unwrap().count();
    assert_eq!(shipped, 3, "rules/ has a file the package does not install");
}
