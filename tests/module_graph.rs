//! The library's modules import downward only: no circle between them, and
//! nothing in the library knows the command line (clap or `cli`), which
//! belongs to the binary. Read from the source text, so a new upward import
//! fails here with the path that closes the circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Library files (the binary's `main.rs` and `cli` are not the library).
fn library_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("cli") {
                library_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_name().unwrap().to_str().unwrap();
            // Test-only modules may reach anywhere.
            if !matches!(name, "main.rs" | "cli.rs" | "logging.rs" | "tests.rs") {
                out.push(path);
            }
        }
    }
}

/// `src/http/json.rs` → `http::json`; `src/queue/kafka/mod.rs` → `queue::kafka`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap()).collect();
    let parts = match parts.as_slice() {
        [rest @ .., "mod"] | [rest @ .., "lib"] => rest.to_vec(),
        all => all.to_vec(),
    };
    parts.join("::")
}

/// Every `crate::…` / `super::…` path in the text before its tests, with one
/// level of `{a, b::c}` groups expanded.
fn paths(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for (i, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let prev = code[..i].chars().last();
        if prev.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let (head, after) = rest.split_at(end);
        match after.strip_prefix('{') {
            Some(group) => {
                for item in group[..group.find('}').unwrap_or(0)].split(',') {
                    out.push(format!("{head}{}", item.trim()));
                }
            }
            None => out.push(head.to_string()),
        }
    }
    out
}

/// The longest known module a path names, from module `from`.
fn resolve(path: &str, from: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segs: Vec<String> = Vec::new();
    let mut parts = path.split("::").filter(|s| !s.is_empty()).peekable();
    match parts.peek().copied() {
        Some("crate") => {
            parts.next();
        }
        Some("super") => {
            segs = from.split("::").map(str::to_string).collect();
            while parts.peek() == Some(&"super") {
                parts.next();
                segs.pop();
            }
        }
        _ => return None,
    }
    let mut best = None;
    for p in parts {
        segs.push(p.to_string());
        let candidate = segs.join("::");
        if modules.contains(&candidate) {
            best = Some(candidate);
        }
    }
    best
}

#[test]
fn library_modules_import_downward_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    library_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for word in ["clap", "crate::cli"] {
            assert!(
                !text.contains(&format!("{word}::")),
                "{}: the library must not know the command line ({word})",
                file.display()
            );
        }
        for path in paths(&text) {
            if let Some(to) = resolve(&path, &from, &modules) {
                // A module may use what it contains or is contained in.
                let nested =
                    to.starts_with(&format!("{from}::")) || from.starts_with(&format!("{to}::"));
                if to != from && !nested && !to.is_empty() {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    assert!(
        edges
            .get("http::ingest")
            .is_some_and(|e| e.contains("http::admit")),
        "the reader found no imports at all: {edges:?}"
    );
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = stack.iter().position(|n| n == node) {
            panic!("import circle: {} → {node}", stack[at..].join(" → "));
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, stack, done);
        }
        stack.pop();
        done.insert(node.to_string());
    }
    let mut done = BTreeSet::new();
    for node in &modules {
        visit(node, &edges, &mut Vec::new(), &mut done);
    }
}

/// The modules whose insides the HTTP layer must not reach: each decodes
/// and maps its protocol behind what it exports at its root.
const PROTOCOLS: [&str; 4] = ["batch", "remote_write", "influx", "otlp"];

/// An HTTP handler uses a protocol only through what the protocol's module
/// exports at its root (its decode entry point and its types), never a
/// module inside it (`remote_write::decode`, `remote_write::labels`,
/// `influx::line`, `otlp::convert`, …): decoding and mapping stay the
/// protocol's. Caught in `crate::`/`super::` paths and in paths through an
/// imported module name (`remote_write::types::TypeCache`). A function the
/// root re-exports under its module's name (`decode`) is called through
/// the root: `remote_write::decode(…)`.
#[test]
fn http_uses_protocols_through_their_entry_points() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    library_files(&src, &mut all);
    let modules: BTreeSet<String> = all.iter().map(|f| module_of(&src, f)).collect();
    let inside: Vec<&String> = modules
        .iter()
        .filter(|m| PROTOCOLS.iter().any(|p| m.starts_with(&format!("{p}::"))))
        .collect();
    assert!(
        inside.iter().any(|m| *m == "remote_write::decode"),
        "the reader found no protocol internals: {inside:?}"
    );
    let mut http = Vec::new();
    library_files(&src.join("http"), &mut http);
    let mut roots = BTreeSet::new();
    let mut wrong = Vec::new();
    for file in &http {
        let from = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for path in paths(&text) {
            match resolve(&path, &from, &modules) {
                Some(to) if inside.contains(&&to) => {
                    wrong.push(format!("{}: {path}", file.display()))
                }
                Some(to) if PROTOCOLS.contains(&to.as_str()) => {
                    roots.insert(to);
                }
                _ => {}
            }
        }
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for module in &inside {
            for (i, _) in code.match_indices(&format!("{module}::")) {
                let prev = code[..i].chars().last();
                if !prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    wrong.push(format!("{}: {module}::…", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the HTTP layer reaches inside a protocol module; use what the module \
         exports at its root:\n{}",
        wrong.join("\n")
    );
    // The check saw the HTTP layer use every protocol, through its root.
    assert_eq!(roots.len(), PROTOCOLS.len(), "{roots:?}");
}
