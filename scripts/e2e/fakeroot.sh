#!/usr/bin/env bash
# Debian's fakeroot, unmodified, on uipc: its SysV flavour (faked-sysv)
# talks to every faked process over a System V message queue and a
# semaphore. Under `uipc run --deny-kernel-ipc` (the kernel's System V
# calls fail with ENOSYS) `fakeroot sh -c 'touch f; chown 123:456 f; mknod
# d c 1 3; ls -ln'` (here: `stat` of the two files) must show the faked owner and device exactly as it does
# natively; with the calls denied and no shim it must fail with "Function
# not implemented".
#
#   scripts/e2e/fakeroot.sh
#
# Environment: UIPC_BIN_DIR=DIR uses the uipc and libuipc_preload.so built
# there instead of building them. The same checks run in `cargo test` as
# crates/uipc-cli/tests/fakeroot.rs.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '== %s\n' "$*"; }
die() { printf 'fakeroot.sh: FAIL: %s\n' "$*" >&2; exit 1; }

if ! [ -x /usr/bin/fakeroot-sysv ]; then
	[ "$(id -u)" -eq 0 ] || die "need the Debian package fakeroot (apt-get install fakeroot, as root)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fakeroot >/dev/null
fi
if [ -z "${UIPC_BIN_DIR:-}" ]; then
	say "building uipc (release)"
	cargo build -q --release -p uipc-cli -p uipc-preload
	UIPC_BIN_DIR=${CARGO_TARGET_DIR:-target}/release
fi
uipc=$(realpath "$UIPC_BIN_DIR/uipc")
lib=$(realpath "$UIPC_BIN_DIR/libuipc_preload.so")

scratch=$(mktemp -d /tmp/uipc-fakeroot-e2e.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/native" "$scratch/uipc" "$scratch/runtime" "$scratch/denied"
script='touch f; chown 123:456 f; mknod d c 1 3; stat -c "%A %u %g %t:%T %n" d f'

say "natively"
(cd "$scratch/native" && fakeroot-sysv sh -c "$script") >"$scratch/native.out"
cat "$scratch/native.out"

say "under uipc run --deny-kernel-ipc"
(cd "$scratch/uipc" && env -u UIPC_SOCKET XDG_RUNTIME_DIR="$scratch/runtime" \
	"$uipc" run --deny-kernel-ipc --preload "$lib" -- fakeroot-sysv sh -c "$script") >"$scratch/uipc.out"
cat "$scratch/uipc.out"
diff -u "$scratch/native.out" "$scratch/uipc.out" || die "fakeroot under uipc differs from native"
grep -q '^-rw-r--r-- 123 456 0:0 f$' "$scratch/uipc.out" || die "the faked owner is missing"
grep -q '^crw-r--r-- 0 0 1:3 d$' "$scratch/uipc.out" || die "the faked device is missing"

say "denied, without uipc"
if (cd "$scratch/denied" && UIPC_SOCKET=/nonexistent/uipc.sock \
	"$uipc" run --deny-kernel-ipc --preload /nonexistent/libuipc_preload.so -- fakeroot-sysv true) 2>"$scratch/denied.err"; then
	die "fakeroot started although its IPC calls were denied"
fi
grep -q 'Function not implemented' "$scratch/denied.err" || die "expected ENOSYS, got: $(cat "$scratch/denied.err")"
sed -n 2p "$scratch/denied.err"
say "ok"
