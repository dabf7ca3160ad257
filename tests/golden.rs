//! Golden end-to-end files: the real binary's `snapshot --json` over each
//! fixture host tree (`tests/fixtures/hosts/<tree>`), with `[compat]`
//! hostmetrics and hw on, compared with `tests/golden/<tree>.json`. Any
//! change of a metric name, instrument, unit, attribute or value shows as a
//! diff of that file; `UPDATE_GOLDEN=1 cargo test --test golden` rewrites
//! the files for review.
//!
//! The inputs are fixed: the host is the tree alone (its `/proc` has no
//! process directories and no `self`, so neither this machine's processes
//! nor its sockets are seen), NVML and nvidia-smi point at paths that do not
//! exist (only a tree's amdgpu sysfs can answer), Ollama is off, and the
//! window is 0 (one baseline and one sample of unchanged files: CPU
//! percentages are absent, counter rates are 0). What still depends on the
//! clock or on this machine is replaced by a placeholder (see
//! `placeholder`; the binary has no fake clock, each source reads `Instant`
//! itself); each tree runs twice to show nothing else does.
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use support::fixtures::{fixture, host_copy, toml_string};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn config(root: &Path, compat: bool) -> String {
    let q = |sub: &str| toml_string(&root.join(sub));
    format!(
        "[host]\nproc = {}\nsys = {}\nroot = {}\n\n\
         [gpu]\nenabled = true\n\
         nvml_library = \"/nonexistent/libnvidia-ml.so.1\"\n\
         nvidia_smi = \"/nonexistent/nvidia-smi\"\n\n\
         [ollama]\nenabled = false\n\n\
         [compat]\nhostmetrics = {compat}\nhw = {compat}\n",
        q("proc"),
        q("sys"),
        q("root"),
    )
}

/// The value that stands for a point's measured value when that value
/// depends on the clock or on this machine rather than on the tree.
fn placeholder(name: &str, attrs: &Map<String, Value>) -> Option<&'static str> {
    let attr = |k: &str| attrs.get(k).and_then(Value::as_str);
    match name {
        // How long each source's read took.
        "unamentis.server.agent.collection.duration" => Some("<read time>"),
        // The idle clock runs from the agent's start.
        "unamentis.server.idle.duration_seconds" => Some("<time since start>"),
        // A battery gives power, not energy: its joules are watts × the
        // time since the source was built.
        "unamentis.server.energy.joules" if attr("domain") == Some("battery") => {
            Some("<watts × time since start>")
        }
        "hw.energy" if attr("hw.id") == Some("battery") => Some("<watts × time since start>"),
        // statvfs of the mount points under the tree's root: this machine's
        // filesystem (the mounts themselves come from the tree).
        "system.filesystem.usage" | "system.filesystem.inodes.usage" => Some("<statvfs here>"),
        _ => None,
    }
}

/// Runs the binary once and renders its output as the golden text: the
/// resource, then one point per line sorted by name and attributes (the
/// binary's order follows its source list, which may move).
fn render(root: &Path, compat: bool) -> String {
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), config(root, compat)).unwrap();
    let json = support::snapshot_json::run(
        support::agent::command()
            .arg("--config")
            .arg(cfg.path())
            .args(["snapshot", "--json", "--window", "0s"]),
    );

    let mut out = String::from("{\n  \"resource\": {\n");
    let resource = json["resource"].as_object().expect("a resource object");
    let mut rows: Vec<String> = resource
        .iter()
        .map(|(k, v)| {
            // The version moves with every release, not with the tree.
            let v = if k == "service.version" {
                assert_eq!(v, env!("CARGO_PKG_VERSION"));
                Value::from("<CARGO_PKG_VERSION>")
            } else {
                v.clone()
            };
            format!("    {}: {}", Value::from(k.as_str()), v)
        })
        .collect();
    rows.sort();
    out.push_str(&rows.join(",\n"));
    out.push_str("\n  },\n  \"metrics\": [\n");

    let mut lines: Vec<String> = support::snapshot_json::metrics(&json)
        .iter()
        .map(point_line)
        .collect();
    lines.sort();
    out.push_str(&lines.join(",\n"));
    out.push_str("\n  ]\n}\n");
    out
}

