#!/usr/bin/env bash
# PostgreSQL 15 end to end on uipc: initdb, start, `pgbench -i`, a timed
# `pgbench` run, a parallel query (dynamic shared memory segments made and
# removed per query) and a clean stop, every step under
# `uipc run --deny-kernel-ipc` (the kernel's System V calls fail with ENOSYS)
# with shared_memory_type=sysv and dynamic_shared_memory_type=sysv. While
# the server runs, its segments must be in uipc's `ipcs -m` (ipcs itself run
# under `uipc run` against the same daemon); after the stop, none may be.
# Then the same workload natively (the kernel's System V IPC, in a fresh IPC
# namespace when root) and both TPS figures.
#
#   scripts/e2e/postgres.sh
#
# With DSM=posix, PostgreSQL's default configuration instead:
# shared_memory_type=mmap and dynamic_shared_memory_type=posix (shm_open,
# served by uipc's shim), and as root every uipc step runs in a mount
# namespace without /dev/shm (crates/uipc-cli/tests/posix/no-dev-shm.sh),
# so glibc's own way cannot be what works; the native run has /dev/shm.
#
# With CRASH=1, the uipc cycle runs inside one `uipc run` whose private
# daemon (a process with a state directory) is killed with SIGKILL KILLS
# times (default 2) while pgbench runs; `uipc run` restarts it on the same
# state each time. pgbench must finish with no failed transaction, and the
# server must not restart (same postmaster, no backend killed, nothing
# failed in its log): PostgreSQL's segments, semaphores and undo come
# through the daemon's death, and its processes reconnect by themselves.
#
# Environment: DURATION=30 (seconds of pgbench), CLIENTS=4, JOBS=2, SCALE=10,
# PGBENCH_OPTS (more pgbench options, e.g. -C: a connection, so a forked
# backend, per transaction), NATIVE_FIRST=1 runs the kernel cycle first, PG_BIN (default:
# /usr/lib/postgresql/15/bin, else pg_config --bindir), KEEP=1 keeps the
# scratch directory, UIPC_BIN_DIR=DIR uses the uipc and libuipc_preload.so
# built there instead of building them. Not part of `cargo test` (too slow).
#
# Postgres refuses to run as root: as root the servers run as the user
# `postgres` (Debian's package creates it); as any other user, as that user.
# On a fresh Debian 12 machine, as root, it installs postgresql-15 and
# postgresql-client-15 (without the package's default cluster).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-30}
CLIENTS=${CLIENTS:-4}
JOBS=${JOBS:-2}
SCALE=${SCALE:-10}
PORT=${PORT:-54329}
DSM=${DSM:-sysv}
CRASH=${CRASH:-0}
KILLS=${KILLS:-2}
case $DSM in sysv) SHM_TYPE=sysv ;; posix) SHM_TYPE=mmap ;; *) echo "postgres.sh: DSM must be sysv or posix" >&2; exit 2 ;; esac
NO_DEV_SHM=$PWD/crates/uipc-cli/tests/posix/no-dev-shm.sh

say() { printf '== %s\n' "$*"; }
die() { printf 'postgres.sh: %s\n' "$*" >&2; exit 1; }

# --- What it needs ---------------------------------------------------------
find_pg_bin() {
	if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
	if [ -x /usr/lib/postgresql/15/bin/postgres ]; then echo /usr/lib/postgresql/15/bin; return; fi
	if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/postgres" ]; then pg_config --bindir; return; fi
	echo /usr/lib/postgresql/15/bin
}
PG_BIN=$(find_pg_bin)
need=()
[ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pgbench" ] || need+=(postgresql-15)
[ -x "$PG_BIN/psql" ] || need+=(postgresql-client-15)
command -v ipcs >/dev/null || need+=(util-linux)
command -v cc >/dev/null || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "need ${need[*]} (apt-get install as root)"
	# No default cluster: this script makes its own, and nothing else should
	# start a server on this machine.
	if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
		mkdir -p /etc/postgresql-common
		echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	PG_BIN=$(find_pg_bin)
fi
"$PG_BIN/postgres" --version

if [ "$(id -u)" -eq 0 ]; then
	PGUSER_RUN=postgres
	id "$PGUSER_RUN" >/dev/null 2>&1 || die "no user $PGUSER_RUN (install postgresql-15)"
else
	PGUSER_RUN=$(id -un)
fi
PGUID=$(id -u "$PGUSER_RUN")
PGGID=$(id -g "$PGUSER_RUN")
# Runs a command as the server's user; setpriv execs (no extra process), so
# `as_pg cmd &` leaves cmd's own pid in $!.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid="$PGUID" --regid="$PGGID" --init-groups -- "$@"
	else
		"$@"
	fi
}

