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
# PyPI posix_ipc and its own test suite (uipc-cli tests/posix_ipc.rs): the
# module, and the source distribution's tests/ kept under
# ${UIPC_POSIX_IPC_SRC:-/var/cache/uipc/posix_ipc-1.3.2}.
posix_ipc_src=${UIPC_POSIX_IPC_SRC:-/var/cache/uipc/posix_ipc-1.3.2}
if command -v python3 >/dev/null && [ "$(id -u)" -eq 0 ]; then
	if ! python3 -c 'import posix_ipc' 2>/dev/null || [ ! -f "$posix_ipc_src/tests/test_message_queues.py" ]; then
		mkdir -p "$(dirname "$posix_ipc_src")"
		tmp=$(mktemp -d)
		if python3 -m pip download -q --no-binary :all: --no-deps -d "$tmp" posix_ipc==1.3.2 \
			&& tar -xzf "$tmp"/posix_ipc-1.3.2.tar.gz -C "$(dirname "$posix_ipc_src")" \
			&& python3 -m pip install -q "$posix_ipc_src"; then
			:
		else
			echo "install-deps: posix_ipc could not be installed; its test will be skipped" >&2
		fi
		rm -rf "$tmp"
	fi
fi
