//! The workspace's structure, checked by reading its sources:
//!
//! - no module cycles: within every crate, among the modules that share a
//!   parent, "uses" never loops back (`data` uses `experiment` and
//!   `experiment` uses `data` is a cycle; a module using its own parent or
//!   children is not);
//! - the experiment library builds without the command line's dependencies:
//!   they are optional and only the `cli` / `download` features enable them;
//! - the conformance kit (`swalp-conformance`, test-only) is never a normal
//!   or build dependency, and `swalp-formats` and every plugin run it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every library crate's `src` directory.
fn crates() -> Vec<PathBuf> {
    let root = workspace();
    let mut dirs: Vec<PathBuf> = [
        "swalp-core",
        "swalp-formats",
        "swalp-cli",
        "swalp-conformance",
    ]
    .iter()
    .map(|c| root.join(c).join("src"))
    .collect();
    let plugins = std::fs::read_dir(root.join("plugins")).unwrap_or_else(|e| panic!("{e}"));
    for entry in plugins.flatten() {
        let src = entry.path().join("src");
        if src.join("lib.rs").is_file() {
            dirs.push(src);
        }
    }
    dirs
}

type ModPath = Vec<String>;

/// The module of each source file: `a/b.rs` and `a/b/mod.rs` are `a::b`,
/// `lib.rs` the root. Binaries' roots (`main.rs`) are not modules.
fn modules(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().map_or(true, |e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap_or(&path);
            let mut parts: ModPath = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            match parts.last().map(String::as_str) {
                Some("main") if parts.len() == 1 => continue,
                Some("lib") if parts.len() == 1 => parts.clear(),
                Some("mod") => {
                    parts.pop();
                }
                _ => {}
            }
            found.insert(parts, path);
        }
    }
    found
}

/// Source without comments and string literals (roughly: enough to read
/// paths from).
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut in_string = false;
        let mut prev = ' ';
        for c in line.chars() {
            if c == '"' && prev != '\\' {
                in_string = !in_string;
            } else if !in_string {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Expands a `use` tree (`crate::{a::B, c::{D, E}}`) into flat paths.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let close = tree.rfind('}').filter(|&c| c > open).unwrap_or(tree.len());
    let prefix = &tree[..open];
    let inner = &tree[open + 1..close];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(&format!("{prefix}{p}")))
        .collect()
}

/// The crate-relative paths a file names: its `use` trees and the
/// `crate::`/`super::`/`self::` paths in its code.
fn paths_named(text: &str) -> Vec<String> {
    let code = code(text);
    let mut paths = Vec::new();
    // `use` declarations start a line (after any `pub`, `pub(crate)`).
    let mut statement: Option<String> = None;
    for line in code.lines() {
        let trimmed = line.trim_start();
        let start = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p));
        if let Some(rest) = start {
            statement = Some(rest.to_string());
        } else if let Some(s) = statement.as_mut() {
            s.push_str(trimmed);
        }
        if statement.as_ref().is_some_and(|s| s.contains(';')) {
            let text = statement.take().unwrap_or_default();
            paths.extend(expand(text.split(';').next().unwrap_or("")));
        }
    }
    for root in ["crate::", "super::", "self::"] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(root) {
            let boundary =
                i == 0 || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if boundary {
                paths.push(tail[..end].trim_end_matches(':').to_string());
            }
            rest = &tail[end.max(1)..];
        }
    }
    paths
}

/// A crate's modules and what each re-exports (`pub use path as name`).
struct Crate {
    modules: BTreeMap<ModPath, PathBuf>,
    reexports: BTreeMap<ModPath, BTreeMap<String, String>>,
}

