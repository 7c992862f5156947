#!/usr/bin/env bash
# X11 MIT-SHM end to end on uipc: the X server attaches System V segments
# that its clients create. Xvfb and the clients all run under
# `uipc run --deny-kernel-ipc` against one `uipc daemon`, so the client's
# shmget/shmat and the server's shmat/shmctl(IPC_STAT) of the client's
# segment all go through uipc (the kernel's calls fail with ENOSYS).
#
#   scripts/e2e/x11-mitshm.sh
#
# The client (scripts/e2e/xshm-client.c, compiled here) checks XShmPutImage
# (the server reads the client's segment), XShmGetImage (the server writes
# it), a shared pixmap (stores on one side seen by the other) and the
# server's permission check on a mode-0400 segment; while its first segment
# is attached by both sides, `ipcs -m` (under `uipc run`, so uipc's view)
# must show it with nattch 2, and once the clients are gone no segment may
# be left. As root the client also runs as `nobody` (then a read-write attach
# of a 0400 segment must be refused with BadAccess). Then x11perf
# -shmput500 and -putimage500 under uipc. Then all of it natively (the
# kernel's System V IPC, in a fresh IPC namespace when root): the client
# outputs must be the same, and both x11perf rates are printed.
#
# Environment: TIME=3 (seconds per x11perf test), KEEP=1 keeps the scratch
# directory, UIPC_BIN_DIR=DIR uses the uipc and libuipc_preload.so built
# there instead of building them. Not part of `cargo test`. On Debian 12, as
# root, it installs xvfb, x11-apps (x11perf), libx11-dev, libxext-dev if
# missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$PWD

TIME=${TIME:-3}

say() { printf '== %s\n' "$*"; }
die() { printf 'x11-mitshm.sh: FAIL: %s\n' "$*" >&2; exit 1; }

# --- What it needs ---------------------------------------------------------
need=()
command -v Xvfb >/dev/null || need+=(xvfb)
command -v x11perf >/dev/null || need+=(x11-apps)
[ -e /usr/include/X11/Xlib.h ] || need+=(libx11-dev)
[ -e /usr/include/X11/extensions/XShm.h ] || need+=(libxext-dev)
command -v ipcs >/dev/null || need+=(util-linux)
command -v cc >/dev/null || need+=(gcc)
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

scratch=$(mktemp -d /tmp/uipc-x11-e2e.XXXXXX)
daemon_pid=
cleanup() {
	local rc=$?
	# The X servers and the daemon, by the pids we started (if still there).
	for p in ${xvfb_pid:-} $daemon_pid; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
		echo "scratch kept: $scratch" >&2
	else
		rm -rf "$scratch"
	fi
	[ $rc -eq 0 ] || echo "x11-mitshm.sh: FAIL" >&2
}
trap cleanup EXIT
cp "$UIPC_BIN_DIR/uipc" "$UIPC_BIN_DIR/libuipc_preload.so" "$scratch/"
cc -O2 -Wall -o "$scratch/xshm-client" "$here/scripts/e2e/xshm-client.c" -lXext -lX11
chmod 755 "$scratch"
sock=$scratch/uipc.sock
UIPC=$scratch/uipc

# The second user, for the permission check: nobody as root, else none.
as_nobody=()
if [ "$(id -u)" -eq 0 ]; then
	as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
fi

# Runs "$@" under uipc or natively, by $MODE; a watchdog on every client.
wrap() {
	if [ "$MODE" = uipc ]; then
		"$UIPC" run --socket "$sock" --deny-kernel-ipc -- "$@"
	else
		"$@"
	fi
}
# `ipcs -m` of the mode's IPC: uipc's through its /proc view, or the kernel's.
ipcs_m() {
	if [ "$MODE" = uipc ]; then "$UIPC" run --socket "$sock" -- ipcs -m; else ipcs -m; fi
}
segments() { ipcs_m | awk '$1 ~ /^0x/'; }

