//! Structure checks over the source tree (no compilation involved):
//!
//! 1. The file-level import graph has no cycle, except among the core's role
//!    files (the replica dispatches to its roles and they call back into it).
//! 2. No source file of the `paxlog` crate or the core is longer than
//!    [`LINES_MAX`], except the files in [`LONG_FILES_ALLOWED`].
//!
//! How the graph is built: each crate's module tree is followed from its roots
//! (`lib.rs`, `main.rs`, `bin/*`) through `mod x;` declarations, so every file
//! knows its crate and module path. An edge `a -> b` is a path in `a` that
//! lands in `b`'s module: `use` declarations rooted at `crate`, `super`, `self`
//! or a child module, and paths in code that start with `crate::`, `super::`,
//! `self::` or a child module's name. A path walks modules as far as it can; when the next segment is an
//! item that the landing file re-exports (`pub use`), the path follows the
//! re-export to the file that defines it. A module's own `pub use` of its
//! descendants is its facade, not a dependency. Comments and string literals
//! are ignored. Paths into other crates cannot form cycles (Cargo forbids
//! cyclic crates) and are ignored.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Source trees whose files join the import graph.
const GRAPH_ROOTS: &[&str] = &["src", "net/src", "storage/src", "core/src"];
/// Source trees whose files have a length limit.
const LENGTH_ROOTS: &[&str] = &["src", "core/src"];
const LINES_MAX: usize = 400;
/// Files allowed above [`LINES_MAX`], each with the reason.
const LONG_FILES_ALLOWED: &[(&str, &str)] = &[
    (
        "src/core/tests.rs",
        "unit tests of the replica; scenarios read best in one file",
    ),
    (
        "core/src/tests.rs",
        "unit tests of the replica; scenarios read best in one file",
    ),
];
/// Core files that may depend on each other in a cycle.
const CORE_ROLE_FILES: &[&str] = &[
    "replica",
    "acceptor",
    "candidate",
    "leader",
    "leader_acks",
    "learner",
    "reconfig",
    "prevote",
    "read_index",
    "follower_read",
];

#[test]
fn no_import_cycles_outside_the_core_roles() {
    let root = workspace();
    let graph = Graph::build(&root);
    let in_graph: BTreeSet<&str> = graph.files.iter().map(|f| f.rel.as_str()).collect();
    let unreached: Vec<String> = GRAPH_ROOTS
        .iter()
        .flat_map(|tree| rust_files(&root.join(tree)))
        .map(|p| relative(&root, &p))
        .filter(|rel| !in_graph.contains(rel.as_str()))
        .collect();
    // A file the module walk missed would escape the check silently.
    assert!(
        unreached.is_empty(),
        "files not reached from a crate root through `mod x;` declarations: {unreached:?}"
    );
    let mut report = Vec::new();
    for component in graph.cycles() {
        if component
            .iter()
            .all(|&f| is_core_role_file(&graph.files[f].rel))
        {
            continue;
        }
        report.push(graph.describe_cycle(&component));
    }
    assert!(
        report.is_empty(),
        "import cycles between files ({}):\n\n{}",
        report.len(),
        report.join("\n\n")
    );
}