impl Crate {
    fn read(src: &Path) -> Self {
        let modules = modules(src);
        let mut reexports = BTreeMap::new();
        for (module, file) in &modules {
            let text = code(&std::fs::read_to_string(file).unwrap_or_default());
            let mut names = BTreeMap::new();
            for line in text.lines() {
                let t = line.trim_start();
                let rest = t
                    .strip_prefix("pub use ")
                    .or_else(|| t.strip_prefix("pub(crate) use "));
                let Some(rest) = rest else {
                    continue;
                };
                // `expand` drops spaces: `a::B as C` arrives as `a::BasC`,
                // so read aliases before expanding.
                for item in rest.split(';').next().unwrap_or("").split(',') {
                    if let Some((_, alias)) = item.split_once(" as ") {
                        let alias = alias.trim().trim_end_matches('}').trim();
                        let path = item.split(" as ").next().unwrap_or("").trim();
                        names.insert(alias.to_string(), path.to_string());
                    }
                }
                for path in expand(rest.split(';').next().unwrap_or("")) {
                    let name = path.rsplit("::").next().unwrap_or("").to_string();
                    names.entry(name).or_insert(path);
                }
            }
            reexports.insert(module.clone(), names);
        }
        Crate { modules, reexports }
    }

    /// The module a path named inside `module` refers to: the longest
    /// prefix that is a module, following re-exports (`crate::Posit` is
    /// `crate::posit` when the root re-exports it); none outside the crate.
    fn target(&self, module: &ModPath, path: &str) -> Option<ModPath> {
        self.resolve(module, path, 0)
    }

    fn resolve(&self, module: &ModPath, path: &str, depth: usize) -> Option<ModPath> {
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        let (mut absolute, rest): (ModPath, &[&str]) = match parts.first().copied()? {
            "crate" => (Vec::new(), &parts[1..]),
            "super" => (module[..module.len().checked_sub(1)?].to_vec(), &parts[1..]),
            "self" => (module.clone(), &parts[1..]),
            child => {
                // A bare path starting at a child module of `module`.
                let mut m = module.clone();
                m.push(child.to_string());
                if !self.modules.contains_key(&m) {
                    return None;
                }
                (module.clone(), &parts[..])
            }
        };
        for p in rest {
            if *p == "super" {
                absolute.pop();
            } else {
                absolute.push(p.to_string());
            }
        }
        let n = (0..=absolute.len())
            .rev()
            .find(|&n| self.modules.contains_key(&absolute[..n]))?;
        let prefix = absolute[..n].to_vec();
        if n < absolute.len() && depth < 8 {
            let reexported = self
                .reexports
                .get(&prefix)
                .and_then(|r| r.get(&absolute[n]));
            if let Some(t) = reexported.and_then(|r| self.resolve(&prefix, r, depth + 1)) {
                return Some(t);
            }
        }
        Some(prefix)
    }
}

/// Sibling-level dependencies: for every use of `to` from `from`, the edge
/// between the two children of their closest common ancestor (none when
/// one contains the other).
fn sibling_edges(krate: &Crate) -> BTreeMap<ModPath, BTreeMap<(String, String), String>> {
    let mut edges: BTreeMap<ModPath, BTreeMap<(String, String), String>> = BTreeMap::new();
    for (module, file) in &krate.modules {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for path in paths_named(&text) {
            let Some(to) = krate.target(module, &path) else {
                continue;
            };
            let common = module.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == module.len() || common == to.len() {
                continue; // the same module, an ancestor or a descendant
            }
            let parent = module[..common].to_vec();
            let edge = (module[common].clone(), to[common].clone());
            let why = format!("{} names `{path}`", file.display());
            edges.entry(parent).or_default().entry(edge).or_insert(why);
        }
    }
    edges
}