# One phase: Xvfb, the client (as us, then as nobody), x11perf. $MODE is
# uipc or native. Leaves the client outputs in $scratch/$MODE-client*.out
# and the rates in $scratch/$MODE-x11perf.out.
phase() {
	local d line id rest
	say "$MODE: Xvfb"
	rm -f "$scratch/xready"
	mkfifo "$scratch/xready"
	# -displayfd: the first free display, written once it accepts clients.
	local under=()
	[ "$MODE" = uipc ] && under=("$UIPC" run --socket "$sock" --deny-kernel-ipc --)
	# A simple command in the background, so that $! is `uipc run` (which
	# passes a SIGTERM on) or Xvfb itself.
	"${under[@]}" Xvfb -nolisten tcp -displayfd 4 -screen 0 1024x768x24 4>"$scratch/xready" >"$scratch/$MODE-xvfb.log" 2>&1 &
	xvfb_pid=$!
	d=
	read -r -t 60 d <"$scratch/xready" || true
	[ -n "$d" ] || { cat "$scratch/$MODE-xvfb.log"; die "$MODE: Xvfb did not start"; }
	export DISPLAY=:$d
	say "$MODE: Xvfb on $DISPLAY; xshm-client --hold"
	[ -z "$(segments)" ] || die "$MODE: segments before the client: $(segments)"
	coproc CLIENT { wrap timeout 120 "$scratch/xshm-client" --hold 2>&1; }
	local out=$scratch/$MODE-client.out
	: >"$out"
	id=
	while read -r -t 60 line <&"${CLIENT[0]}"; do
		printf '%s\n' "$line" >>"$out"
		case $line in ATTACHED*) id=${line#ATTACHED }; id=${id%% *}; break ;; esac
	done
	[ -n "$id" ] || { cat "$out"; die "$MODE: the client did not attach"; }
	say "$MODE: ipcs -m while the client and Xvfb are attached (shmid $id)"
	ipcs_m | tee "$scratch/$MODE-ipcs.out"
	awk -v id="$id" '$1 ~ /^0x/ && $2 == id && $6 == 2 { ok = 1 } END { exit !ok }' "$scratch/$MODE-ipcs.out" ||
		die "$MODE: shmid $id is not listed with nattch 2"
	echo go >&"${CLIENT[1]}"
	local pid=$CLIENT_PID
	cat <&"${CLIENT[0]}" >>"$out"
	local rc=0
	wait "$pid" || rc=$?
	cat "$out"
	[ $rc -eq 0 ] || die "$MODE: xshm-client failed (exit $rc)"
	rest=$(segments)
	[ -z "$rest" ] || die "$MODE: segments left after the client: $rest"
	say "$MODE: no segment left"
	if [ ${#as_nobody[@]} -gt 0 ]; then
		say "$MODE: xshm-client as nobody"
		local rc2=0
		"${as_nobody[@]}" bash -c "$(declare -f wrap); MODE=$MODE UIPC=$UIPC sock=$sock; wrap timeout 120 $scratch/xshm-client" \
			>"$scratch/$MODE-client-nobody.out" 2>&1 || rc2=$?
		cat "$scratch/$MODE-client-nobody.out"
		[ $rc2 -eq 0 ] || die "$MODE: xshm-client as nobody failed (exit $rc2)"
		rest=$(segments)
		[ -z "$rest" ] || die "$MODE: segments left after the client: $rest"
	fi
	say "$MODE: x11perf -time $TIME -shmput500 -putimage500"
	wrap timeout 300 x11perf -repeat 1 -time "$TIME" -shmput500 -putimage500 >"$scratch/$MODE-x11perf.log" 2>&1 ||
		{ cat "$scratch/$MODE-x11perf.log"; die "$MODE: x11perf failed"; }
	grep -E 'PutImage' "$scratch/$MODE-x11perf.log" | tee "$scratch/$MODE-x11perf.out"
	grep -q 'ShmPutImage' "$scratch/$MODE-x11perf.out" || die "$MODE: no ShmPutImage rate from x11perf"
	rest=$(segments)
	[ -z "$rest" ] || die "$MODE: segments left after x11perf: $rest"
	kill "$xvfb_pid"
	wait "$xvfb_pid" 2>/dev/null || true
	xvfb_pid=
	if grep -iE 'error|fatal' "$scratch/$MODE-xvfb.log"; then
		die "$MODE: errors in the Xvfb log"
	fi
}

say "uipc daemon on $sock"
mkfifo "$scratch/ready"
"$UIPC" daemon --socket "$sock" --ready-fd 3 3>"$scratch/ready" >"$scratch/daemon.log" 2>&1 &
daemon_pid=$!
line=
read -r -t 60 line <"$scratch/ready" || true
[ "${line:-}" = READY ] || { cat "$scratch/daemon.log"; die "the daemon did not start"; }
MODE=uipc phase
kill "$daemon_pid"
wait "$daemon_pid" || die "the daemon did not stop cleanly: $(cat "$scratch/daemon.log")"
daemon_pid=

if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
	say "native: in a fresh IPC namespace (unshare --ipc)"
	export -f phase wrap ipcs_m segments say die
	export scratch sock UIPC TIME
	# shellcheck disable=SC2016 # expanded by the inner bash
	unshare --ipc bash -c 'set -euo pipefail; trap "[ -z \"\${xvfb_pid:-}\" ] || kill \$xvfb_pid 2>/dev/null" EXIT
		as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups --); MODE=native phase'
else
	MODE=native phase
fi

# --- Compare ---------------------------------------------------------------
mask() { sed -E 's/^ATTACHED [0-9]+/ATTACHED <shmid>/' "$1"; }
status=0
for f in client client-nobody; do
	[ -e "$scratch/uipc-$f.out" ] || continue
	if diff <(mask "$scratch/native-$f.out") <(mask "$scratch/uipc-$f.out") >"$scratch/$f.diff"; then
		say "$f output: uipc and native agree ($(wc -l <"$scratch/uipc-$f.out") lines)"
	else
		say "$f output differs (native < > uipc):"
		cat "$scratch/$f.diff"
		status=1
	fi
done

# "36000 reps @   0.0625 msec ( 16000.0/sec): ShmPutImage 500x500 square"
rate() { sed -nE "s/.*\( *([0-9.]+)\/sec\): $2 .*/\1/p" "$1" | head -1; }
printf '\nx11perf -time %s, 500x500 images (rates per second):\n' "$TIME"
for t in ShmPutImage PutImage; do
	u=$(rate "$scratch/uipc-x11perf.out" "$t")
	n=$(rate "$scratch/native-x11perf.out" "$t")
	printf '  %-12s uipc %10s   native %10s' "$t" "$u" "$n"
	awk -v u="$u" -v n="$n" 'BEGIN { if (n > 0) printf "   uipc/native %.3f", u / n; print "" }'
done
if [ $status -ne 0 ]; then
	die "uipc and native outputs differ"
fi
printf '\nx11-mitshm.sh: PASS (MIT-SHM put/get/shared pixmap/permissions under uipc run --deny-kernel-ipc, same as native)\n'
