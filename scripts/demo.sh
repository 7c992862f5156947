#!/usr/bin/env bash
# The main job: an unmodified C program (examples/c/shm_pingpong.c: a parent
# and a forked child sharing a System V segment) run under `uipc run`, which
# starts a private uipc daemon by itself; the kernel's IPC system calls are
# denied (seccomp, ENOSYS), so everything goes through uipc.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cargo build -q -p uipc-cli -p uipc-preload
target=${CARGO_TARGET_DIR:-target}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -O2 -o "$out/shm_pingpong" examples/c/shm_pingpong.c
echo "== kernel IPC denied, no uipc: the program fails loudly"
"$target/debug/uipc" run --deny-kernel-ipc --preload /nonexistent -- "$out/shm_pingpong" 2>&1 | grep -v warning || true
echo "== the same program under uipc run --deny-kernel-ipc, then unmodified util-linux on uipc's objects"
# One private daemon for the whole shell: the program, then ipcmk and ipcs
# (util-linux, unmodified) see the same namespace.
"$target/debug/uipc" run --deny-kernel-ipc --preload "$target/debug/libuipc_preload.so" -- sh -c '
    "$1"
    echo "-- ipcmk -M 65536 -p 600; ipcmk -S 3; ipcs -m -s"
    ipcmk -M 65536 -p 600 >/dev/null && ipcmk -S 3 >/dev/null && ipcs -m -s
' demo "$out/shm_pingpong"
