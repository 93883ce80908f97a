//! The architecture's rules, checked over `cargo metadata`: dependencies between our crates
//! point one way (`DESIGN.md`), and every crate root opens with a `//!` saying what it is for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// For each of our crates, the crates of ours it may name in `[dependencies]`.
/// Dev-dependencies are free: tests may use the mock and anything above.
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    const CORE: &[&str] = &["switchyard-core"];
    BTreeMap::from([
        ("switchyard-core", &[][..]),
        ("switchyard-openai", CORE),
        ("switchyard-anthropic", CORE),
        ("switchyard-gemini", CORE),
        ("switchyard-ollama", CORE),
        ("switchyard-vault", CORE),
        ("switchyard-quota", CORE),
        ("switchyard-score", CORE),
        ("switchyard-mock", CORE),
        ("switchyard-store", &["switchyard-core", "switchyard-quota", "switchyard-score"][..]),
        ("switchyard-redis", &["switchyard-core", "switchyard-quota"][..]),
        (
            "switchyard",
            &[
                "switchyard-core",
                "switchyard-openai",
                "switchyard-anthropic",
                "switchyard-gemini",
                "switchyard-ollama",
                "switchyard-vault",
                "switchyard-quota",
                "switchyard-score",
                "switchyard-store",
                "switchyard-redis",
            ][..],
        ),
        ("switchyard-server", &["switchyard", "switchyard-core", "switchyard-store"][..]),
        (
            "switchyard-cli",
            &[
                "switchyard",
                "switchyard-core",
                "switchyard-server",
                "switchyard-mock",
                "switchyard-vault",
                "switchyard-openai",
                "switchyard-anthropic",
                "switchyard-gemini",
                "switchyard-ollama",
                "switchyard-quota",
                "switchyard-score",
                "switchyard-store",
                "switchyard-redis",
            ][..],
        ),
    ])
}

fn metadata() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

fn our_packages(metadata: &Value) -> Vec<&Value> {
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|package| {
            package["name"].as_str().is_some_and(|name| name.starts_with("switchyard"))
        })
        .collect()
}

#[test]
fn dependencies_between_our_crates_point_one_way() {
    let metadata = metadata();
    let allowed = allowed();
    let mut violations = Vec::new();
    for package in our_packages(&metadata) {
        let name = package["name"].as_str().expect("name");
        if name == "switchyard-benches" {
            continue;
        }
        let Some(may_use) = allowed.get(name) else {
            violations.push(format!("{name} is not in xtask's architecture table"));
            continue;
        };
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            let dep_name = dependency["name"].as_str().expect("dependency name");
            let is_normal = dependency["kind"].is_null();
            if is_normal && dep_name.starts_with("switchyard") && !may_use.contains(&dep_name) {
                violations.push(format!("{name} depends on {dep_name}"));
            }
        }
    }
    assert!(violations.is_empty(), "arrows that point the wrong way:\n{}", violations.join("\n"));
}

#[test]
fn every_crate_root_says_what_it_is_for() {
    let metadata = metadata();
    let mut missing = Vec::new();
    for package in our_packages(&metadata) {
        for target in package["targets"].as_array().expect("targets") {
            let kinds: Vec<&str> =
                target["kind"].as_array().expect("kind").iter().filter_map(Value::as_str).collect();
            if !(kinds.contains(&"lib") || kinds.contains(&"bin")) {
                continue;
            }
            let path = PathBuf::from(target["src_path"].as_str().expect("src_path"));
            let text = std::fs::read_to_string(&path).expect("crate root readable");
            if !text.trim_start().starts_with("//!") {
                missing.push(path.display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "crate roots without a //! opening:\n{}", missing.join("\n"));
}

#[test]
fn no_library_turns_on_a_heavy_dependency_by_default() {
    let metadata = metadata();
    let heavy = ["axum", "redis", "rusqlite"];
    let light_crates = [
        "switchyard-core",
        "switchyard-openai",
        "switchyard-anthropic",
        "switchyard-gemini",
        "switchyard-ollama",
        "switchyard-vault",
        "switchyard-quota",
        "switchyard-score",
    ];
    let mut found = Vec::new();
    for package in our_packages(&metadata) {
        let name = package["name"].as_str().expect("name");
        if !light_crates.contains(&name) {
            continue;
        }
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            let dep_name = dependency["name"].as_str().expect("dependency name");
            let optional = dependency["optional"].as_bool().unwrap_or(false);
            if dependency["kind"].is_null() && heavy.contains(&dep_name) && !optional {
                found.push(format!("{name} -> {dep_name}"));
            }
        }
    }
    assert!(found.is_empty(), "heavy dependencies in light crates:\n{}", found.join("\n"));
}
