#!/usr/bin/env bash
# Fuzzes the request decoders and log recovery with cargo-fuzz (libFuzzer),
# FUZZ_SECONDS (60) each: ./scripts/fuzz.sh [decode] [recovery] [remote_write] [influx] [otlp]
#
# The corpus lives in fuzz/corpus/<target> and is minimized (cargo fuzz
# cmin) after each run; commit it. A crash is copied to
# fuzz/regressions/<target>/, which tests/fuzz_corpus.rs replays in every
# CI run, and the script exits 1. Per target it prints executions, time,
# corpus size and crashes, and appends a JSON line to
# $METRICSTREAM_RELIABILITY_OUT if set (the shape tests/common/report.rs
# writes). Not part of CI: libFuzzer wants a nightly toolchain and minutes.
set -euo pipefail
if [ -n "${METRICSTREAM_RELIABILITY_OUT:-}" ]; then
  METRICSTREAM_RELIABILITY_OUT="$(realpath -m "$METRICSTREAM_RELIABILITY_OUT")"
fi
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.1
SECONDS_EACH="${FUZZ_SECONDS:-60}"
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=(decode recovery remote_write influx otlp); fi

if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" >&2
fi
# libFuzzer's instrumentation needs nightly-only -Z flags: nightly if there
# is one, else stable told to accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
  echo "fuzzing with the nightly toolchain" >&2
else
  toolchain=()
  export RUSTC_BOOTSTRAP=1
  echo "no nightly toolchain: fuzzing with stable and RUSTC_BOOTSTRAP=1" >&2
fi
# No sanitizer: the code under test is safe Rust, and AddressSanitizer's
# flags break the build of the C libraries rdkafka compiles (zstd, librdkafka).
# The recovery target writes and fsyncs a partition directory per input.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

declare -A scenario=([decode]="fuzz: request decoder" [recovery]="fuzz: log recovery" [remote_write]="fuzz: remote_write decoder" [influx]="fuzz: line protocol parser" [otlp]="fuzz: OTLP decoder")
declare -A checks=(
  [decode]="arbitrary bytes (gzip or not) into the request decoder: a short 4xx message or a batch within every limit that round-trips through storage; never a panic"
  [remote_write]="arbitrary bytes (snappy or not) decoded as remote_write 1.0 and 2.0: an error, or series that keep every validation rule; never a panic"
  [influx]="arbitrary bytes parsed as InfluxDB line protocol: per-line errors that name their line, or lines that print back and re-parse to the same; never a panic"
  [otlp]="arbitrary bytes (JSON or protobuf, gzip or not) decoded as OTLP/HTTP metrics: a short error, or metrics within every limit with the documented reasons, an answer that encodes and a stored batch that reads back; never a panic"
  [recovery]="partition directories from arbitrary bytes, and valid logs damaged by them: recovery opens, keeps every record before the first damaged byte, reads back contiguously, appends and reopens cleanly; never a panic"
)

cd fuzz
found=0
for t in "${targets[@]}"; do
  [ -n "${scenario[$t]:-}" ] || { echo "unknown target $t (decode, recovery, remote_write, influx, otlp)" >&2; exit 2; }
  mkdir -p "corpus/$t" "regressions/$t" "artifacts/$t"
  log="artifacts/$t/run.log"
  rm -f artifacts/"$t"/{crash,timeout,oom,leak}-*
  # Built first, so the time reported is fuzzing time.
  cargo "${toolchain[@]}" fuzz build -s none "$t" >"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
  start=$(date +%s)
  set +e
  cargo "${toolchain[@]}" fuzz run -s none "$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >>"$log" 2>&1
  status=$?
  set -e
  elapsed=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # libFuzzer's own count of seconds fuzzed, when it got to print it.
  fuzzed=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  elapsed="${fuzzed:-$elapsed}"
  crashes=0
  for f in artifacts/"$t"/crash-* artifacts/"$t"/timeout-* artifacts/"$t"/oom-* artifacts/"$t"/leak-*; do
    [ -e "$f" ] || continue
    cp "$f" "regressions/$t/"
    crashes=$((crashes + 1))
  done
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    tail -30 "$log" >&2
    echo "$t: the fuzzer failed without leaving a reproducer (log: fuzz/$log)" >&2
    exit 1
  fi
  cargo "${toolchain[@]}" fuzz cmin -s none "$t" "corpus/$t" >>"$log" 2>&1
  corpus=$(find "corpus/$t" -type f | wc -l)
  detail="${execs:-0} execs in ${elapsed} s, corpus ${corpus}, ${crashes} crashes"
  echo "$t: $detail"
  if [ "$crashes" -gt 0 ]; then
    found=1
    grep -m1 -A12 -E "panicked|ERROR: libFuzzer" "$log" >&2 || true
    echo "$t: reproducers copied to fuzz/regressions/$t/ (replay: cargo fuzz run $t <file>)" >&2
  fi
  if [ -n "${METRICSTREAM_RELIABILITY_OUT:-}" ]; then
    # No quotes or backslashes in these strings: plain printf is valid JSON.
    printf '{"scenario":"%s","checks":"%s","acknowledged":0,"lost":0,"duplicated":0,"recovery_ms":0,"detail":"%s"}\n' \
      "${scenario[$t]}" "${checks[$t]}" "$detail" >>"$METRICSTREAM_RELIABILITY_OUT"
  fi
done
exit "$found"
