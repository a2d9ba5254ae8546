#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time and prints one summary line
# per target (executions, coverage, corpus, peak RSS, crashes).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 300 s, all targets)
#
# Needs the nightly toolchain (`rustup toolchain install nightly`) and
# cargo-fuzz (`cargo install cargo-fuzz`); installs cargo-fuzz when missing.
# The corpus grows in fuzz/corpus/<target> (not committed); seeds come from
# fuzz/seeds/<target>. A crash leaves its input in fuzz/artifacts/<target>/:
# copy it to fuzz/regressions/<target>/ so that `cargo test` replays it
# (tests/fuzz_replay.rs, server/tests/fuzz_replay.rs), then fix the bug.
# Logs: target/fuzz-logs/<target>.log. Results go in docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-300}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(decode_preprocess to_mnist read request oip_request idx)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build
mkdir -p target/fuzz-logs
printf '%-18s %8s %12s %10s %8s %8s %9s %s\n' target seconds executions exec/s cov corpus rss_mb crashes
status=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
    log="target/fuzz-logs/$target.log"
    set +e
    cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    executions=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" || echo 0)
    rss=$(grep -oP 'stat::peak_rss_mb:\s*\K[0-9]+' "$log" || echo '?')
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(grep -oP 'cov: \K[0-9]+' <<<"$last" || echo '?')
    corpus=$(ls "fuzz/corpus/$target" | wc -l)
    crashes=$(ls "fuzz/artifacts/$target" 2>/dev/null | grep -cE '^(crash|oom|timeout|leak)-' || true)
    printf '%-18s %8s %12s %10s %8s %8s %9s %s\n' "$target" "$seconds" "$executions" \
        "$((executions / (seconds > 0 ? seconds : 1)))" "$cov" "$corpus" "$rss" "$crashes"
    if [ "$rc" -ne 0 ]; then
        echo "  $target stopped with exit code $rc: see $log and fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
