#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine (Debian, as root).
# Idempotent; installs nothing that is already there.
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(gcc)
command -v ipcs >/dev/null || need+=(util-linux)
# Python multiprocessing over POSIX shm and semaphores (uipc-cli tests/posix_e2e.rs).
command -v python3 >/dev/null || need+=(python3)
# fakeroot's SysV flavour over uipc's message queues (uipc-cli tests/fakeroot.rs).
[ -x /usr/bin/fakeroot-sysv ] || need+=(fakeroot)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need ${need[*]} but not root; skipping" >&2
		exit 0
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
command -v cargo >/dev/null || { echo "install-deps: cargo is required (rustup)" >&2; exit 1; }