/// A cycle in a directed graph, if there is one.
fn find_cycle(edges: &BTreeMap<(String, String), String>) -> Option<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.keys().flat_map(|(a, b)| [a, b]).collect();
    let next = |n: &String| -> Vec<&String> {
        edges
            .keys()
            .filter(|(a, _)| a == n)
            .map(|(_, b)| b)
            .collect()
    };
    fn visit<'a>(
        n: &'a String,
        next: &dyn Fn(&String) -> Vec<&'a String>,
        state: &mut BTreeMap<&'a String, u8>,
        stack: &mut Vec<&'a String>,
    ) -> Option<Vec<String>> {
        state.insert(n, 1);
        stack.push(n);
        for m in next(n) {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|x| *x == m).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        stack[from..].iter().map(|s| s.to_string()).collect();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, next, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in nodes {
        if state.get(n).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, &next, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Edges allowed to close a cycle, each (crate, parent module, from, to):
/// none. The format crates once had one per format (kernels naming the
/// format types whose `NumberFormat` impls called them); the impls now live
/// beside the kernels, so formats never name their kernels. Kept as the
/// place to record an exception, with its reason, should one ever be
/// unavoidable.
const KNOWN_BACK_EDGES: &[(&str, &str, &str, &str)] = &[];

#[test]
fn no_module_cycles_anywhere() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for src in crates() {
        let krate = Crate::read(&src);
        let name = src
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        checked += krate.modules.len();
        for (parent, mut edges) in sibling_edges(&krate) {
            let here = parent.join("::");
            for &(_, _, from, to) in KNOWN_BACK_EDGES
                .iter()
                .filter(|(c, p, _, _)| *c == name && *p == here)
            {
                let removed = edges.remove(&(from.to_string(), to.to_string()));
                if removed.is_none() {
                    problems.push(format!(
                        "{name}: {from} -> {to} no longer exists: remove it from KNOWN_BACK_EDGES"
                    ));
                }
            }
            if let Some(cycle) = find_cycle(&edges) {
                let evidence: Vec<&String> = cycle
                    .windows(2)
                    .filter_map(|w| edges.get(&(w[0].clone(), w[1].clone())))
                    .collect();
                problems.push(format!(
                    "{} in {}::{}: {} ({evidence:?})",
                    "cycle",
                    src.display(),
                    parent.join("::"),
                    cycle.join(" -> ")
                ));
            }
        }
    }
    assert!(checked > 60, "only {checked} modules found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let modules: BTreeMap<ModPath, PathBuf> = [
        (vec![], PathBuf::new()),
        (vec!["a".to_string()], PathBuf::new()),
        (vec!["b".to_string()], PathBuf::new()),
    ]
    .into_iter()
    .collect();
    let root_reexports = [("Thing".to_string(), "b::Thing".to_string())];
    let reexports = [(vec![], root_reexports.into_iter().collect())]
        .into_iter()
        .collect();
    let krate = Crate { modules, reexports };
    let a = vec!["a".to_string()];
    let b = Some(vec!["b".to_string()]);
    assert_eq!(krate.target(&a, "crate::b::Thing"), b);
    assert_eq!(krate.target(&a, "super::b"), b);
    assert_eq!(
        krate.target(&a, "crate::Thing"),
        b,
        "through the root's re-export"
    );
    assert_eq!(krate.target(&a, "std::fmt"), None);
    assert_eq!(
        expand("crate::{a::X, b::{Y, Z}}"),
        ["crate::a::X", "crate::b::Y", "crate::b::Z"]
    );
    let edges: BTreeMap<(String, String), String> = [
        (("a".to_string(), "b".to_string()), String::new()),
        (("b".to_string(), "a".to_string()), String::new()),
    ]
    .into_iter()
    .collect();
    assert!(find_cycle(&edges).is_some());
    let one_way: BTreeMap<(String, String), String> =
        [(("a".to_string(), "b".to_string()), String::new())]
            .into_iter()
            .collect();
    assert!(find_cycle(&one_way).is_none());
}

/// The command line's dependencies are optional, and only `cli` or
/// `download` enable them: the library needs none of them.
#[test]
fn the_library_does_not_depend_on_the_command_line() {
    let manifest = std::fs::read_to_string(workspace().join("swalp-cli/Cargo.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let doc: toml::Table = toml::from_str(&manifest).unwrap_or_else(|e| panic!("{e}"));
    let deps = doc["dependencies"].as_table().cloned().unwrap_or_default();
    let features = doc["features"].as_table().cloned().unwrap_or_default();
    let enabled_by = |dep: &str| -> Vec<String> {
        features
            .iter()
            .filter(|(_, list)| {
                list.as_array()
                    .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(&format!("dep:{dep}"))))
            })
            .map(|(name, _)| name.clone())
            .collect()
    };
    for dep in [
        "clap",
        "env_logger",
        "indicatif",
        "ctrlc",
        "ureq",
        "tar",
        "md5",
    ] {
        let optional = deps[dep]
            .as_table()
            .and_then(|t| t.get("optional"))
            .and_then(toml::Value::as_bool);
        assert_eq!(optional, Some(true), "{dep} must be optional");
        let by = enabled_by(dep);
        assert!(
            !by.is_empty() && by.iter().all(|f| f == "cli" || f == "download"),
            "{dep} enabled by {by:?}"
        );
    }
    let default = features["default"].as_array().cloned().unwrap_or_default();
    assert!(default.iter().any(|v| v.as_str() == Some("cli")));
}

/// The workspace members' directories, from the root manifest.
fn members() -> Vec<PathBuf> {
    let manifest =
        std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap_or_else(|e| panic!("{e}"));
    let doc: toml::Table = toml::from_str(&manifest).unwrap_or_else(|e| panic!("{e}"));
    doc["workspace"]["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(toml::Value::as_str)
                .map(|m| workspace().join(m))
                .collect()
        })
        .unwrap_or_default()
}

