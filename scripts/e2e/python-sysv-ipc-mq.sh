#!/usr/bin/env bash
# PyPI sysv_ipc's own message-queue tests (tests/test_message_queues.py of
# its source distribution: create, attributes, permissions, send/receive
# with types, blocking and non-blocking, max_message_size, remove) under
# `uipc run --deny-kernel-ipc` (the kernel's System V calls fail with
# ENOSYS, so every queue is uipc's) and natively in a fresh IPC namespace
# (`unshare --ipc`, when root): both runs must report the same tests with
# the same outcome.
#
#   scripts/e2e/python-sysv-ipc-mq.sh
#
# Environment: PYTHON (default python3, needs venv), SYSV_IPC_VERSION
# (default: the newest), KEEP=1 keeps the scratch directory, UIPC_BIN_DIR=DIR
# uses the uipc and libuipc_preload.so built there instead of building them.
# Not part of `cargo test`: needs PyPI (pip) and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}

say() { printf '== %s\n' "$*"; }
die() { printf 'python-sysv-ipc-mq.sh: FAIL: %s\n' "$*" >&2; exit 1; }

"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "needs python3-venv (see python-sysv-ipc.sh)"
if [ -z "${UIPC_BIN_DIR:-}" ]; then
	say "building uipc (release)"
	cargo build -q --release -p uipc-cli -p uipc-preload
	UIPC_BIN_DIR=${CARGO_TARGET_DIR:-target}/release
fi
uipc=$(realpath "$UIPC_BIN_DIR/uipc")
lib=$(realpath "$UIPC_BIN_DIR/libuipc_preload.so")

scratch=$(mktemp -d /tmp/uipc-pysysv-mq.XXXXXX)
cleanup() {
	local rc=$?
	if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then echo "scratch kept: $scratch" >&2; else rm -rf "$scratch"; fi
}
trap cleanup EXIT

say "sysv_ipc${SYSV_IPC_VERSION:+ $SYSV_IPC_VERSION}: source distribution (for its tests) into a venv"
"$PYTHON" -m venv "$scratch/venv"
pip=$scratch/venv/bin/pip
"$pip" download -q --disable-pip-version-check --no-binary :all: --no-deps -d "$scratch/dl" \
	"sysv_ipc${SYSV_IPC_VERSION:+==$SYSV_IPC_VERSION}" >"$scratch/pip.log" 2>&1 || { cat "$scratch/pip.log"; die "pip download"; }
sdist=$(ls "$scratch"/dl/sysv_ipc-*.tar.gz)
"$pip" install -q --disable-pip-version-check "$sdist" >>"$scratch/pip.log" 2>&1 || { cat "$scratch/pip.log"; die "pip install"; }
tar xzf "$sdist" -C "$scratch"
src=$(ls -d "$scratch"/sysv_ipc-*/)
PY=$scratch/venv/bin/python

# One line per test: "name ... outcome", sorted; then the summary.
outcomes() { grep -E ' \.\.\. (ok|FAIL|ERROR|skipped.*)$|^(OK|FAILED)' "$1" | sort; }

say "uipc: tests.test_message_queues under uipc run --deny-kernel-ipc"
mkdir "$scratch/runtime"
rc=0
(cd "$src" && env -u UIPC_SOCKET XDG_RUNTIME_DIR="$scratch/runtime" timeout 300 \
	"$uipc" run --deny-kernel-ipc --preload "$lib" -- "$PY" -m unittest -v tests.test_message_queues) >"$scratch/uipc.out" 2>&1 || rc=$?
tail -4 "$scratch/uipc.out"
[ $rc -eq 0 ] || { cat "$scratch/uipc.out"; die "uipc: the tests failed (exit $rc)"; }

native=()
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then native=(unshare --ipc); fi
say "native: ${native[*]:-this IPC namespace}"
rc=0
(cd "$src" && timeout 300 "${native[@]}" "$PY" -m unittest -v tests.test_message_queues) >"$scratch/native.out" 2>&1 || rc=$?
tail -4 "$scratch/native.out"
[ $rc -eq 0 ] || { cat "$scratch/native.out"; die "native: the tests failed (exit $rc)"; }

diff <(outcomes "$scratch/native.out") <(outcomes "$scratch/uipc.out") || die "outcomes differ (native < > uipc)"
n=$(grep -c ' \.\.\. ok$' "$scratch/uipc.out")
printf '\npython-sysv-ipc-mq.sh: PASS (%s message-queue tests ok under uipc run --deny-kernel-ipc, as natively)\n' "$n"
