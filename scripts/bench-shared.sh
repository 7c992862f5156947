#!/usr/bin/env bash
# The shared ipcbench A/B (../shared/bench/run.sh) against uipc: builds
# `uipc` and `libuipc_preload.so` (release), starts a `uipc daemon` on a
# socket in a fresh temporary directory, runs run.sh with
# SHIM=libuipc_preload.so and UIPC_SOCKET pointing at that daemon, then stops
# the daemon (SIGTERM) and checks that it exited cleanly.
#
#   scripts/bench-shared.sh
#   RUNS=3 WORKLOADS=shm BENCH_ARGS="--scale 0.2" scripts/bench-shared.sh
#
# run.sh's environment passes through (RUNS, WORKLOADS, BENCH_ARGS, RESULTS,
# CC). Its ratio is shim ns/op / native ns/op (below 1: uipc is faster).
# Workloads whose calls the shim does not export yet go to the kernel under
# the shim too, so their ratio is about 1. BENCH_DIR overrides where run.sh
# is (default: shared/bench beside the repository); UIPC_BIN_DIR=DIR uses
# the binaries built there instead of building. TRAP=1 runs the shim side in
# trap mode (UIPC_TRAP=install: the shim installs `uipc run --trap`'s
# seccomp filter and its SIGSYS handler; the native side never loads the
# shim, so it is unaffected).
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${BENCH_DIR:-../shared/bench}
[ -x "$BENCH_DIR/run.sh" ] || [ -f "$BENCH_DIR/run.sh" ] || { echo "bench-shared.sh: no $BENCH_DIR/run.sh" >&2; exit 2; }
scripts/install-deps.sh >/dev/null

if [ -z "${UIPC_BIN_DIR:-}" ]; then
	cargo build -q --release -p uipc-cli -p uipc-preload
	UIPC_BIN_DIR=${CARGO_TARGET_DIR:-target}/release
fi
uipc=$UIPC_BIN_DIR/uipc
shim=$UIPC_BIN_DIR/libuipc_preload.so

dir=$(mktemp -d /tmp/uipc-bench.XXXXXX)
daemon=
cleanup() {
	if [ -n "$daemon" ]; then
		kill "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

mkfifo "$dir/ready"
"$uipc" daemon --socket "$dir/uipc.sock" --ready-fd 3 3>"$dir/ready" 2>"$dir/daemon.log" &
daemon=$!
# READY once it accepts connections; end of file if it died first.
read -r line <"$dir/ready" || true
[ "${line:-}" = READY ] || { cat "$dir/daemon.log" >&2; echo "bench-shared.sh: the daemon did not start" >&2; exit 1; }
echo "# uipc daemon pid $daemon on $dir/uipc.sock" >&2

if [ "${TRAP:-0}" = 1 ]; then
	echo "# trap mode: UIPC_TRAP=install" >&2
	UIPC_TRAP=install UIPC_SOCKET=$dir/uipc.sock SHIM=$shim bash "$BENCH_DIR/run.sh"
else
	UIPC_SOCKET=$dir/uipc.sock SHIM=$shim bash "$BENCH_DIR/run.sh"
fi

kill "$daemon"
status=0
wait "$daemon" || status=$?
daemon=
if [ "$status" -ne 0 ] || grep -qiE 'error|panic' "$dir/daemon.log"; then
	echo "bench-shared.sh: the daemon exited with status $status:" >&2
	cat "$dir/daemon.log" >&2
	exit 1
fi
