//! The shape of the source tree (issue #14): no file under `src/` over 700 lines, and no import
//! circle between the top-level modules, so each room stays small enough to read and data keeps
//! flowing one way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 700;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn no_source_file_is_over_700_lines() {
    let long: Vec<_> = sources()
        .into_iter()
        .map(|(name, text)| (name, text.lines().count()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

/// The top-level modules each one names as `crate::…` outside comments and unit tests.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, text) in sources() {
        let module = name.split(['/', '.']).next().unwrap().to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let code = text.split("#[cfg(test)]").next().unwrap();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (_, rest) in line
                .match_indices("crate::")
                .map(|(i, _)| line.split_at(i + 7))
            {
                let used: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !used.is_empty() && used != module {
                    graph.entry(module.clone()).or_default().insert(used);
                }
            }
        }
    }
    graph
}

#[test]
fn no_import_circle_between_top_level_modules() {
    let graph = imports();
    assert!(graph.contains_key("app"), "the import scan found nothing");
    for start in graph.keys() {
        let mut path = vec![start.clone()];
        if let Some(circle) = circle_back_to(&graph, start, &mut path, &mut BTreeSet::new()) {
            panic!("import circle: {}", circle.join(" → "));
        }
    }
}

/// A path of imports from the last module of `path` back to `start`, if there is one.
fn circle_back_to(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    let here = path.last().unwrap().clone();
    for next in graph.get(&here).into_iter().flatten() {
        if next == start {
            let mut circle = path.clone();
            circle.push(next.clone());
            return Some(circle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(circle) = circle_back_to(graph, start, path, seen) {
                return Some(circle);
            }
            path.pop();
        }
    }
    None
}