if [ -z "${UIPC_BIN_DIR:-}" ]; then
	say "building uipc (release)"
	cargo build -q --release -p uipc-cli -p uipc-preload
	UIPC_BIN_DIR=${CARGO_TARGET_DIR:-target}/release
fi

# --- Scratch: everything the servers touch, owned by their user -------------
scratch=$(mktemp -d /tmp/uipc-pg-e2e.XXXXXX)
daemon_pid=
cleanup() {
	local rc=$?
	for d in "$scratch"/uipc-data "$scratch"/native-data; do
		if [ -f "$d/postmaster.pid" ]; then
			as_pg "$PG_BIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
		fi
	done
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
		echo "scratch kept: $scratch" >&2
	else
		rm -rf "$scratch"
	fi
}
trap cleanup EXIT
# The binaries are copied in: the target directory may not be readable by
# the server's user.
cp "$UIPC_BIN_DIR/uipc" "$UIPC_BIN_DIR/libuipc_preload.so" "$scratch/"
chmod 755 "$scratch"
[ "$(id -u)" -eq 0 ] && chown -R "$PGUSER_RUN" "$scratch"
sock=$scratch/uipc.sock
UIPC=$scratch/uipc

# Runs a step under uipc, kernel IPC denied; a watchdog on every step (with
# CRASH=1, on the whole cycle, which runs as one step).
STEP_TIMEOUT=300
[ "$CRASH" = 1 ] && STEP_TIMEOUT=$((600 + DURATION))
under_uipc() {
	if [ "$DSM" = posix ] && [ "$(id -u)" -eq 0 ]; then
		# No /dev/shm at all: POSIX shared memory can only be uipc's.
		unshare --mount sh "$NO_DEV_SHM" setpriv --reuid="$PGUID" --regid="$PGGID" --init-groups -- \
			timeout "$STEP_TIMEOUT" "$UIPC" run --socket "$sock" --deny-kernel-ipc -- "$@"
	else
		as_pg timeout "$STEP_TIMEOUT" "$UIPC" run --socket "$sock" --deny-kernel-ipc -- "$@"
	fi
}
native() { as_pg timeout 300 "$@"; }

# `ipcs -m` rows as "owner bytes nattch", through uipc's /proc view.
uipc_segments() { as_pg "$UIPC" run --socket "$sock" -- ipcs -m | awk '$1 ~ /^0x/ { print $3, $5, $6 }'; }

write_conf() {
	cat >>"$1/postgresql.conf" <<EOF
shared_memory_type = $SHM_TYPE
dynamic_shared_memory_type = $DSM
huge_pages = off
listen_addresses = ''
port = $PORT
unix_socket_directories = '$scratch'
fsync = off
EOF
}

PARALLEL="set max_parallel_workers_per_gather = 2; set parallel_setup_cost = 0; set parallel_tuple_cost = 0; set min_parallel_table_scan_size = 0; set min_parallel_index_scan_size = 0;"