/// `swalp-conformance` holds test-only checks: it is unpublished, appears
/// only under `[dev-dependencies]` (a normal dependency would ship test code
/// and its helpers to users), and `swalp-formats` and every plugin run it
/// from a `tests/conformance.rs`.
#[test]
fn the_conformance_kit_is_a_dev_dependency_only() {
    const KIT: &str = "swalp-conformance";
    let kit_manifest = std::fs::read_to_string(workspace().join(KIT).join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let kit: toml::Table = toml::from_str(&kit_manifest).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        kit["package"].get("publish").and_then(toml::Value::as_bool),
        Some(false),
        "{KIT} must not be published"
    );
    let members = members();
    assert!(
        members.iter().any(|m| m.ends_with(KIT)),
        "{KIT} is a member"
    );
    let mut runners = Vec::new();
    for member in &members {
        let path = member.join("Cargo.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let doc: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        // Plain and target-specific (`[target.'cfg(..)'.dependencies]`) tables.
        let mut tables: Vec<(String, &toml::Value)> = Vec::new();
        for key in ["dependencies", "build-dependencies", "dev-dependencies"] {
            if let Some(t) = doc.get(key) {
                tables.push((key.to_string(), t));
            }
        }
        if let Some(targets) = doc.get("target").and_then(toml::Value::as_table) {
            for (cfg, t) in targets {
                for key in ["dependencies", "build-dependencies", "dev-dependencies"] {
                    if let Some(deps) = t.get(key) {
                        tables.push((format!("target.{cfg}.{key}"), deps));
                    }
                }
            }
        }
        for (key, deps) in tables {
            if deps.get(KIT).is_some() {
                assert!(
                    key.ends_with("dev-dependencies"),
                    "{}: {KIT} is test-only, but it is listed under [{key}]",
                    path.display()
                );
                runners.push(member.clone());
            }
        }
    }
    let mut must_run = vec![workspace().join("swalp-formats")];
    let plugins = std::fs::read_dir(workspace().join("plugins")).unwrap_or_else(|e| panic!("{e}"));
    for entry in plugins.flatten() {
        if entry.path().join("src/lib.rs").is_file() {
            must_run.push(entry.path());
        }
    }
    for dir in must_run {
        assert!(
            runners.contains(&dir),
            "{}: a format crate must list {KIT} under [dev-dependencies]",
            dir.display()
        );
        assert!(
            dir.join("tests/conformance.rs").is_file(),
            "{}: a format crate must run the conformance kit in tests/conformance.rs",
            dir.display()
        );
    }
}
