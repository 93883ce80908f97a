//! The Python side: coverage.py's JSON report, a scan of `def` lines for the functions with
//! missing lines, running the tests under coverage, and the code out of an answer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// The parts of coverage.py's JSON report used here.
#[derive(Debug, Deserialize)]
struct RawReport {
    files: std::collections::BTreeMap<String, RawFile>,
    totals: RawTotals,
}

#[derive(Debug, Deserialize)]
struct RawFile {
    missing_lines: Vec<u64>,
}

#[derive(Debug, Deserialize)]
struct RawTotals {
    percent_covered: f64,
}

/// A coverage report: the total and each file's missing lines.
#[derive(Debug)]
pub(crate) struct Coverage {
    pub(crate) percent: f64,
    files: Vec<(String, BTreeSet<u64>)>,
}

/// A function with at least one missing line.
#[derive(Clone, Debug)]
pub(crate) struct Gap {
    /// Its module, dotted (`calc.ops`).
    pub(crate) module: String,
    pub(crate) name: String,
    /// Its source text.
    pub(crate) source: String,
}

/// Reads a coverage.py JSON report.
pub(crate) fn read_report(path: &Path) -> anyhow::Result<Coverage> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let raw: RawReport = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a coverage.py JSON report", path.display()))?;
    let files = raw
        .files
        .into_iter()
        .filter(|(name, _)| !is_test_file(name))
        .map(|(name, file)| (name, file.missing_lines.into_iter().collect()))
        .collect();
    Ok(Coverage { percent: raw.totals.percent_covered.clamp(0.0, 100.0), files })
}

fn is_test_file(name: &str) -> bool {
    Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("test_") || n.ends_with("_test.py"))
}

/// Runs the project's tests under coverage (`coverage run -m unittest discover`, test files
/// left out of the measure) and reads the JSON report it writes to `report`.
pub(crate) fn coverage_report(
    python: &Path,
    project: &Path,
    report: &Path,
) -> anyhow::Result<Coverage> {
    // A generated test that fails still runs its code: the exit status of the tests is not
    // ours to judge, only the report.
    let run = Command::new(python)
        .current_dir(project)
        .args([
            "-m",
            "coverage",
            "run",
            "--omit=test_*.py,*/test_*.py",
            "-m",
            "unittest",
            "discover",
        ])
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let json = Command::new(python)
        .current_dir(project)
        .args(["-m", "coverage", "json", "-o"])
        .arg(report)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !json.status.success() {
        bail!(
            "`{} -m coverage json` failed (is coverage.py installed?): {}{}",
            python.display(),
            String::from_utf8_lossy(&run.stderr).lines().last().unwrap_or_default(),
            String::from_utf8_lossy(&json.stderr)
        );
    }
    read_report(report)
}

/// The functions (found by their `def` lines) that hold at least one missing line.
pub(crate) fn uncovered_functions(project: &Path, coverage: &Coverage) -> anyhow::Result<Vec<Gap>> {
    let mut gaps = Vec::new();
    for (file, missing) in &coverage.files {
        if missing.is_empty() {
            continue;
        }
        let path: PathBuf = project.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let module = file.trim_end_matches(".py").replace(['/', '\\'], ".");
        let lines: Vec<&str> = text.lines().collect();
        for (start, line) in lines.iter().enumerate() {
            let Some(name) = def_name(line) else { continue };
            let indent = indent_of(line);
            let end = lines[start + 1..]
                .iter()
                .position(|next| !next.trim().is_empty() && indent_of(next) <= indent)
                .map_or(lines.len(), |offset| start + 1 + offset);
            let span = (start as u64 + 1)..=(end as u64);
            if missing.iter().any(|line_no| span.contains(line_no)) {
                gaps.push(Gap {
                    module: module.clone(),
                    name: name.to_owned(),
                    source: lines[start..end].join("\n"),
                });
            }
        }
    }
    Ok(gaps)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn def_name(line: &str) -> Option<&str> {
    let rest = line.trim_start();
    let rest = rest.strip_prefix("async ").unwrap_or(rest).strip_prefix("def ")?;
    rest.split('(').next().map(str::trim).filter(|name| !name.is_empty())
}

/// The code of an answer: the first ```python block when there is one, else the whole text.
pub(crate) fn extract_python(answer: &str) -> String {
    let Some(start) = answer.find("```python") else { return answer.to_owned() };
    let body = &answer[start + "```python".len()..];
    let body = body.strip_prefix('\n').unwrap_or(body);
    let code = body.find("```").map_or(body, |end| &body[..end]);
    code.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_python_block() {
        assert_eq!(extract_python("Here:\n```python\nimport os\n```\nbye"), "import os\n");
        assert_eq!(extract_python("import os\n"), "import os\n");
    }

    #[test]
    fn a_function_is_uncovered_when_a_missing_line_is_in_its_body() {
        let project = tempfile::tempdir().unwrap();
        std::fs::create_dir(project.path().join("pkg")).unwrap();
        let source = "def covered(x):\n    return x\n\n\nclass Box:\n    def method(self):\n        return 1\n\n    def other(self):\n        return 2\n";
        std::fs::write(project.path().join("pkg/mod.py"), source).unwrap();
        let coverage =
            Coverage { percent: 50.0, files: vec![("pkg/mod.py".to_owned(), BTreeSet::from([7]))] };
        let gaps = uncovered_functions(project.path(), &coverage).unwrap();
        let names: Vec<_> =
            gaps.iter().map(|gap| (gap.module.as_str(), gap.name.as_str())).collect();
        assert_eq!(names, [("pkg.mod", "method")]);
        assert_eq!(gaps[0].source, "    def method(self):\n        return 1\n");
    }

    #[test]
    fn finds_def_names() {
        assert_eq!(def_name("    async def run(self):"), Some("run"));
        assert_eq!(def_name("define = 1"), None);
    }
}