# One cycle: initdb, start, pgbench -i, pgbench, parallel query, stop.
# $1 = uipc|native; prints "TPS <n>" as its last line.
cycle() {
	local mode=$1 data=$scratch/$1-data wrap=native
	[ "$mode" = uipc ] && wrap=under_uipc
	say "$mode: initdb"
	$wrap "$PG_BIN/initdb" -D "$data" -A trust --no-sync >"$scratch/$mode-initdb.log" 2>&1 ||
		{ cat "$scratch/$mode-initdb.log"; die "$mode: initdb failed"; }
	write_conf "$data"
	say "$mode: start (shared_memory_type=$SHM_TYPE, dynamic_shared_memory_type=$DSM)"
	$wrap "$PG_BIN/pg_ctl" -D "$data" -l "$scratch/$mode-server.log" -w start >/dev/null ||
		{ cat "$scratch/$mode-server.log"; die "$mode: start failed"; }
	if [ "$mode" = uipc ] && [ "$SHM_TYPE" = sysv ]; then
		say "uipc: ipcs -m under uipc run while the server runs"
		as_pg "$UIPC" run --socket "$sock" -- ipcs -m
		# The main segment: the server's user, at least shared_buffers (128 MB), attached.
		uipc_segments | awk -v u="$PGUSER_RUN" '$1 == u && $2 >= 134217728 && $3 >= 1 { ok = 1 } END { exit !ok }' ||
			die "uipc: the server's main segment is not in uipc's listing"
		# And the kernel has none of them (its calls were denied anyway).
		# (Without the shim: with CRASH=1 this step runs under it.)
		if env -u LD_PRELOAD ipcs -m | awk -v u="$PGUSER_RUN" '$1 ~ /^0x/ && $3 == u { bad = 1 } END { exit !bad }'; then
			die "uipc: a segment of $PGUSER_RUN is in the kernel's listing"
		fi
	fi
	say "$mode: pgbench -i -s $SCALE"
	$wrap "$PG_BIN/pgbench" -h "$scratch" -p "$PORT" -i -s "$SCALE" -q postgres >"$scratch/$mode-init.log" 2>&1 ||
		{ cat "$scratch/$mode-init.log"; die "$mode: pgbench -i failed"; }
	local postmaster
	postmaster=$(head -1 "$data/postmaster.pid")
	# CRASH=1: the killer outside starts now.
	[ "$mode" = uipc ] && [ "$CRASH" = 1 ] && : >"$scratch/bench-started"
	say "$mode: pgbench -c $CLIENTS -j $JOBS -T $DURATION${PGBENCH_OPTS:+ $PGBENCH_OPTS}"
	# shellcheck disable=SC2086 # PGBENCH_OPTS is a list of options
	$wrap "$PG_BIN/pgbench" -h "$scratch" -p "$PORT" -c "$CLIENTS" -j "$JOBS" -T "$DURATION" ${PGBENCH_OPTS:-} postgres >"$scratch/$mode-bench.log" 2>&1 ||
		{ cat "$scratch/$mode-bench.log"; die "$mode: pgbench failed"; }
	grep -E '^(number of (transactions actually processed|failed)|latency average|tps)' "$scratch/$mode-bench.log"
	grep -q '^number of failed transactions: 0 ' "$scratch/$mode-bench.log" || die "$mode: pgbench had failed transactions"
	[ "$(head -1 "$data/postmaster.pid")" = "$postmaster" ] || die "$mode: the postmaster changed during pgbench"
	if grep -E 'terminated by signal|reinitializing|terminating any other active server processes' "$scratch/$mode-server.log"; then
		die "$mode: the server restarted during pgbench ($scratch/$mode-server.log)"
	fi
	say "$mode: a parallel query (dynamic shared memory)"
	$wrap "$PG_BIN/psql" -X -h "$scratch" -p "$PORT" -v ON_ERROR_STOP=1 -c "$PARALLEL" \
		-c "explain (analyze, costs off, timing off) select count(*) from pgbench_accounts" postgres >"$scratch/$mode-par.log" 2>&1 ||
		{ cat "$scratch/$mode-par.log"; die "$mode: parallel query failed"; }
	grep -E 'Workers (Planned|Launched)' "$scratch/$mode-par.log"
	grep -qE 'Workers Launched: [1-9]' "$scratch/$mode-par.log" || die "$mode: no parallel worker was launched"
	say "$mode: stop"
	$wrap "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null ||
		{ cat "$scratch/$mode-server.log"; die "$mode: stop failed"; }
	grep -q 'database system is shut down' "$scratch/$mode-server.log" || die "$mode: no clean shutdown in the log"
	if grep -E 'FATAL|PANIC|could not' "$scratch/$mode-server.log"; then
		die "$mode: errors in the server log ($scratch/$mode-server.log)"
	fi
	if [ "$mode" = uipc ]; then
		local left
		left=$(uipc_segments)
		[ -z "$left" ] || die "uipc: segments left after the stop: $left"
		say "uipc: ipcs -m after the stop: no segments"
	fi
	TPS=$(awk '/^tps = / { print $3 }' "$scratch/$mode-bench.log")
}

# The pid of the private daemon of the `uipc run` below process $1 (the
# `uipc daemon` whose chain of parents reaches $1), if any.
private_daemon_pid() {
	local p q
	for p in $(pgrep -f '^uipc daemon .*--tree-root'); do
		q=$p
		while [ "$q" -gt 1 ]; do
			[ "$q" = "$1" ] && { echo "$p"; return; }
			q=$(awk '/^PPid:/ { print $2 }' "/proc/$q/status" 2>/dev/null) || break
			[ -n "$q" ] || break
		done
	done
}

# CRASH=1: once pgbench runs, kill -9 the private daemon of the `uipc run`
# below process $1 KILLS times, spread over the run, each time waiting for
# `uipc run` to start another.
crash_killer() {
	local top=$1 n d new i
	while [ ! -e "$scratch/bench-started" ]; do
		kill -0 "$top" 2>/dev/null || return 0
		sleep 0.2
	done
	for n in $(seq "$KILLS"); do
		sleep $((DURATION / (KILLS + 1)))
		d=$(private_daemon_pid "$top")
		[ -n "$d" ] || { echo "postgres.sh: CRASH: no private daemon to kill" >&2; return 1; }
		say "CRASH $n/$KILLS: kill -9 of uipc run's private daemon (pid $d) during pgbench"
		kill -KILL "$d"
		for i in $(seq 300); do
			new=$(private_daemon_pid "$top")
			[ -n "$new" ] && [ "$new" != "$d" ] && break
			sleep 0.1
		done
		[ -n "$new" ] && [ "$new" != "$d" ] || { echo "postgres.sh: CRASH: no daemon after the kill" >&2; return 1; }
	done
}

