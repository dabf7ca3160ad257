//! The repository documents itself: no file points to documents outside it,
//! and every relative link of the README and of `docs/` leads to a file
//! (and heading) that exists.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Repository-relative paths that are not part of the sources: build
/// output, git's own directory and what `.gitignore` lists (a local
/// virtualenv or fuzz corpus may hold anything).
fn ignored() -> HashSet<String> {
    let mut out: HashSet<String> = ["target", ".git"].map(String::from).into();
    let gitignore = std::fs::read_to_string(root().join(".gitignore")).unwrap_or_default();
    for line in gitignore.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        out.insert(line.trim_matches('/').to_owned());
    }
    out
}

/// Every text file of the repository, as (repository-relative path, text).
fn text_files() -> Vec<(String, String)> {
    let skip = ignored();
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let entries = std::fs::read_dir(root().join(&rel)).unwrap();
        for e in entries {
            let e = e.unwrap();
            let path = rel.join(e.file_name());
            let name = path.to_string_lossy().replace('\\', "/");
            if skip.contains(&name) || e.file_name() == "target" || e.file_name() == ".git" {
                continue;
            }
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                // Binary files (images, compiled fixtures) are not documents.
                if let Ok(text) = std::fs::read_to_string(root().join(&path)) {
                    out.push((name, text));
                }
            }
        }
    }
    out.sort();
    out
}

/// What a file says about documents outside the repository, if anything.
/// The needles are assembled so that this file does not match itself.
fn outside_references(rel: &str, text: &str) -> Vec<String> {
    let forbidden = [
        ["..", "/shared"].concat(),
        ["DESIGN", ".md"].concat(),
        ["DEPENDENCIES", ".md"].concat(),
    ];
    let formats = ["FORMATS", ".md"].concat();
    let in_docs = rel.starts_with("docs/");
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for needle in &forbidden {
            if line.contains(needle.as_str()) {
                found.push(format!("{rel}:{}: {needle}: {line}", n + 1));
            }
        }
        // The formats document may only be docs/FORMATS.md: named
        // with its folder, or bare from a sibling inside docs/.
        for (at, _) in line.match_indices(formats.as_str()) {
            if !(line[..at].ends_with("docs/") || in_docs) {
                found.push(format!("{rel}:{}: {formats}: {line}", n + 1));
            }
        }
    }
    found
}

#[test]
fn no_file_points_outside_the_repository() {
    let files = text_files();
    assert!(
        files.iter().any(|(p, _)| p == "README.md") && files.iter().any(|(p, _)| p == "src/lib.rs"),
        "the walk missed the repository's own files"
    );
    let found: Vec<String> = files
        .iter()
        .flat_map(|(rel, text)| outside_references(rel, text))
        .collect();
    assert!(
        found.is_empty(),
        "files refer to documents outside the repository (point to docs/FORMATS.md or \
         docs/ARCHITECTURE.md, or state the fact):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_catches_what_it_is_for() {
    let bad = [
        ["see ..", "/shared/x"].concat(),
        ["as DESIGN", ".md says"].concat(),
        ["DEPENDENCIES", ".md"].concat(),
        ["FORMATS", ".md §2"].concat(),
        ["other/FORMATS", ".md"].concat(),
    ];
    for text in &bad {
        assert_eq!(outside_references("src/x.rs", text).len(), 1, "{text}");
    }
    let good = ["docs/FORMATS", ".md, RAPL"].concat();
    assert!(outside_references("src/x.rs", &good).is_empty());
    let sibling = ["[formats](FORMATS", ".md)"].concat();
    assert!(outside_references("docs/ARCHITECTURE.md", &sibling).is_empty());
    assert_eq!(outside_references("README.md", &sibling).len(), 1);
}

/// The inline links `[text](target)` of a markdown text, outside code
/// blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            out.push(rest[..end].trim().to_owned());
            rest = &rest[end..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown text's headings; a repeated heading gets
/// `-1`, `-2` … as GitHub numbers them.
fn anchors(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        if fenced {
            continue;
        }
        let base = slug(heading.trim_start_matches('#'));
        let mut name = base.clone();
        let mut n = 0;
        while out.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        out.insert(name);
    }
    out
}

#[test]
fn readme_and_docs_links_resolve() {
    let mut docs: Vec<PathBuf> = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    assert!(
        docs.iter().any(|p| p.ends_with("docs/ARCHITECTURE.md"))
            && docs.iter().any(|p| p.ends_with("docs/FORMATS.md")),
        "docs/ARCHITECTURE.md and docs/FORMATS.md must exist"
    );
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let dir = doc.parent().unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match link.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                doc.clone()
            } else {
                dir.join(file)
            };
            checked += 1;
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", doc.display()));
                continue;
            }
            if let Some(anchor) = anchor.filter(|_| target.extension().is_some_and(|x| x == "md")) {
                let text = std::fs::read_to_string(&target).unwrap();
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{}: {link}: no such heading", doc.display()));
                }
            }
        }
    }
    assert!(checked > 10, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_links_the_docs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let links = links(&readme);
    for doc in ["docs/ARCHITECTURE.md", "docs/FORMATS.md"] {
        assert!(
            links.iter().any(|l| l == doc),
            "README.md does not link {doc}"
        );
    }
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Processes (`/proc/<pid>`)"), "processes-procpid");
    assert_eq!(slug("Standard names (`[compat]`)"), "standard-names-compat");
    assert_eq!(
        slug("OTLP: what the agent sends"),
        "otlp-what-the-agent-sends"
    );
    let a = anchors("# A\n## A\n```\n# not a heading\n```\n");
    assert!(a.contains("a") && a.contains("a-1") && !a.contains("not-a-heading"));
}
