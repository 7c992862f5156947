//! `uipc-kernel-agent`: the kernel oracle's agent (see `uipc_testkit::agent`).
fn main() {
    uipc_testkit::agent::main();
}
