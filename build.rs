// Links the Linux binary as a fixed-address (non-PIE) executable, as Go
// links node_exporter: a position-independent one carries about 20,000
// relative relocations that the dynamic loader applies at every start,
// writing (and so copying) every page of `.data.rel.ro`. That was a sixth
// of the agent's start-up CPU and about 160 KiB of private resident
// memory. Shared libraries, heap, stack and mmap areas stay randomized.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
