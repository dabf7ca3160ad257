//! The crate's layering, checked: every file under `src/` is scanned for the
//! paths it names (`crate::…`, `super::…`, and `unamentis_agent::…` in the
//! binary), each becomes an edge between top-level modules, and the test
//! fails on any import cycle and on any import of a higher layer.
//!
//! Code under `#[cfg(test)]` is left out: a test may reach up (a reader's
//! test that maps its stats to points), what ships may not. Comments and
//! string literals are blanked before the scan, so a doc comment naming a
//! module is not an import. The rules are written down in
//! docs/ARCHITECTURE.md ("Layering rules").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A module may import modules of its own layer or a lower
/// one, never a higher one; within a layer the cycle check keeps the
/// imports one-way. Every top-level module must be listed.
const LAYERS: &[(&str, &[&str])] = &[
    // Knows nothing else of the crate but each other: file access through
    // `HostPaths`, the generated registry, value checks shared by `config`
    // and the sources, the point type, counters shared across layers.
    (
        "base",
        &["host", "semconv", "url", "patterns", "point", "counters"],
    ),
    // The readers layer: readers
    // several families share, the `Source` trait and the
    // `Snapshot` they fill (it holds each family's stats without knowing
    // their types). It knows nothing of the configuration: a source
    // receives its settings as values.
    ("sources", &["sources"]),
    // The configuration model, defaults, layering and validation.
    ("config", &["config"]),
    // Metric families, one folder each: stats, parsers, source, config
    // section and mapping to points.
    ("families", &["families"]),
    // Steps that read what the readers wrote in the same cycle: idle and
    // activity accounting, the `[compat]` standard names.
    ("derived", &["activity", "compat"]),
    // The cycle's source list in sampling order: the readers, then the
    // derived steps over them. Only the CLI and `doctor` build it.
    ("pipeline", &["pipeline"]),
    // The mapping of a snapshot to points, the sampler, the cycle.
    ("snapshot", &["snapshot"]),
    // What consumes points or the sampler: the text format, the OTLP
    // encoder and exporter, `doctor`.
    ("output", &["prometheus", "export", "doctor"]),
    // Wiring: the cycle thread with its export, and the local server.
    ("wiring", &["telemetry", "server"]),
    // The binary.
    ("cli", &["main"]),
];

/// Edges allowed to break the rules above, each with why. Empty: the
/// layering holds without exceptions.
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Use {
    file: String,
    line: usize,
}

type Graph = BTreeMap<String, BTreeMap<String, Vec<Use>>>;

