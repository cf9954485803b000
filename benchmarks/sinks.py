#!/usr/bin/env python3
"""`consume --sink remote-write` into Prometheus 2.42 against Prometheus'
own ingest ceiling, measured the same way in the same round.

    benchmarks/sinks.py                   # 3 rounds
    SINK_RUNS=5 SINK_REQUESTS=500 benchmarks/sinks.py

Per round:
- ceiling: a fresh Prometheus (remote_write receiver, no scrapes) fed by
  `metricstream bench --format remote-write --samples-per-request 2000
  --clients 4 --keep-alive --requests N` (4 × N × 2000 samples);
- sink: the same requests into `metricstream serve` (embedded log,
  `--partition-by series`, 4 partitions), which is then stopped; a fresh
  Prometheus; `metricstream consume --sink remote-write --batch-samples
  2000 --exit-at-end` is timed from start to exit (4 partitions: 4 requests
  in flight at most, as the 4 bench clients). Its CPU is its rusage.
Both Prometheus runs must end with every sample appended
(`prometheus_tsdb_head_samples_appended_total`).

Writes benchmarks/results/sinks.json and prints the figures.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as suite  # noqa: E402
import remote_write as rw  # noqa: E402

ROOT = suite.ROOT
BIN = suite.BIN
RUNS = int(os.environ.get("SINK_RUNS", "3"))
CLIENTS = 4
SAMPLES = 2000
REQUESTS = int(os.environ.get("SINK_REQUESTS", "250"))
RESULTS = ROOT / "benchmarks/results/sinks.json"


def bench(url):
    out = Path(tempfile.mktemp(suffix=".json"))
    proc = subprocess.Popen(
        [str(BIN), "bench", "--url", url, "--quiet", "--json", str(out),
         "--format", "remote-write", "--samples-per-request", str(SAMPLES),
         "--clients", str(CLIENTS), "--keep-alive", "--requests", str(REQUESTS)])
    proc.wait()
    report = json.loads(out.read_text())
    out.unlink()
    return report


def ceiling():
    prom = rw.Prometheus()
    before = rw.cpu_secs(prom.proc.pid)
    report = bench(prom.url)
    cpu = rw.cpu_secs(prom.proc.pid) - before
    stored = prom.samples_stored()
    prom.stop()
    sent = report["successful"] * SAMPLES
    assert report["failed"] == 0 and stored == sent, (report, stored)
    return {"samples_per_sec": report["samples_per_sec"], "samples": sent,
            "store_cpu_per_million": cpu / (sent / 1e6)}


def sink():
    server = suite.Server("file", "durable", ("--rate-limit", "0", "--partition-by", "series",
                                              "--partitions", "4"))
    data = Path(tempfile.mkdtemp(prefix="msbench-sink-"))
    report = bench(server.url.replace("/metrics", "/api/v1/write"))
    assert report["failed"] == 0, report
    sent = report["successful"] * SAMPLES
    # Keep the queue: copy the data directory before the server removes it.
    server.proc.terminate()
    server.proc.wait(timeout=30)
    shutil.copytree(server.tmp, data, dirs_exist_ok=True)
    shutil.rmtree(server.tmp, ignore_errors=True)
    prom = rw.Prometheus()
    before = rw.cpu_secs(prom.proc.pid)
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN), "consume", "--group", "bench", "--from-beginning", "--exit-at-end",
         "--data-dir", str(data), "--sink", "remote-write", "--url", prom.url,
         "--batch-samples", str(SAMPLES)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    assert os.waitstatus_to_exitcode(status) == 0, "consume failed"
    store_cpu = rw.cpu_secs(prom.proc.pid) - before
    stored = prom.samples_stored()
    prom.stop()
    shutil.rmtree(data, ignore_errors=True)
    assert stored == sent, (stored, sent)
    cpu = usage.ru_utime + usage.ru_stime
    return {"samples_per_sec": sent / wall, "samples": sent, "wall_secs": wall,
            "consumer_cpu_per_million": cpu / (sent / 1e6),
            "store_cpu_per_million": store_cpu / (sent / 1e6)}


def main():
    runs = []
    for i in range(RUNS):
        c = ceiling()
        s = sink()
        ratio = s["samples_per_sec"] / c["samples_per_sec"]
        runs.append({"round": i, "ceiling": c, "sink": s, "ratio": ratio,
                     "loadavg": os.getloadavg()[0]})
        print(f"round {i + 1}/{RUNS}: Prometheus ceiling {c['samples_per_sec']:,.0f} samples/s; "
              f"consume --sink remote-write {s['samples_per_sec']:,.0f} samples/s "
              f"({ratio:.2f}×), consumer CPU {s['consumer_cpu_per_million']:.2f} s/M samples, "
              f"Prometheus CPU {c['store_cpu_per_million']:.2f} (bench) / "
              f"{s['store_cpu_per_million']:.2f} (sink) s/M", file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": suite.machine(), "runs": runs,
                                   "settings": {"clients": CLIENTS, "samples_per_request": SAMPLES,
                                                "requests_per_client": REQUESTS}}, indent=2))


if __name__ == "__main__":
    main()
