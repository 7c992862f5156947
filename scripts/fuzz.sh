#!/usr/bin/env bash
# Fuzzes uipc-proto's frame decoder with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh [RUNS] [TARGET...]
#
# RUNS defaults to 1000000 executions per target; TARGETs default to
# decode_request and decode_response (fuzz/fuzz_targets/). Seeds
# fuzz/corpus/<target>/ with one valid frame per message variant, then runs
# each target with one job and prints libFuzzer's execution counts.
# Extra libFuzzer flags come from $FUZZ_ARGS (e.g. FUZZ_ARGS=-max_len=65540).
# Crash inputs land in fuzz/artifacts/<target>/. Works on a stable toolchain:
# RUSTC_BOOTSTRAP=1 unlocks the nightly flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-1000000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_request decode_response)

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-fuzz}
export RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-1}

if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz.sh: installing cargo-fuzz" >&2
	cargo install --locked cargo-fuzz
fi

# Seed corpora (plain build, no sanitizer flags).
cargo run --quiet --release --manifest-path fuzz/Cargo.toml --bin seed -- fuzz/corpus

logdir=fuzz/artifacts/logs
mkdir -p "$logdir"
status=0
summary=()
for t in "${targets[@]}"; do
	log="$logdir/$t.log"
	# shellcheck disable=SC2206 # FUZZ_ARGS is a word list on purpose
	extra=(${FUZZ_ARGS:-})
	echo "== cargo fuzz run $t -- -runs=$runs ${extra[*]} (log: $log)" >&2
	start=$(date +%s)
	if cargo fuzz run "$t" -- -runs="$runs" -print_final_stats=1 "${extra[@]}" 2>&1 | tee "$log" >&2; then
		result=ok
	else
		result="FAILED (see fuzz/artifacts/$t/)"
		status=1
	fi
	secs=$(($(date +%s) - start))
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1 || true)
	execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -n1 || true)
	summary+=("$t: $result; executions=${execs:-?}; ${secs}s wall; ${done_line:-no DONE line}")
done

echo
echo "== fuzz summary"
for s in "${summary[@]}"; do echo "$s"; done
exit $status
