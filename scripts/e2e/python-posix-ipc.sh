#!/usr/bin/env bash
# PyPI posix_ipc's own shared-memory and semaphore tests (tests/test_memory.py,
# tests/test_semaphores.py of its source distribution; its message queue
# tests belong to uipc's POSIX message queues) under
# `uipc run --deny-kernel-ipc` in a mount namespace without /dev/shm
# (crates/uipc-cli/tests/posix/no-dev-shm.sh, so glibc's own way cannot be
# what works), then natively with a private tmpfs on /dev/shm; both must
# pass with the same count.
#
#   scripts/e2e/python-posix-ipc.sh
#
# Environment: PYTHON (default python3, needs venv), POSIX_IPC_VERSION
# (default 1.3.2), KEEP=1 keeps the scratch directory, UIPC_BIN_DIR=DIR uses
# the uipc and libuipc_preload.so built there instead of building them. Root
# only (mount namespaces). Not part of `cargo test`: it needs PyPI and a C
# compiler.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$PWD
PYTHON=${PYTHON:-python3}
VERSION=${POSIX_IPC_VERSION:-1.3.2}

say() { printf '== %s\n' "$*"; }
die() { printf 'python-posix-ipc.sh: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (mount namespaces)"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "needs python3-venv"
if [ -z "${UIPC_BIN_DIR:-}" ]; then
	say "building uipc (release)"
	cargo build -q --release -p uipc-cli -p uipc-preload
	UIPC_BIN_DIR=${CARGO_TARGET_DIR:-target}/release
fi
UIPC_BIN_DIR=$(cd "$UIPC_BIN_DIR" && pwd)

scratch=$(mktemp -d /tmp/uipc-pyposix-e2e.XXXXXX)
cleanup() {
	local rc=$?
	if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
		echo "scratch kept: $scratch" >&2
	else
		rm -rf "$scratch"
	fi
}
trap cleanup EXIT

say "posix_ipc $VERSION: source distribution (its tests) and a venv build"
"$PYTHON" -m venv "$scratch/venv"
"$scratch/venv/bin/pip" download -q --disable-pip-version-check --no-binary :all: --no-deps \
	"posix_ipc==$VERSION" -d "$scratch/dl" >"$scratch/pip.log" 2>&1 || { cat "$scratch/pip.log"; die "pip download failed"; }
tar -xzf "$scratch/dl/posix_ipc-$VERSION.tar.gz" -C "$scratch"
"$scratch/venv/bin/pip" install -q --disable-pip-version-check --no-deps "$scratch/dl/posix_ipc-$VERSION.tar.gz" \
	>>"$scratch/pip.log" 2>&1 || { cat "$scratch/pip.log"; die "pip install failed"; }
PY=$scratch/venv/bin/python
cd "$scratch/posix_ipc-$VERSION"
tests=(tests.test_memory tests.test_semaphores)

say "uipc: ${tests[*]} under uipc run --deny-kernel-ipc, no /dev/shm"
rc=0
unshare --mount sh "$here/crates/uipc-cli/tests/posix/no-dev-shm.sh" sh -c 'test ! -e /dev/shm && exec "$@"' sh \
	timeout 300 "$UIPC_BIN_DIR/uipc" run --deny-kernel-ipc -- "$PY" -m unittest "${tests[@]}" >"$scratch/uipc.out" 2>&1 || rc=$?
tail -4 "$scratch/uipc.out"
[ $rc -eq 0 ] || { cat "$scratch/uipc.out"; die "uipc: the tests failed (exit $rc)"; }

say "native: ${tests[*]} with a private tmpfs on /dev/shm"
rc=0
unshare --mount sh -c 'mount --make-rprivate / && mount -t tmpfs -o mode=1777 uipc-test /dev/shm && exec "$@"' sh \
	timeout 300 "$PY" -m unittest "${tests[@]}" >"$scratch/native.out" 2>&1 || rc=$?
tail -4 "$scratch/native.out"
[ $rc -eq 0 ] || { cat "$scratch/native.out"; die "native: the tests failed (exit $rc)"; }

ran() { grep -E '^Ran [0-9]+ tests' "$1" | awk '{ print $2 }'; }
[ "$(ran "$scratch/uipc.out")" = "$(ran "$scratch/native.out")" ] || die "different test counts"
printf '\npython-posix-ipc.sh: PASS (%s tests of posix_ipc %s, OK under uipc run --deny-kernel-ipc without /dev/shm and natively)\n' \
	"$(ran "$scratch/uipc.out")" "$VERSION"