/// Comments, string and char literals replaced by spaces (newlines kept,
/// so line numbers stay right); lifetimes and everything else as written.
fn blank_comments_and_strings(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if (c[i] == 'r' || (c[i] == 'b' && next == Some('r')))
            && !c[..i]
                .last()
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
            && {
                let start = if c[i] == 'b' { i + 2 } else { i + 1 };
                let hashes = c[start..].iter().take_while(|h| **h == '#').count();
                c.get(start + hashes) == Some(&'"')
            }
        {
            // Raw string: r"…", r#"…"#, br"…".
            let start = if c[i] == 'b' { i + 2 } else { i + 1 };
            let hashes = c[start..].iter().take_while(|h| **h == '#').count();
            let mut j = start + hashes + 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"'
                    && c[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|h| **h == '#')
                        .count()
                        == hashes
                {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &c[i..j.min(c.len())] {
                blank(&mut out, ch);
            }
            i = j;
        } else if c[i] == '"' {
            blank(&mut out, c[i]);
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            if i < c.len() {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if next == Some('\\') {
                c.get(i + 3..)
                    .and_then(|r| r.iter().position(|&x| x == '\''))
                    .map(|p| i + 3 + p)
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    for &ch in &c[i..=e] {
                        blank(&mut out, ch);
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c[i]);
                    i += 1;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

fn ident_at(c: &[char], i: usize) -> Option<String> {
    let s: String = c[i..].iter().take_while(|&&ch| is_ident(ch)).collect();
    (!s.is_empty()).then_some(s)
}

fn skip_ws(c: &[char], mut i: usize) -> usize {
    while i < c.len() && c[i].is_whitespace() {
        i += 1;
    }
    i
}

/// First segments of each entry of a `{a::b, c, d::{e}}` group at `i`.
fn group_heads(c: &[char], i: usize) -> Vec<String> {
    let (mut depth, mut heads, mut j, mut expect) = (0, Vec::new(), i, true);
    while j < c.len() {
        match c[j] {
            '{' => {
                depth += 1;
                expect = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect = true,
            ch if expect && depth == 1 && is_ident(ch) => {
                if let Some(id) = ident_at(c, j) {
                    j += id.len();
                    heads.push(id);
                    expect = false;
                    continue;
                }
            }
            _ => {}
        }
        j += 1;
    }
    heads
}

/// Where `#[cfg(test)]` or `#[cfg(all(test, …))]` at `i` ends.
fn test_only_attr(c: &[char], i: usize) -> Option<usize> {
    if c[i..].iter().take(6).collect::<String>() != "#[cfg(" {
        return None;
    }
    let end = i + c[i..].iter().position(|&x| x == ']')?;
    let inner: String = c[i + 6..end]
        .iter()
        .filter(|x| !x.is_whitespace())
        .collect();
    (inner == "test)" || inner.starts_with("all(test,")).then_some(end + 1)
}

/// The top-level modules `src` (the file at module path `module`) names
/// outside `#[cfg(test)]`, with the line of each mention.
fn scan(src: &str, module: &[String], crate_name: &str) -> Vec<(String, usize)> {
    let text = blank_comments_and_strings(src);
    let c: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut line = 1;
    // Inline `mod x {`: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let word_start = |i: usize| i == 0 || !(is_ident(c[i - 1]) || c[i - 1] == ':');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
        }
        if let Some(attr_end) = test_only_attr(&c, i) {
            // Skip the item it applies to: through its `;` or its block.
            let mut j = attr_end;
            while j < c.len() && c[j] != '{' && c[j] != ';' {
                j += 1;
            }
            if j < c.len() && c[j] == '{' {
                let mut d = 0;
                while j < c.len() {
                    match c[j] {
                        '{' => d += 1,
                        '}' => {
                            d -= 1;
                            if d == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
            }
            line += c[i..j.min(c.len())].iter().filter(|&&x| x == '\n').count();
            i = j + 1;
            continue;
        }
        match ch {
            '{' => depth += 1,
            '}' => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        if word_start(i) && c[i..].iter().take(4).collect::<String>() == "mod " {
            let j = skip_ws(&c, i + 4);
            if let Some(name) = ident_at(&c, j) {
                let k = skip_ws(&c, j + name.len());
                if c.get(k) == Some(&'{') {
                    inline.push((name, depth + 1));
                }
            }
        }
        if !word_start(i) || !is_ident(ch) {
            i += 1;
            continue;
        }
        let Some(word) = ident_at(&c, i) else {
            i += 1;
            continue;
        };
        let after = i + word.len();
        let path_follows = c[after..].iter().take(2).collect::<String>() == "::";
        if !path_follows || (word != "crate" && word != "super" && word != crate_name) {
            i = after;
            continue;
        }
        // Resolve to an absolute path prefix, then take the next segment(s).
        let mut base: Vec<String> = module.to_vec();
        base.extend(inline.iter().map(|(n, _)| n.clone()));
        let mut j = after + 2;
        if word == "crate" || word == crate_name {
            base.clear();
        } else {
            base.pop();
            while c[j..].iter().take(7).collect::<String>() == "super::" {
                base.pop();
                j += 7;
            }
        }
        let heads = if !base.is_empty() {
            vec![base[0].clone()]
        } else if c.get(j) == Some(&'{') {
            group_heads(&c, j)
        } else {
            ident_at(&c, j).into_iter().collect()
        };
        for h in heads {
            found.push((h, line));
        }
        i = j;
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/` (`families/gpu/mod.rs` →
/// `families::gpu`); the binary is `main`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

fn crate_graph() -> (Graph, BTreeSet<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut graph = Graph::new();
    let mut modules = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = module_path(rel);
        let Some(top) = module.first().cloned() else {
            continue; // lib.rs: the module list only
        };
        modules.insert(top.clone());
        let text = std::fs::read_to_string(f).unwrap();
        let name = rel.display().to_string();
        for (target, line) in scan(&text, &module, "unamentis_agent") {
            if target == top || target == "self" {
                continue;
            }
            graph
                .entry(top.clone())
                .or_default()
                .entry(target)
                .or_default()
                .push(Use {
                    file: name.clone(),
                    line,
                });
        }
    }
    // Names that are not modules (a root item, a macro path) are no edge.
    for targets in graph.values_mut() {
        targets.retain(|t, _| modules.contains(t));
    }
    (graph, modules)
}

/// Strongly connected components with more than one member (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'g> {
        g: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on: BTreeSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(t: &mut T<'g>, v: &'g str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                scc.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let mut nodes: BTreeSet<&str> = graph.keys().map(String::as_str).collect();
    nodes.extend(graph.values().flatten().map(String::as_str));
    for v in nodes {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out.sort();
    t.out
}

fn simple(graph: &Graph) -> BTreeMap<String, BTreeSet<String>> {
    graph
        .iter()
        .map(|(k, v)| (k.clone(), v.keys().cloned().collect()))
        .collect()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

fn first_use(graph: &Graph, from: &str, to: &str) -> String {
    graph[from][to]
        .first()
        .map(|u| format!("src/{}:{}", u.file, u.line))
        .unwrap_or_default()
}

#[test]
fn no_import_cycle_between_modules() {
    let (graph, _) = crate_graph();
    let found = cycles(&simple(&graph));
    let mut report = String::new();
    for scc in &found {
        report.push_str(&format!("cycle among {}:\n", scc.join(", ")));
        for a in scc {
            for b in scc {
                if graph.get(a).is_some_and(|t| t.contains_key(b)) {
                    report.push_str(&format!("  {a} -> {b} ({})\n", first_use(&graph, a, b)));
                }
            }
        }
    }
    assert!(found.is_empty(), "import cycles:\n{report}");
}

#[test]
fn no_module_imports_a_higher_layer() {
    let (graph, modules) = crate_graph();
    let unplaced: Vec<_> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS in tests/layering.rs (and docs/ARCHITECTURE.md): {unplaced:?}"
    );
    let listed: BTreeSet<&str> = LAYERS
        .iter()
        .flat_map(|(_, ms)| ms.iter().copied())
        .collect();
    let gone: Vec<_> = listed.iter().filter(|m| !modules.contains(**m)).collect();
    assert!(
        gone.is_empty(),
        "LAYERS lists modules that do not exist: {gone:?}"
    );
    let mut bad = Vec::new();
    for (from, targets) in &graph {
        for to in targets.keys() {
            let (lf, lt) = (layer_of(from).unwrap(), layer_of(to).unwrap());
            if lt > lf && !EXCEPTIONS.iter().any(|(f, t, _)| f == from && t == to) {
                bad.push(format!(
                    "{from} ({}) imports {to} ({}) at {}",
                    LAYERS[lf].0,
                    LAYERS[lt].0,
                    first_use(&graph, from, to)
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports of a higher layer:\n{}",
        bad.join("\n")
    );
}

#[test]
fn architecture_doc_lists_the_same_layers() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ARCHITECTURE.md"))
            .unwrap();
    for (layer, modules) in LAYERS {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| {layer} | ")))
            .unwrap_or_else(|| panic!("docs/ARCHITECTURE.md has no row for layer {layer}"));
        // The second cell: the layer's modules, each in backticks.
        let cell = row.split('|').nth(2).unwrap();
        let named: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        assert_eq!(named, *modules, "docs/ARCHITECTURE.md, layer {layer}");
    }
}

// The checker itself, on inputs whose answer is known.

fn graph_of(edges: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in edges {
        g.entry((*a).into()).or_default().insert((*b).into());
    }
    g
}

#[test]
fn cycle_finder_names_each_cycle_and_nothing_else() {
    let g = graph_of(&[
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "d"),
        ("d", "e"),
        ("e", "d"),
        ("f", "a"),
    ]);
    assert_eq!(
        cycles(&g),
        vec![vec!["a", "b", "c"], vec!["d", "e"]]
            .into_iter()
            .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
    let dag = graph_of(&[("a", "b"), ("b", "c"), ("a", "c"), ("f", "a")]);
    assert!(cycles(&dag).is_empty());
}

#[test]
fn scanner_reads_paths_and_skips_comments_strings_and_tests() {
    let src = r##"
//! Doc naming crate::nope.
use crate::{alpha, beta::{x, y}, gamma::Z};
use super::sibling;
use super::super::parent_level;
fn f<'a>(s: &'a str) -> char {
    let _ = "crate::in_string";
    let _ = r#"crate::raw"#;
    let _ = crate::delta::call();
    '{'
}
mod inner {
    use super::super::outer;
}
#[cfg(test)]
mod tests {
    use crate::test_only;
}
#[cfg(all(test, target_os = "linux"))]
mod linux_tests {
    use crate::test_only;
    fn g() { let _ = '}'; }
}
pub fn after() { unamentis_agent::epsilon::f(); }
fn last() { crate::zeta::f(); }
"##;
    let module = vec!["sources".to_owned(), "cpu".to_owned()];
    let found: Vec<String> = scan(src, &module, "unamentis_agent")
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(
        found,
        [
            "alpha",
            "beta",
            "gamma",
            "sources",
            "parent_level",
            "delta",
            "sources",
            "epsilon",
            "zeta"
        ]
    );
    let lines: Vec<usize> = scan(src, &module, "x")
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(lines, [3, 3, 3, 4, 5, 9, 13, 25]);
}
