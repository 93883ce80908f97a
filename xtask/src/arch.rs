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
        // The example shows the crates used alone: the facade and the adapters, nothing else.
        (
            "coverage-optimizer",
            &["switchyard", "switchyard-openai", "switchyard-anthropic", "switchyard-gemini"][..],
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
            package["name"]
                .as_str()
                .is_some_and(|name| name.starts_with("switchyard") || name == "coverage-optimizer")
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

/// The largest a file of the facade may grow: past it, a file holds more than one concern.
/// See: issue 18.
const MAX_FACADE_LINES: usize = 600;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, with its path relative to `dir`, sorted; `skip` names
/// subdirectories (relative to `dir`) left out.
fn rust_files(dir: &Path, skip: &[&str]) -> Vec<(PathBuf, String)> {
    fn walk(root: &Path, dir: &Path, skip: &[&str], found: &mut Vec<(PathBuf, String)>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let relative = path.strip_prefix(root).expect("under the root").to_path_buf();
            if path.is_dir() {
                if !skip.iter().any(|skipped| relative == Path::new(skipped)) {
                    walk(root, &path, skip, found);
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
                found.push((relative, text));
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, skip, &mut found);
    found.sort();
    found
}

#[test]
fn no_file_of_the_facade_is_over_600_lines() {
    let src = workspace_root().join("crates/switchyard/src");
    let long: Vec<String> = rust_files(&src, &[])
        .into_iter()
        .map(|(path, text)| (path, text.lines().count()))
        .filter(|&(_, n_lines)| n_lines > MAX_FACADE_LINES)
        .map(|(path, n_lines)| format!("crates/switchyard/src/{}: {n_lines} lines", path.display()))
        .collect();
    assert!(
        long.is_empty(),
        "files of the facade over {MAX_FACADE_LINES} lines (split them by concern):\n{}",
        long.join("\n")
    );
}

/// Rust source with comments, string literals and character literals blanked out (newlines
/// kept, so line numbers stay), leaving only code to search for paths and braces.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut idx = 0;
    while idx < chars.len() {
        let c = chars[idx];
        let next = chars.get(idx + 1).copied();
        if c == '/' && next == Some('/') {
            while idx < chars.len() && chars[idx] != '\n' {
                idx += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while idx < chars.len() {
                if chars[idx] == '/' && chars.get(idx + 1) == Some(&'*') {
                    depth += 1;
                    idx += 2;
                } else if chars[idx] == '*' && chars.get(idx + 1) == Some(&'/') {
                    depth -= 1;
                    idx += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[idx]);
                    idx += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && !chars.get(idx.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"..." or r#"..."#, with as many hashes at the end.
            let mut hashes = 0;
            let mut at = idx + 1;
            while chars.get(at) == Some(&'#') {
                hashes += 1;
                at += 1;
            }
            if chars.get(at) != Some(&'"') {
                out.push(c);
                idx += 1;
                continue;
            }
            at += 1;
            while at < chars.len() {
                if chars[at] == '"' && (1..=hashes).all(|n| chars.get(at + n) == Some(&'#')) {
                    at += 1 + hashes;
                    break;
                }
                blank(&mut out, chars[at]);
                at += 1;
            }
            idx = at;
        } else if c == '"' {
            idx += 1;
            while idx < chars.len() && chars[idx] != '"' {
                if chars[idx] == '\\' {
                    idx += 1;
                }
                if let Some(&skipped) = chars.get(idx) {
                    blank(&mut out, skipped);
                }
                idx += 1;
            }
            idx += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: '\n', '\'', '\u{..}'.
            idx += 2;
            while idx < chars.len() && chars[idx] != '\'' {
                idx += 1;
            }
            idx += 1;
        } else if c == '\'' && chars.get(idx + 2) == Some(&'\'') {
            idx += 3;
        } else {
            // Code, or a lifetime's quote.
            out.push(c);
            idx += 1;
        }
    }
    out
}

/// A reference from one top-level module to another, where it was found.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ModuleEdge {
    from: String,
    to: String,
    at: String,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The identifier at the start of `text`.
fn ident(text: &str) -> &str {
    let end = text.find(|c: char| !is_ident(c)).unwrap_or(text.len());
    &text[..end]
}

/// The first segments of the paths in a `{...}` group at the start of `text`:
/// `{a::b, c, d::{e, f}}` gives `a`, `c`, `d`.
fn group_heads(text: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut expect_head = true;
    for (idx, c) in text.char_indices() {
        match c {
            '{' => {
                depth += 1;
                expect_head = depth == 1;
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            c if is_ident(c) && expect_head && depth == 1 => {
                heads.push(ident(&text[idx..]));
                expect_head = false;
            }
            c if !c.is_whitespace() && depth == 1 => expect_head = false,
            _ => {}
        }
    }
    heads
}

/// The top-level modules of one crate's `src` and the references between them: `crate::x`,
/// `crate::{x, y}`, `super::x` resolved from where it is written (inline `mod` blocks
/// included), and `crate::Name` for a `Name` the crate root re-exports from `x`. Files are
/// `(path relative to src, text)`; `lib.rs`/`main.rs` are the root, not a module.
fn module_edges(files: &[(PathBuf, String)]) -> Vec<ModuleEdge> {
    let module_of = |path: &Path| -> Option<String> {
        let mut parts = path.iter().map(|part| part.to_string_lossy().into_owned());
        let first = parts.next()?;
        let is_root =
            path.parent() == Some(Path::new("")) && (first == "lib.rs" || first == "main.rs");
        (!is_root).then(|| first.trim_end_matches(".rs").to_owned())
    };
    let modules: std::collections::BTreeSet<String> =
        files.iter().filter_map(|(path, _)| module_of(path)).collect();
    // Names the root re-exports: `pub use x::{A, B as C};` makes `crate::A` and `crate::C` x's.
    let mut reexported: BTreeMap<String, String> = BTreeMap::new();
    for (path, text) in files {
        if module_of(path).is_some() {
            continue;
        }
        let code = code_only(text);
        for statement in code.split(';') {
            let statement = statement.trim();
            let Some(rest) = statement.strip_prefix("pub use ") else { continue };
            let module = ident(rest);
            if !modules.contains(module) {
                continue;
            }
            let after = rest[module.len()..].trim_start_matches("::");
            let names: Vec<&str> = if after.starts_with('{') {
                after.trim_matches(|c| c == '{' || c == '}').split(',').collect()
            } else {
                vec![after]
            };
            for name in names {
                let name = name.split(" as ").last().unwrap_or(name).trim();
                if !name.is_empty() && name.chars().all(is_ident) {
                    reexported.insert(name.to_owned(), module.to_owned());
                }
            }
        }
    }
    let mut edges = Vec::new();
    for (path, text) in files {
        let Some(from) = module_of(path) else { continue };
        // The file's own module path: `a.rs` and `a/mod.rs` are [a], `a/b.rs` is [a, b].
        let mut file_path: Vec<String> = path
            .with_extension("")
            .iter()
            .map(|part| part.to_string_lossy().into_owned())
            .collect();
        if file_path.last().is_some_and(|last| last == "mod") {
            file_path.pop();
        }
        let code = code_only(text);
        // Inline `mod name {` blocks open at a brace depth: (name, depth inside).
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut pending_mod: Option<String> = None;
        let mut line = 1;
        let bytes: Vec<(usize, char)> = code.char_indices().collect();
        let mut idx = 0;
        while idx < bytes.len() {
            let (at, c) = bytes[idx];
            let rest = &code[at..];
            let starts_word = at == 0 || !code[..at].ends_with(|p: char| is_ident(p) || p == '$');
            let mut target: Option<String> = None;
            match c {
                '\n' => line += 1,
                '{' => {
                    depth += 1;
                    if let Some(name) = pending_mod.take() {
                        inline.push((name, depth));
                    }
                }
                '}' => {
                    if inline.last().is_some_and(|(_, open)| *open == depth) {
                        inline.pop();
                    }
                    depth = depth.saturating_sub(1);
                }
                ';' => pending_mod = None,
                _ if starts_word && rest.starts_with("mod ") => {
                    pending_mod = Some(ident(rest[4..].trim_start()).to_owned());
                }
                _ if starts_word && rest.starts_with("crate::") => {
                    let after = &rest["crate::".len()..];
                    let heads = if after.starts_with('{') {
                        group_heads(after)
                    } else {
                        vec![ident(after)]
                    };
                    for head in heads {
                        let to = if modules.contains(head) {
                            Some(head.to_owned())
                        } else {
                            reexported.get(head).cloned()
                        };
                        if let Some(to) = to.filter(|to| *to != from) {
                            edges.push(ModuleEdge {
                                from: from.clone(),
                                to,
                                at: format!("{}:{line}", path.display()),
                            });
                        }
                    }
                }
                _ if starts_word && rest.starts_with("super::") => {
                    let mut here: Vec<String> = file_path.clone();
                    here.extend(inline.iter().map(|(name, _)| name.clone()));
                    let mut after = rest;
                    while let Some(next) = after.strip_prefix("super::") {
                        here.pop();
                        after = next;
                    }
                    if here.is_empty() {
                        // At the crate root: the next segment names a top-level module.
                        let head = ident(after);
                        target = if modules.contains(head) {
                            Some(head.to_owned())
                        } else {
                            reexported.get(head).cloned()
                        };
                    } else {
                        target = Some(here[0].clone());
                    }
                }
                _ => {}
            }
            if let Some(to) = target.filter(|to| *to != from) {
                edges.push(ModuleEdge {
                    from: from.clone(),
                    to,
                    at: format!("{}:{line}", path.display()),
                });
            }
            idx += 1;
        }
    }
    edges.sort();
    edges.dedup_by(|a, b| a.from == b.from && a.to == b.to);
    edges
}

/// Each cycle among the modules, as `a -> b -> a` with where each arrow was found; one per
/// strongly connected group of modules.
fn module_cycles(edges: &[ModuleEdge]) -> Vec<String> {
    let mut next: BTreeMap<&str, Vec<&ModuleEdge>> = BTreeMap::new();
    for edge in edges {
        next.entry(edge.from.as_str()).or_default().push(edge);
    }
    let mut reported: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut cycles = Vec::new();
    for start in next.keys().copied() {
        if reported.contains(start) {
            continue;
        }
        // Breadth-first from `start`: the shortest way back to it, if any.
        let mut came_from: BTreeMap<&str, &ModuleEdge> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut back: Option<&ModuleEdge> = None;
        while let Some(module) = queue.pop_front() {
            for edge in next.get(module).into_iter().flatten() {
                if edge.to == start {
                    back = Some(edge);
                    break;
                }
                if !came_from.contains_key(edge.to.as_str()) {
                    came_from.insert(edge.to.as_str(), edge);
                    queue.push_back(edge.to.as_str());
                }
            }
            if back.is_some() {
                break;
            }
        }
        let Some(back) = back else { continue };
        let mut path = vec![back];
        let mut at = back.from.as_str();
        while at != start {
            let edge = came_from[at];
            path.push(edge);
            at = edge.from.as_str();
        }
        path.reverse();
        for edge in &path {
            reported.insert(edge.from.clone());
        }
        let mut text = start.to_owned();
        for edge in path {
            text.push_str(&format!(" -> {} ({})", edge.to, edge.at));
        }
        cycles.push(text);
    }
    cycles
}

#[test]
fn no_crate_has_a_module_cycle() {
    let metadata = metadata();
    let mut found = Vec::new();
    for package in our_packages(&metadata).into_iter().chain(
        metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter(|package| package["name"] == "xtask"),
    ) {
        let name = package["name"].as_str().expect("name");
        let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest_path"));
        let src = manifest.parent().expect("package directory").join("src");
        if !src.is_dir() {
            continue;
        }
        // `src/bin` holds crate roots of their own.
        let files = rust_files(&src, &["bin"]);
        for cycle in module_cycles(&module_edges(&files)) {
            found.push(format!("{name}: {cycle}"));
        }
    }
    assert!(
        found.is_empty(),
        "module cycles (if a uses b, b must not use a; move what both need into a third \
         module):\n{}",
        found.join("\n")
    );
}

mod module_graph {
    use super::*;

    fn files(sources: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
        sources.iter().map(|(path, text)| (PathBuf::from(path), (*text).to_owned())).collect()
    }

    fn arrows(sources: &[(&str, &str)]) -> Vec<String> {
        module_edges(&files(sources)).into_iter().map(|e| format!("{}->{}", e.from, e.to)).collect()
    }

    #[test]
    fn every_spelling_of_a_reference_is_an_arrow() {
        let found = arrows(&[
            ("lib.rs", "mod a; mod b; mod c; mod d; pub use d::{Thing, Other as Renamed};"),
            ("a.rs", "use crate::{b::X, c};\nfn f() -> crate::Thing { make() }"),
            ("b/mod.rs", "mod inner;"),
            ("b/inner.rs", "use super::super::c::Y;"),
            ("c.rs", "use super::Renamed;"),
            ("d.rs", ""),
        ]);
        assert_eq!(found, ["a->b", "a->c", "a->d", "b->c", "c->d"]);
    }

    #[test]
    fn comments_strings_and_a_tests_module_are_no_arrows() {
        let found = arrows(&[
            ("lib.rs", "mod a; mod b;"),
            (
                "a.rs",
                "//! See [`crate::b`].\nconst S: &str = \"crate::b\";\nconst R: &str = r#\"super::b\"#;\n\
                 const C: char = '\"';\nfn f<'a>(x: &'a str) {}\n\
                 #[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
            ),
            ("b.rs", "/* crate::a */ fn g() {}"),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_cycle_is_reported_with_where_each_arrow_is() {
        let edges = module_edges(&files(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            ("a.rs", "use crate::b::B;"),
            ("b.rs", "\nuse crate::c::C;"),
            ("c.rs", "use crate::a::A;"),
        ]));
        assert_eq!(module_cycles(&edges), ["a -> b (a.rs:1) -> c (b.rs:2) -> a (c.rs:1)"]);
        let one_way = module_edges(&files(&[
            ("lib.rs", "mod a; mod b;"),
            ("a.rs", "use crate::b::B;"),
            ("b.rs", ""),
        ]));
        assert!(module_cycles(&one_way).is_empty());
    }
}
