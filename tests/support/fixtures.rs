//! Fixture host trees (`tests/fixtures/hosts/<name>`) copied to a temp dir
//! so a test can change files between cycles.

use std::path::{Path, PathBuf};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hosts")
        .join(name)
}

/// Copies a tree, links as links; the `.gitkeep` files that keep empty directories in git
/// are left out, so the copy has the empty directories the host had.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            // sysfs links (device/driver, class entries) stay links.
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), dest).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if entry.file_name() != ".gitkeep" {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// The environment that points the agent at a fixture host laid out as
/// `<dir>/proc`, `<dir>/sys`, `<dir>/root`.
pub fn host_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "UNAMENTIS_AGENT_HOST_PROC",
            dir.join("proc").display().to_string(),
        ),
        (
            "UNAMENTIS_AGENT_HOST_SYS",
            dir.join("sys").display().to_string(),
        ),
        (
            "UNAMENTIS_AGENT_HOST_ROOT",
            dir.join("root").display().to_string(),
        ),
    ]
}

/// A private, writable copy of a fixture host.
pub fn host_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(name), dir.path());
    dir
}

/// Replaces a file atomically (write + rename), as sysfs would present a
/// new value: a reader never sees it half-written.
pub fn set(root: &Path, rel: &str, value: impl std::fmt::Display) {
    let path = root.join(rel);
    let tmp = path.with_extension("unamentis-tmp");
    std::fs::write(&tmp, format!("{value}\n")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// A path as a TOML string, for configurations the tests write.
pub fn toml_string(p: &Path) -> String {
    // A JSON string is a valid TOML basic string.
    serde_json::to_string(&p.display().to_string()).unwrap()
}
