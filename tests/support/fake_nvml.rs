//! Builds the fake `libnvidia-ml.so` of tests/fixtures/nvml/fake_nvml.c
//! with the system C compiler (`$CC`, else `cc`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles the shim into `dir` with the given `-D` switches; it logs every
/// nvmlInit_v2 / nvmlShutdown call to [`log_path`]`(dir)`.
pub fn build(dir: &Path, defines: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvml/fake_nvml.c");
    let out = dir.join("libnvidia-ml.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args(["-shared", "-fPIC", "-O0", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .arg(format!("-DFAKE_NVML_LOG=\"{}\"", log_path(dir).display()));
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(
        output.status.success(),
        "building the fake NVML failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("nvml-calls.log")
}

/// The calls logged so far: `init`, `shutdown`.
pub fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(log_path(dir))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}
