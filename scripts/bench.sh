#!/usr/bin/env bash
# Benchmarks uipc's attach+detach (and IPC_STAT, shmget of an existing key)
# through uipc-client against the kernel's System V calls on this machine.
#
#   scripts/bench.sh [ROUNDS [N_KERNEL [N_UIPC]]]
#
# Runs `cargo bench -p uipc-client --bench attach` (release profile, a
# daemon in-process) and prints ns/op per round, the medians and the ratio
# uipc/kernel. Defaults: 7 rounds of 20000 kernel / 5000 uipc iterations.
# UIPC_BENCH_ONLY=attach measures only attach+detach (for strace/perf).
# On a shared, noisy machine, read the medians, and run it more than once.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench}
[ $# -ge 1 ] && export UIPC_BENCH_ROUNDS=$1
[ $# -ge 2 ] && export UIPC_BENCH_N_KERNEL=$2
[ $# -ge 3 ] && export UIPC_BENCH_N_UIPC=$3

exec cargo bench -p uipc-client --bench attach
