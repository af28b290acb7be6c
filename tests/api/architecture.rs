//! The module map holds (docs/architecture.md): no import cycles among the crate's top-level
//! modules, the layer rules, and an agent core that names no skill. Read from the sources
//! (`crate::…` paths outside comments and test code), so a change that breaks a rule fails here
//! before review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Every `.rs` file under `dir`.
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

/// The top-level module a file belongs to (`src/agent/turn.rs` → `agent`).
fn top_module(path: &Path) -> String {
    let rel = path.strip_prefix(SRC).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Names of files that are test-only modules (`#[cfg(test)] mod x;`), to leave out.
fn test_only_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            if pair[0] == "#[cfg(test)]" {
                if let Some(name) = pair[1]
                    .strip_prefix("mod ")
                    .and_then(|m| m.strip_suffix(';'))
                {
                    let dir = file.parent().unwrap();
                    let dir = if file.file_name().unwrap() == "mod.rs" {
                        dir.to_path_buf()
                    } else {
                        dir.join(file.file_stem().unwrap())
                    };
                    out.insert(dir.join(format!("{name}.rs")));
                    out.insert(dir.join(name).join("mod.rs"));
                }
            }
        }
    }
    out
}

/// The code of a file without comments and without its `#[cfg(test)]` tail.
fn production_code(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed == "#[cfg(test)]" {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// Top-level modules named by `crate::` paths in `code`, grouped imports included.
fn imports(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .map(|p| p.trim().split("::").next().unwrap_or(""))
                .collect()
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            vec![&rest[..end]]
        };
        out.extend(
            names
                .into_iter()
                .filter(|n| modules.contains(*n))
                .map(str::to_owned),
        );
    }
    out
}

/// Module → the other top-level modules its production code imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let tests = test_only_files(&files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top_module(f))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files.iter().filter(|f| !tests.contains(*f)) {
        let module = top_module(file);
        if module == "lib" || module == "main" {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(file).unwrap());
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(
            imports(&code, &modules)
                .into_iter()
                .filter(|d| *d != module),
        );
    }
    graph
}

/// A cycle through `start`, if any (depth-first).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_top_level_modules_have_no_import_cycles() {
    let graph = graph();
    assert!(graph.len() >= 10, "{graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert!(find_cycle(&g).is_none());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    let modules: BTreeSet<String> = ["store", "domain"].map(String::from).into();
    assert_eq!(
        imports(
            "use crate::{store::Store, domain::X};\n let x = crate::store::now;",
            &modules
        ),
        modules
    );
}

#[test]
fn the_layers_point_one_way() {
    let graph = graph();
    let deps = |m: &str| graph.get(m).cloned().unwrap_or_default();
    assert!(
        deps("domain").is_empty(),
        "domain imports {:?}",
        deps("domain")
    );
    let store: Vec<String> = deps("store").into_iter().collect();
    assert_eq!(store, ["domain"], "store may import only domain");
    for forbidden in ["http", "app", "state", "skills", "admin", "auth", "cli"] {
        assert!(
            !deps("agent").contains(forbidden),
            "agent imports {forbidden}"
        );
    }
    for upper in ["skills", "app", "cli"] {
        assert!(!deps("http").contains(upper), "http imports {upper}");
    }
}

#[test]
fn the_agent_core_names_no_skill() {
    let mut files = Vec::new();
    rust_files(&Path::new(SRC).join("agent"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap().to_lowercase();
        for word in ["appointment", "booking", "add_task", "list_tasks"] {
            assert!(
                !text.contains(word),
                "{} names the skill word {word:?}",
                file.display()
            );
        }
    }
}

/// Requests are read only through `http::extract` (where the text rule and problem+json
/// rejections live): no handler takes axum's own `Path`, `Query` or `Json` extractors.
#[test]
fn handlers_read_requests_through_our_extractors() {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let ours = Path::new(SRC).join("http/extract.rs");
    for file in files.iter().filter(|f| **f != ours) {
        let code = production_code(&std::fs::read_to_string(file).unwrap());
        let words = |l: &str| -> Vec<String> {
            l.split(|c: char| !c.is_alphanumeric() && c != '_')
                .map(str::to_owned)
                .collect()
        };
        for line in code.lines() {
            let line = line.trim();
            let axum_extractor = ["Path", "Query", "Json"].iter().any(|x| {
                line.contains(&format!("axum::extract::{x}"))
                    || (line.starts_with("use axum::extract::")
                        && words(line).iter().any(|w| w == x))
            });
            assert!(
                !axum_extractor,
                "{}: `{line}`: read requests with crate::http::extract",
                file.display()
            );
        }
    }
}