/// One point as one line of JSON: name, attributes (sorted), instrument,
/// unit, value, then any other field the binary adds.
fn point_line(point: &Value) -> String {
    let mut p = point.as_object().expect("a point object").clone();
    let name = p["name"].as_str().expect("a name").to_owned();
    let attrs = p["attributes"].as_object().expect("attributes").clone();
    if let Some(text) = placeholder(&name, &attrs) {
        let v = p["value"].as_f64();
        assert!(
            v.is_some_and(|v| v.is_finite() && v >= 0.0),
            "{name} {attrs:?}: {v:?}"
        );
        p.insert("value".into(), Value::from(text));
    }
    let mut sorted: Vec<(&String, &Value)> = attrs.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    let attrs = sorted
        .iter()
        .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), v))
        .collect::<Vec<_>>()
        .join(", ");
    let mut fields = vec![
        format!("\"name\": {}", p["name"]),
        format!("\"attributes\": {{{attrs}}}"),
    ];
    for key in ["instrument", "unit", "value"] {
        fields.push(format!("\"{key}\": {}", p[key]));
    }
    let mut rest: Vec<_> = p
        .iter()
        .filter(|(k, _)| {
            !["name", "attributes", "instrument", "unit", "value"].contains(&k.as_str())
        })
        .map(|(k, v)| format!("{}: {v}", Value::from(k.as_str())))
        .collect();
    rest.sort();
    fields.extend(rest);
    format!("    {{{}}}", fields.join(", "))
}

/// The lines that differ, with two lines of context, `-` for `old` and `+`
/// for `new` (a longest common subsequence; the files are small).
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near = |k: usize| {
        ops[k.saturating_sub(2)..(k + 3).min(ops.len())]
            .iter()
            .any(|(op, _)| *op != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (op, line)) in ops.iter().enumerate() {
        if near(k) {
            if skipped {
                out.push_str("@@ … @@\n");
                skipped = false;
            }
            out.push_str(&format!("{op}{line}\n"));
        } else {
            skipped = true;
        }
    }
    out
}

fn file_name(tree: &str, compat: bool) -> String {
    if compat {
        format!("{tree}.json")
    } else {
        format!("{tree}.no-compat.json")
    }
}

fn check(tree: &str, compat: bool) {
    let dir = host_copy(tree);
    let first = render(dir.path(), compat);
    let second = render(dir.path(), compat);
    assert!(
        first == second,
        "{tree}: two runs over the same files differ (a value that depends on the clock or on \
         this machine needs a placeholder):\n{}",
        diff(&first, &second)
    );

    let path = golden_dir().join(file_name(tree, compat));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, &first).unwrap();
        return;
    }
    let hint = "UPDATE_GOLDEN=1 cargo test --test golden";
    let Ok(want) = std::fs::read_to_string(&path) else {
        panic!("no {}: write it with {hint}", path.display());
    };
    assert!(
        want == first,
        "{} differs from the binary's output (- file, + now):\n{}\n\
         If the change is intended: {hint}, and review the diff.",
        path.display(),
        diff(&want, &first)
    );
}

macro_rules! golden {
    ($($test:ident: $tree:literal),* $(,)?) => {
        const TREES: &[&str] = &[$($tree),*];
        $(
            #[test]
            fn $test() {
                check($tree, true);
            }
        )*
    };
}

golden! {
    acpitz_only: "acpitz-only",
    amd_desktop: "amd-desktop",
    amdgpu_mixed: "amdgpu-mixed",
    broken: "broken",
    compat_2cpu: "compat-2cpu",
    coretemp_physical_id: "coretemp-physical-id",
    intel_laptop: "intel-laptop",
    jetson_orin: "jetson-orin",
    laptop_4c8t: "laptop-4c8t",
    odroid_c2: "odroid-c2",
    odroid_xu4: "odroid-xu4",
    rpi3_bcm2835: "rpi3-bcm2835",
    rpi4: "rpi4",
    server_old_kernel: "server-old-kernel",
    vm_2cpu: "vm-2cpu",
    xeon_12s: "xeon-12s",
    xeon_2s_ids: "xeon-2s-ids",
}

/// Without `[compat]`: no `system.*` or `hw.*` point, no filesystem source.
const WITHOUT_COMPAT: &str = "intel-laptop";

#[test]
fn intel_laptop_without_compat() {
    check(WITHOUT_COMPAT, false);
}

#[test]
fn every_tree_has_a_golden_test_and_every_golden_file_a_tree() {
    let trees: BTreeSet<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    let tested: BTreeSet<String> = TREES.iter().map(|t| t.to_string()).collect();
    assert_eq!(trees, tested, "add the new tree to `golden!`");

    let files: BTreeSet<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut want: BTreeSet<String> = TREES.iter().map(|t| file_name(t, true)).collect();
    want.insert(file_name(WITHOUT_COMPAT, false));
    assert_eq!(
        files, want,
        "golden files without a test, or tests without a file"
    );
}

#[test]
fn diff_shows_the_changed_lines_with_context() {
    let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n";
    let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\nl\nm\n";
    assert_eq!(
        diff(old, new),
        "@@ … @@\n b\n c\n-d\n+D\n e\n f\n@@ … @@\n k\n l\n+m\n"
    );
    assert_eq!(diff(old, old), "");
}
