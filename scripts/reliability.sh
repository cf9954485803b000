#!/usr/bin/env bash
# Regenerates RELIABILITY.md: runs every fault, overload and hostile-input
# test at a larger scale than CI (METRICSTREAM_FAULT_SCALE, default 3: more
# kills, rounds and seconds), then each fuzz target for FUZZ_SECONDS, and
# renders the figures the tests recorded. Takes 15–30 minutes on 2 cores.
#
#   ./scripts/reliability.sh              # scale 3, 120 s per fuzz target
#   SCALE=1 FUZZ_SECONDS=30 ./scripts/reliability.sh   # a quick pass
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

SCALE="${SCALE:-3}"
export FUZZ_SECONDS="${FUZZ_SECONDS:-120}"
OUT="benchmarks/results/reliability.jsonl"
mkdir -p benchmarks/results
: >"$OUT"
export METRICSTREAM_RELIABILITY_OUT="$PWD/$OUT"
export METRICSTREAM_FAULT_SCALE="$SCALE"

started=$(date +%s)
status=0
# Every integration test runs; the ones that are fault scenarios record
# their figures (--all-features: the tests against real Prometheus, InfluxDB
# and client libraries too). One test at a time, so timings are not each
# other's noise.
cargo test --locked --all-features --tests -- --test-threads=1 || status=$?

if [ -x scripts/fuzz.sh ]; then
  ./scripts/fuzz.sh || status=$?
fi

python3 scripts/reliability_report.py "$OUT" \
  --scale "$SCALE" --fuzz-seconds "$FUZZ_SECONDS" \
  --elapsed "$(( $(date +%s) - started ))" --status "$status" >RELIABILITY.md
echo "wrote RELIABILITY.md ($(wc -l <"$OUT") scenarios; tests exit status $status)" >&2
exit "$status"
