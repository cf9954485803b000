#!/usr/bin/env python3
"""Renders RELIABILITY.md from the JSON lines the fault tests recorded
(tests/common/report.rs, scripts/fuzz.sh). Run by scripts/reliability.sh."""

import argparse
import json
import platform
import subprocess
import time

GUARANTEES = "docs/guarantees.md"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine():
    cpu = sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
    mem = sh("free -g | awk '/Mem:/ {print $2}'")
    fs = sh("df -T . | awk 'NR==2 {print $2}'")
    return f"{sh('nproc')} cores ({cpu}), {mem} GiB RAM, {fs} data disk, Linux {platform.release()}"


def unit_of(row):
    """What a row counts: the scenarios fed by a real Prometheus count
    samples (their figures say so), every other one batches."""
    return "samples" if "Prometheus" in row["scenario"] else "batches"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--scale", default="1")
    ap.add_argument("--fuzz-seconds", default="0")
    ap.add_argument("--elapsed", default="0")
    ap.add_argument("--status", default="0")
    # To render an earlier run again (the renderer changed, not the run):
    # the commit it measured and when it ended.
    ap.add_argument("--commit", default=None)
    ap.add_argument("--when", default=None)
    a = ap.parse_args()
    rows = []
    with open(a.jsonl) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))

    commit = a.commit or sh("git rev-parse --short HEAD")
    when = a.when or time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    out = []
    out.append("# Reliability report\n")
    out.append(
        "What metricstream survives, measured. Each row is one scenario of the "
        "fault, overload and hostile-input suite: what it checks and what it "
        "measured in the latest run of `scripts/reliability.sh`, which "
        "regenerates this file. **Acknowledged** counts batches that got a 2xx "
        "(samples in the rows fed by Prometheus, whose figures say so: Prometheus "
        "sends requests of whatever samples it has, so a sample is the unit "
        "compared); **lost** are acknowledged ones a reader did not find "
        "afterwards (read back, never a server's counter); **duplicated** are "
        "ones found more than once; **recovery** is the slowest restart or "
        "return to service in the scenario.\n"
    )
    out.append(f"- Run: {when}, commit `{commit}`, "
               f"{int(a.elapsed) // 60} min in all")
    out.append(f"- Machine: {machine()}")
    out.append(f"- Scale: {a.scale}× the CI rounds (`METRICSTREAM_FAULT_SCALE`); "
               f"each fuzz target ran {a.fuzz_seconds} s")
    verdict = "all passed" if a.status == "0" else f"FAILED (exit status {a.status}): see the test output"
    out.append(f"- Tests: {verdict}\n")

    def total(unit):
        these = [r for r in rows if unit_of(r) == unit]
        return {k: sum(r[k] for r in these) for k in ("acknowledged", "lost", "duplicated")}

    b, s_ = total("batches"), total("samples")
    out.append(
        f"**{len(rows)} scenarios: {b['acknowledged']:,} batches acknowledged, {b['lost']} lost, "
        f"{b['duplicated']} duplicated; {s_['acknowledged']:,} samples acknowledged (the "
        f"Prometheus rows), {s_['lost']} lost, {s_['duplicated']} duplicated.**\n"
    )
    out.append("| Scenario | What it checks | Acknowledged | Lost | Duplicated | Recovery | Figures |")
    out.append("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        rec = f"{r['recovery_ms'] / 1000:.2f} s" if r["recovery_ms"] else "–"
        out.append(
            f"| {cell(r['scenario'])} | {cell(r['checks'])} | {r['acknowledged']:,} | "
            f"{r['lost']} | {r['duplicated']} | {rec} | {cell(r['detail'])} |"
        )
    out.append("")
    # The README's guarantees and their tests: kept by hand beside the code.
    with open(GUARANTEES) as f:
        out.append(f.read())
    out.append("## Reading the figures\n")
    out.append(
        "- The tests run the debug build (`cargo test`), on the same 2 cores as their "
        "load and, for Kafka, the broker: throughput here is far below the release "
        "figures in BENCHMARKS.md, and the timings are upper bounds.\n"
        "- Overload: *capacity* is measured in the same run (64 closed-loop clients, "
        "batches of 200 metrics); the storm then offers ten times that, open loop, from "
        "400 connections against `--max-inflight 100` (the generator cannot reach the "
        "default 1024 slots from this machine). *Not sent* are requests the generator "
        "itself could not send on schedule; *probe* is an ordinary client posting every "
        "50 ms during the storm.\n"
        "- Kafka rows run against tansu 0.6.0, a Kafka-API broker on sqlite "
        "(docs/kafka.md lists where it differs from Apache Kafka, e.g. the wrong offset "
        "it returns for a retried batch, counted in the durable kill row).\n"
        "- Torn writes destroy acknowledged batches on purpose (the damage is the point); "
        "they are not counted as lost: the check is that recovery keeps exactly the "
        "prefix before the damage.\n"
    )
    out.append("## How it runs\n")
    out.append(
        "- Every scenario is a Rust integration test under `tests/` that starts the real "
        "`metricstream` binary (and, for Kafka, its own tansu broker) and checks what "
        "a reader finds afterwards against every 200 the clients saw. At scale 1 they "
        "all run in CI (`./scripts/test.sh`); `scripts/reliability.sh` runs them at a "
        "larger scale and writes this file.\n"
        "- The fuzz targets (`fuzz/`, cargo-fuzz) run only in `scripts/fuzz.sh`; their "
        "corpus and any crash reproducers are replayed by `tests/fuzz_corpus.rs` in CI.\n"
        "- Raw figures: `benchmarks/results/reliability.jsonl`."
    )
    print("\n".join(out))


if __name__ == "__main__":
    main()