# CRASH=1: the whole uipc cycle in one `uipc run` (nobody answers on
# $sock: a private daemon), killed during pgbench.
run_uipc_crash() {
	say "uipc (CRASH=1): the cycle under one uipc run, its private daemon killed $KILLS times during pgbench"
	# The functions go through a file: the no-/dev/shm wrapper's sh drops
	# exported bash functions.
	declare -f cycle as_pg say die write_conf uipc_segments >"$scratch/functions.sh"
	export PGBENCH_OPTS PG_BIN PGUSER_RUN PGUID PGGID scratch PORT SCALE CLIENTS JOBS DURATION PARALLEL DSM SHM_TYPE UIPC CRASH
	rm -f "$scratch/bench-started"
	# Inside, every step already runs under uipc (the shim, the filter and
	# $UIPC_SOCKET are inherited), and ipcs asks the private daemon.
	# shellcheck disable=SC2016 # expanded by the inner bash
	under_uipc bash -c 'set -euo pipefail; . "$scratch/functions.sh"; under_uipc() { timeout 300 "$@"; }; sock=$UIPC_SOCKET; cycle uipc; echo "$TPS" >"$scratch/crash-tps"' \
		2>"$scratch/crash-run.err" &
	local top=$! rc=0 krc=0
	crash_killer "$top" || krc=$?
	wait "$top" || rc=$?
	cat "$scratch/crash-run.err" >&2
	[ "$krc" = 0 ] || die "uipc (CRASH=1): the killer failed"
	[ "$rc" = 0 ] || die "uipc (CRASH=1): the cycle failed (status $rc)"
	local restarts
	restarts=$(grep -c 'restarted it on the same state' "$scratch/crash-run.err" || true)
	[ "$restarts" = "$KILLS" ] || die "uipc (CRASH=1): $restarts restarts of the private daemon, $KILLS kills"
	say "uipc (CRASH=1): $KILLS kills, $restarts restarts, pgbench finished with no failed transaction, no server restart"
	tps_uipc=$(cat "$scratch/crash-tps")
}

run_uipc() {
	if [ "$CRASH" = 1 ]; then
		run_uipc_crash
		return
	fi
	say "uipc daemon on $sock (as $PGUSER_RUN)"
	rm -f "$scratch/ready"
	mkfifo "$scratch/ready"
	local pgrun=() line=
	[ "$(id -u)" -eq 0 ] && pgrun=(setpriv --reuid="$PGUID" --regid="$PGGID" --init-groups --)
	# A simple command in the background: $! is the daemon itself (setpriv execs).
	"${pgrun[@]}" "$UIPC" daemon --socket "$sock" --ready-fd 3 3>"$scratch/ready" >"$scratch/daemon.log" 2>&1 &
	daemon_pid=$!
	# READY once it accepts connections; end of file if it died first.
	read -r -t 60 line <"$scratch/ready" || true
	[ "${line:-}" = READY ] || { cat "$scratch/daemon.log"; die "the daemon did not start"; }
	cycle uipc
	tps_uipc=$TPS
	kill "$daemon_pid"
	wait "$daemon_pid" || die "the daemon did not stop cleanly: $(cat "$scratch/daemon.log")"
	daemon_pid=
}

run_native() {
	if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
		# A fresh IPC namespace for the kernel run, as the differential tests do.
		say "native: in a fresh IPC namespace (unshare --ipc)"
		export -f cycle native as_pg say die write_conf
		export PGBENCH_OPTS PG_BIN PGUSER_RUN PGUID PGGID scratch PORT SCALE CLIENTS JOBS DURATION PARALLEL DSM SHM_TYPE
		# shellcheck disable=SC2016 # expanded by the inner bash
		tps_native=$(unshare --ipc bash -c 'cycle native >&2; echo "$TPS"')
	else
		cycle native
		tps_native=$TPS
	fi
}

if [ "${NATIVE_FIRST:-0}" = 1 ]; then
	run_native
	run_uipc
else
	run_uipc
	run_native
fi

printf '\nTPS (pgbench -c %s -j %s -T %s%s, scale %s, dynamic_shared_memory_type=%s):\n' "$CLIENTS" "$JOBS" "$DURATION" "${PGBENCH_OPTS:+ $PGBENCH_OPTS}" "$SCALE" "$DSM"
printf '  uipc (run --deny-kernel-ipc): %s\n' "$tps_uipc"
printf '  native (kernel):              %s\n' "$tps_native"
awk -v u="$tps_uipc" -v n="$tps_native" 'BEGIN { if (n > 0) printf "  uipc/native:                  %.3f\n", u / n }'