#[test]
fn no_long_source_files() {
    let root = workspace();
    let mut too_long = Vec::new();
    for tree in LENGTH_ROOTS {
        for path in rust_files(&root.join(tree)) {
            let rel = relative(&root, &path);
            let lines = read(&path).lines().count();
            let allowed = LONG_FILES_ALLOWED.iter().any(|(f, _)| *f == rel);
            if lines > LINES_MAX && !allowed {
                too_long.push(format!("{rel}: {lines} lines"));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "files above {LINES_MAX} lines (split them, or add them to LONG_FILES_ALLOWED with a reason):\n{}",
        too_long.join("\n")
    );
}

#[test]
fn the_graph_sees_paths_of_every_form() {
    let source = "use crate::a::{b::C, d};\nuse super::e;\nfn f() { crate::g::h(); self::i::J; child::k(); }\n";
    let tokens = lex(source);
    let parsed = parse(&tokens);
    let uses: Vec<String> = parsed.uses.iter().map(|u| u.path.join("::")).collect();
    assert_eq!(uses, ["crate::a::b::C", "crate::a::d", "super::e"]);
    let inline: Vec<String> = parsed.paths.iter().map(|p| p.path.join("::")).collect();
    assert_eq!(inline, ["crate::g::h", "self::i::J", "child::k"]);
    // Comments and strings hold no paths.
    let parsed = parse(&lex(
        "// use crate::x;\nlet s = \"crate::y\"; /* crate::z */",
    ));
    assert!(parsed.uses.is_empty() && parsed.paths.is_empty());
}

fn is_core_role_file(rel: &str) -> bool {
    let in_core = rel.starts_with("core/src/") || rel.starts_with("src/core/");
    let stem = Path::new(rel)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    in_core && CORE_ROLE_FILES.contains(&stem)
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

// ---- lexing: identifiers, `::` and punctuation, with line numbers ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

fn lex(source: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&chars, i) {
            line += chars[i..end].iter().filter(|&&c| c == '\n').count();
            i = end;
        } else if c == '"' || (c == 'b' && at(i + 1) == '"') {
            i += if c == 'b' { 2 } else { 1 };
            while i < chars.len() && chars[i] != '"' {
                line += usize::from(chars[i] == '\n');
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            let start = if c == 'b' { i + 1 } else { i };
            if at(start + 1) == '\\' {
                i = start + 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(start + 2) == '\'' {
                i = start + 3;
            } else {
                // A lifetime or label: skip the quote, its name lexes as an identifier.
                i = start + 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let word = word.strip_prefix("r#").unwrap_or(&word).to_string();
            out.push((Tok::Ident(word), line));
        } else if c == ':' && at(i + 1) == ':' {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// The end of a raw string literal (`r"…"`, `r#"…"#`, `br#"…"#`) starting at `i`.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take_while(|&&c| c == '#').count() >= hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

// ---- parsing: `mod x;`, `use` trees and inline paths ----

#[derive(Debug)]
struct PathRef {
    /// Segments as written, starting with `crate`, `super`, `self` or a name.
    path: Vec<String>,
    /// Inline modules enclosing the reference, outermost first.
    inline: Vec<String>,
    line: usize,
    /// `pub use`: also an export of the file's module under `name`.
    export: Option<String>,
}

#[derive(Debug, Default)]
struct Parsed {
    mods: Vec<String>,
    uses: Vec<PathRef>,
    paths: Vec<PathRef>,
}

fn ident(tok: Option<&(Tok, usize)>) -> Option<&str> {
    match tok {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

fn parse(tokens: &[(Tok, usize)]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let (tok, line) = &tokens[i];
        match tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some(name) = ident(tokens.get(i + 1)) {
                    match tokens.get(i + 2) {
                        Some((Tok::Punct(';'), _)) if inline.is_empty() => {
                            parsed.mods.push(name.to_string())
                        }
                        Some((Tok::Punct('{'), _)) => {
                            inline.push((name.to_string(), depth));
                            depth += 1;
                            i += 3;
                            continue;
                        }
                        _ => {}
                    }
                }
            }
            Tok::Ident(w) if w == "use" => {
                let public = is_public(tokens, i);
                let end = tokens[i..]
                    .iter()
                    .position(|(t, _)| *t == Tok::Punct(';'))
                    .map_or(tokens.len(), |p| i + p);
                let mut trees = Vec::new();
                use_tree(&tokens[i + 1..end], &[], &mut trees);
                let scope: Vec<String> = inline.iter().map(|(n, _)| n.clone()).collect();
                for (path, alias) in trees {
                    let name = alias.or_else(|| path.last().cloned());
                    parsed.uses.push(PathRef {
                        path,
                        inline: scope.clone(),
                        line: *line,
                        export: if public { name } else { None },
                    });
                }
                i = end + 1;
                continue;
            }
            // Any `x::…` in code: `crate`, `super`, `self`, or a child module
            // (`read::run(…)` in `cli/mod.rs`); paths into other crates or
            // types are dropped when resolved.
            Tok::Ident(w) => {
                let after_sep = i > 0 && tokens[i - 1].0 == Tok::PathSep;
                if !after_sep && tokens.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep) {
                    let mut path = vec![w.clone()];
                    let mut j = i + 1;
                    while tokens.get(j).map(|t| &t.0) == Some(&Tok::PathSep) {
                        match ident(tokens.get(j + 1)) {
                            Some(seg) => path.push(seg.to_string()),
                            None => break,
                        }
                        j += 2;
                    }
                    parsed.paths.push(PathRef {
                        path,
                        inline: inline.iter().map(|(n, _)| n.clone()).collect(),
                        line: *line,
                        export: None,
                    });
                    i = j;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    parsed
}

/// `pub use` or `pub(…) use`.
fn is_public(tokens: &[(Tok, usize)], use_at: usize) -> bool {
    let before = |n: usize| use_at.checked_sub(n).and_then(|k| tokens.get(k));
    if ident(before(1)) == Some("pub") {
        return true;
    }
    if before(1).map(|t| &t.0) == Some(&Tok::Punct(')')) {
        let open = (1..6).find(|&n| before(n).map(|t| &t.0) == Some(&Tok::Punct('(')));
        return open.is_some_and(|n| ident(before(n + 1)) == Some("pub"));
    }
    false
}

/// Flattens a use tree into full paths with their `as` alias; `a::{self}` is `a`.
fn use_tree(
    tokens: &[(Tok, usize)],
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    let mut path = prefix.to_vec();
    let mut alias = None;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].0 {
            Tok::Ident(w) if w == "as" => {
                alias = ident(tokens.get(i + 1)).map(str::to_string);
                i += 1;
            }
            Tok::Ident(w) if w == "self" && !prefix.is_empty() && path.len() == prefix.len() => {}
            Tok::Ident(w) => path.push(w.clone()),
            Tok::Punct('*') => path.push("*".into()),
            Tok::Punct('{') => {
                let close = matching_brace(tokens, i);
                for part in split_top_level(&tokens[i + 1..close.min(tokens.len())]) {
                    use_tree(part, &path, out);
                }
                return;
            }
            _ => {}
        }
        i += 1;
    }
    if !path.is_empty() {
        out.push((path, alias));
    }
}

fn matching_brace(tokens: &[(Tok, usize)], open: usize) -> usize {
    let mut depth = 0;
    for (k, (t, _)) in tokens.iter().enumerate().skip(open) {
        match t {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

fn split_top_level(tokens: &[(Tok, usize)]) -> Vec<&[(Tok, usize)]> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, (t, _)) in tokens.iter().enumerate() {
        match t {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                parts.push(&tokens[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

// ---- the graph ----

#[derive(Debug)]
struct File {
    rel: String,
    krate: String,
    module: Vec<String>,
    parsed: Parsed,
}

#[derive(Debug, Default)]
struct Graph {
    files: Vec<File>,
    modules: BTreeMap<(String, Vec<String>), usize>,
    /// Per file: exported name -> absolute path (module path and item).
    exports: Vec<BTreeMap<String, Vec<String>>>,
    /// (from, to) -> where the edge comes from, for the report.
    edges: BTreeMap<(usize, usize), String>,
}

impl Graph {
    fn build(root: &Path) -> Graph {
        let mut graph = Graph::default();
        for tree in GRAPH_ROOTS {
            let dir = root.join(tree);
            for crate_root in crate_roots(&dir) {
                let krate = relative(root, &crate_root);
                graph.add_module_tree(root, &krate, &crate_root);
            }
        }
        graph.exports = (0..graph.files.len())
            .map(|f| graph.exports_of(f))
            .collect();
        for f in 0..graph.files.len() {
            graph.add_edges(f);
        }
        graph
    }

    fn add_module_tree(&mut self, root: &Path, krate: &str, crate_root: &Path) {
        let mut todo = VecDeque::from([(crate_root.to_path_buf(), Vec::new(), true)]);
        while let Some((path, module, is_root)) = todo.pop_front() {
            let parsed = parse(&lex(&read(&path)));
            let parent = path.parent().unwrap_or(root).to_path_buf();
            let is_mod_rs = path.file_name().is_some_and(|n| n == "mod.rs");
            let children_dir = if is_root || is_mod_rs {
                parent
            } else {
                parent.join(path.file_stem().unwrap_or_default())
            };
            for child in &parsed.mods {
                let flat = children_dir.join(format!("{child}.rs"));
                let nested = children_dir.join(child).join("mod.rs");
                let file = if flat.exists() { flat } else { nested };
                if file.exists() {
                    let mut child_module = module.clone();
                    child_module.push(child.clone());
                    todo.push_back((file, child_module, false));
                }
            }
            self.modules
                .insert((krate.to_string(), module.clone()), self.files.len());
            self.files.push(File {
                rel: relative(root, &path),
                krate: krate.to_string(),
                module,
                parsed,
            });
        }
    }

    fn has_module(&self, krate: &str, module: &[String]) -> bool {
        self.modules
            .contains_key(&(krate.to_string(), module.to_vec()))
    }

    /// The absolute path (from the crate root) that `r`, written in file `f`,
    /// names; `None` for a path into another crate.
    fn absolute(&self, f: usize, r: &PathRef) -> Option<Vec<String>> {
        let file = &self.files[f];
        let mut base = file.module.clone();
        base.extend(r.inline.iter().cloned());
        let mut segs = r.path.iter().peekable();
        let mut module = match segs.peek().map(|s| s.as_str()) {
            Some("crate") => {
                segs.next();
                Vec::new()
            }
            Some("self") => {
                segs.next();
                base
            }
            Some("super") => {
                while segs.peek().is_some_and(|s| *s == "super") {
                    segs.next();
                    base.pop();
                }
                base
            }
            Some(first) => {
                let mut child = base.clone();
                child.push(first.to_string());
                if !self.has_module(&file.krate, &child) {
                    return None;
                }
                base
            }
            _ => return None,
        };
        module.extend(segs.cloned());
        Some(module)
    }

    fn exports_of(&self, f: usize) -> BTreeMap<String, Vec<String>> {
        let mut exports = BTreeMap::new();
        for r in &self.files[f].parsed.uses {
            if let (Some(name), true) = (&r.export, r.inline.is_empty()) {
                if let Some(path) = self.absolute(f, r) {
                    exports.insert(name.clone(), path);
                }
            }
        }
        exports
    }

    /// The file that defines what an absolute path names, following re-exports.
    fn resolve(&self, krate: &str, path: &[String], hops: usize) -> Option<usize> {
        let mut module = Vec::new();
        let mut rest = path;
        while let Some((seg, tail)) = rest.split_first() {
            let mut next = module.clone();
            next.push(seg.clone());
            if !self.has_module(krate, &next) {
                break;
            }
            module = next;
            rest = tail;
        }
        let file = *self.modules.get(&(krate.to_string(), module))?;
        if let Some((item, tail)) = rest.split_first() {
            if let Some(target) = self.exports[file].get(item).filter(|_| hops < 8) {
                let mut followed = target.clone();
                followed.extend(tail.iter().cloned());
                return self.resolve(krate, &followed, hops + 1).or(Some(file));
            }
        }
        Some(file)
    }

    fn add_edges(&mut self, f: usize) {
        let file = &self.files[f];
        let refs = file.parsed.uses.iter().chain(file.parsed.paths.iter());
        let mut found = Vec::new();
        for r in refs {
            let Some(path) = self.absolute(f, r) else {
                continue;
            };
            let Some(to) = self.resolve(&file.krate, &path, 0) else {
                continue;
            };
            let facade = r.export.is_some()
                && self.files[to].module.len() > file.module.len()
                && self.files[to].module.starts_with(&file.module);
            if to != f && !facade {
                let why = format!("{}:{} `{}`", file.rel, r.line, r.path.join("::"));
                found.push(((f, to), why));
            }
        }
        for (edge, why) in found {
            self.edges.entry(edge).or_insert(why);
        }
    }

    /// Strongly connected components with more than one file (Tarjan).
    fn cycles(&self) -> Vec<Vec<usize>> {
        let n = self.files.len();
        let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in self.edges.keys() {
            next[a].push(b);
        }
        let mut state = Tarjan {
            next,
            index: vec![None; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            counter: 0,
            components: Vec::new(),
        };
        for v in 0..n {
            if state.index[v].is_none() {
                state.visit(v);
            }
        }
        state
            .components
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect()
    }

    /// One concrete cycle through the component, each edge with its source line.
    fn describe_cycle(&self, component: &[usize]) -> String {
        let members: BTreeSet<usize> = component.iter().copied().collect();
        let start = *members.iter().next().unwrap_or(&0);
        // Shortest path back to `start` inside the component.
        let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closing = None;
        while let Some(v) = queue.pop_front() {
            for (&(a, b), _) in self.edges.range((v, 0)..(v + 1, 0)) {
                debug_assert_eq!(a, v);
                if b == start {
                    closing = Some(v);
                    break;
                }
                if members.contains(&b) && !came_from.contains_key(&b) {
                    came_from.insert(b, v);
                    queue.push_back(b);
                }
            }
            if closing.is_some() {
                break;
            }
        }
        let mut chain = vec![start];
        let mut v = closing.unwrap_or(start);
        while v != start {
            chain.push(v);
            v = came_from[&v];
        }
        chain[1..].reverse();
        chain.push(start);
        let names: Vec<&str> = chain.iter().map(|&f| self.files[f].rel.as_str()).collect();
        let mut out = format!("cycle: {}", names.join(" -> "));
        for pair in chain.windows(2) {
            out.push_str(&format!("\n    {}", self.edges[&(pair[0], pair[1])]));
        }
        if members.len() > chain.len() - 1 {
            let all: Vec<&str> = members
                .iter()
                .map(|&f| self.files[f].rel.as_str())
                .collect();
            out.push_str(&format!(
                "\n  (all files in this tangle: {})",
                all.join(", ")
            ));
        }
        out
    }
}

/// `lib.rs`, `main.rs`, `bin/*.rs` and `bin/*/main.rs` of one source tree.
fn crate_roots(dir: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir.join("bin")) {
        let mut bins: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .map(|p| if p.is_dir() { p.join("main.rs") } else { p })
            .filter(|p| p.extension().is_some_and(|e| e == "rs") && p.exists())
            .collect();
        bins.sort();
        roots.extend(bins);
    }
    roots
}

struct Tarjan {
    next: Vec<Vec<usize>>,
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    counter: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.counter);
        self.low[v] = self.counter;
        self.counter += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for k in 0..self.next[v].len() {
            let w = self.next[v][k];
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}
