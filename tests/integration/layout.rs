//! The shape of the host's source (issue 11): dependencies between its
//! top-level modules point one way, and no file grows past 500 lines.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("host/src is readable") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn host_src() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    (src, files)
}

/// The code of a file without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests {").next().unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules `code` names through `crate::`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}};`: the first name of each item.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_ascii_alphabetic() || c == '_') => {
                        found.insert(ident(&group[i..]).to_owned());
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest).to_owned());
        }
    }
    found
}

#[test]
fn host_modules_import_each_other_in_one_direction_only() {
    let (src, files) = host_src();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.components().next().unwrap().as_os_str();
        let top = top.to_str().unwrap().trim_end_matches(".rs").to_owned();
        if top == "lib" || top == "main" || relative.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let deps = graph.entry(top.clone()).or_default();
        deps.extend(
            crate_modules(&code(&text))
                .into_iter()
                .filter(|m| *m != top),
        );
    }
    assert!(
        graph.len() > 10,
        "the host's modules were not found: {graph:?}"
    );
    // Peel off modules that import nothing left; what remains is a cycle.
    let mut left = graph.clone();
    while let Some(leaf) = left
        .iter()
        .find(|(_, deps)| deps.iter().all(|d| !left.contains_key(d)))
        .map(|(m, _)| m.clone())
    {
        left.remove(&leaf);
    }
    assert!(
        left.is_empty(),
        "these host modules import each other in a cycle: {left:#?}"
    );
}

#[test]
fn no_host_source_file_is_over_500_lines() {
    let (src, files) = host_src();
    let long: Vec<_> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, lines)| *lines > 500)
        .map(|(f, lines)| format!("{} ({lines})", f.strip_prefix(&src).unwrap().display()))
        .collect();
    assert!(long.is_empty(), "split these files: {long:?}");
}

#[test]
fn the_import_scan_sees_grouped_and_nested_paths() {
    let found = crate_modules(
        "use crate::{a, b::c, d::{e, f}};\nlet x = crate::g::h();\n// crate::comment",
    );
    let names: Vec<_> = found.iter().map(String::as_str).collect();
    assert_eq!(names, ["a", "b", "comment", "d", "g"]);
    assert!(!crate_modules(&code("// crate::comment\n")).contains("comment"));
}
