//! Builds the C half of the shim: the variadic entry points of `semctl` and
//! `syscall` (Rust has no stable way to define a C variadic function), and
//! exports them from the cdylib.

fn main() {
    println!("cargo:rerun-if-changed=src/semctl.c");
    println!("cargo:rerun-if-changed=src/syscall.c");
    println!("cargo:rerun-if-changed=src/semopen.c");
    println!("cargo:rerun-if-changed=src/mq_open.c");
    println!("cargo:rerun-if-changed=src/exports.map");
    cc::Build::new()
        .file("src/semctl.c")
        .file("src/syscall.c")
        .file("src/semopen.c")
        .file("src/mq_open.c")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("uipc_semctl");
    // rustc's version script for a cdylib lists the Rust `#[no_mangle]`
    // items only and makes every other symbol local; this second
    // (anonymous) script adds the C `semctl` and `syscall` to the exported ones. LLD, the
    // linker rustc uses for x86_64 Linux since 1.90, merges the two; GNU ld
    // rejects two anonymous version tags.
    let map = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/exports.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", map.display());
}
