#!/usr/bin/env bash
# Python's sysv_ipc module (PyPI, a C extension calling shmget, shmat,
# semget, semop, semctl, ...) end to end on uipc: scripts/e2e/sysv_ipc_check.py
# creates a semaphore and a segment, forks a child that writes the segment
# and releases the semaphore (the parent acquires and reads), blocks a
# child in acquire, uses SEM_UNDO, wait-for-zero, range errors,
# ExistentialError for missing/existing keys, PermissionsError as `nobody`
# (when root), attach by id after IPC_RMID, and removes everything. It runs
# under `uipc run --deny-kernel-ipc` in a 0700 namespace of a `uipc daemon` (the kernel's
# System V calls fail with ENOSYS), then natively in a fresh IPC namespace
# (`unshare --ipc`, when root); the two outputs must be identical (the
# script prints no ids, keys or pids), and afterwards uipc's `ipcs` must
# show nothing left.
#
#   scripts/e2e/python-sysv-ipc.sh
#
# Environment: PYTHON (default python3, needs venv), SYSV_IPC_VERSION
# (default: the newest), KEEP=1 keeps the scratch directory (with the venv),
# UIPC_BIN_DIR=DIR uses the uipc and libuipc_preload.so built there instead
# of building them. Not part of `cargo test`. Needs PyPI (pip) and a C
# compiler; on Debian 12, as root, it installs python3-venv and python3-dev
# if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$PWD

PYTHON=${PYTHON:-python3}

say() { printf '== %s\n' "$*"; }
die() { printf 'python-sysv-ipc.sh: FAIL: %s\n' "$*" >&2; exit 1; }

# --- What it needs ---------------------------------------------------------
need=()
command -v "$PYTHON" >/dev/null || need+=(python3)
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
[ -n "$("$PYTHON" -c 'import sysconfig; import os; p = sysconfig.get_paths()["include"]; print(p if os.path.exists(p + "/Python.h") else "")' 2>/dev/null)" ] || need+=(python3-dev)
command -v cc >/dev/null || need+=(gcc)
command -v ipcs >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "need ${need[*]} (apt-get install as root)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${UIPC_BIN_DIR:-}" ]; then
	say "building uipc (release)"
	cargo build -q --release -p uipc-cli -p uipc-preload
	UIPC_BIN_DIR=${CARGO_TARGET_DIR:-target}/release
fi

scratch=$(mktemp -d /tmp/uipc-pysysv-e2e.XXXXXX)
daemon_pid=
cleanup() {
	local rc=$?
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
		echo "scratch kept: $scratch" >&2
	else
		rm -rf "$scratch"
	fi
	[ $rc -eq 0 ] || echo "python-sysv-ipc.sh: FAIL" >&2
}
trap cleanup EXIT
# Everything the nobody child touches must be reachable by it.
chmod 755 "$scratch"
cp "$UIPC_BIN_DIR/uipc" "$UIPC_BIN_DIR/libuipc_preload.so" "$here/scripts/e2e/sysv_ipc_check.py" "$scratch/"
sock=$scratch/uipc.sock
UIPC=$scratch/uipc

say "sysv_ipc${SYSV_IPC_VERSION:+ $SYSV_IPC_VERSION} into a venv (pip builds the C extension)"
"$PYTHON" -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install -q --disable-pip-version-check "sysv_ipc${SYSV_IPC_VERSION:+==$SYSV_IPC_VERSION}" >"$scratch/pip.log" 2>&1 ||
	{ cat "$scratch/pip.log"; die "pip install sysv_ipc failed"; }
PY=$scratch/venv/bin/python
"$PY" -c 'import sysv_ipc; print("sysv_ipc", sysv_ipc.VERSION, "from", sysv_ipc.__file__)'
chmod -R a+rX "$scratch/venv"

# --- Under uipc --------------------------------------------------------------
say "uipc daemon on $sock"
mkfifo "$scratch/ready"
"$UIPC" daemon --socket "$sock" --ready-fd 3 3>"$scratch/ready" >"$scratch/daemon.log" 2>&1 &
daemon_pid=$!
line=
read -r -t 60 line <"$scratch/ready" || true
[ "${line:-}" = READY ] || { cat "$scratch/daemon.log"; die "the daemon did not start"; }

# A namespace of our own, mode 0700 (as a fresh kernel IPC namespace is
# its creator's alone): the nobody children enter it by fork, and stay in
# it after setuid, as in Linux.
"$UIPC" ns create --socket "$sock" --mode 0700 pysysv
say "uipc: sysv_ipc_check.py under uipc run --deny-kernel-ipc --ns pysysv"
rc=0
timeout 300 "$UIPC" run --socket "$sock" --ns pysysv --deny-kernel-ipc -- "$PY" "$scratch/sysv_ipc_check.py" >"$scratch/uipc.out" 2>&1 || rc=$?
cat "$scratch/uipc.out"
uipc_rc=$rc
left=$("$UIPC" run --socket "$sock" --ns pysysv -- ipcs -m -s | awk '$1 ~ /^0x/')
[ -z "$left" ] || { echo "$left"; die "uipc: objects left after the script"; }
say "uipc: ipcs -m -s: nothing left"
kill "$daemon_pid"
wait "$daemon_pid" || die "the daemon did not stop cleanly: $(cat "$scratch/daemon.log")"
daemon_pid=

# --- Natively ---------------------------------------------------------------
native=()
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
	say "native: in a fresh IPC namespace (unshare --ipc)"
	native=(unshare --ipc)
else
	say "native: in this IPC namespace"
fi
rc=0
timeout 300 "${native[@]}" "$PY" "$scratch/sysv_ipc_check.py" >"$scratch/native.out" 2>&1 || rc=$?
native_rc=$rc
[ $native_rc -eq 0 ] || { cat "$scratch/native.out"; die "native: sysv_ipc_check.py failed (exit $native_rc)"; }

# --- Compare ---------------------------------------------------------------
[ $uipc_rc -eq 0 ] || die "uipc: sysv_ipc_check.py failed (exit $uipc_rc)"
if ! diff "$scratch/native.out" "$scratch/uipc.out" >"$scratch/diff"; then
	say "outputs differ (native < > uipc):"
	cat "$scratch/diff"
	die "uipc and native outputs differ"
fi
checks=$(grep -c ': ok$' "$scratch/uipc.out")
printf '\npython-sysv-ipc.sh: PASS (%s checks, %s lines identical under uipc run --deny-kernel-ipc and natively)\n' \
	"$checks" "$(wc -l <"$scratch/uipc.out")"
