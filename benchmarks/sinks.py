#!/usr/bin/env python3
"""`consume --sink remote-write` into Prometheus 2.42 against Prometheus'
own ingest ceiling, measured the same way in the same round.

    benchmarks/sinks.py                   # 3 rounds
    SINK_RUNS=5 SINK_REQUESTS=500 benchmarks/sinks.py
    INFLUX=0 benchmarks/sinks.py          # without the InfluxDB column
    benchmarks/sinks.py --render          # redraw the section from the saved results

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
(`prometheus_tsdb_head_samples_appended_total`). Then the same queue into a
fresh InfluxDB 1.6 with `--sink influx` (every point counted back with
`/query`), beside InfluxDB's own ceiling: a fresh InfluxDB fed by
`metricstream bench --format influx --samples-per-request 2000 --clients 4
--keep-alive --requests N` (Telegraf cpu-like lines of 3 fields, so 667
points per request where the sink sends 2000 one-field points: the ceiling
is the easier load for InfluxDB, the ratio a lower bound).

Writes benchmarks/results/sinks.json and the "consume sinks" section of
BENCHMARKS.md, and prints the figures.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
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
INFLUXD = os.environ.get("METRICSTREAM_INFLUXD", "/usr/bin/influxd")
INFLUX = os.environ.get("INFLUX", "1") != "0" and Path(INFLUXD).exists()


def bench(url, fmt="remote-write"):
    out = Path(tempfile.mktemp(suffix=".json"))
    proc = subprocess.Popen(
        [str(BIN), "bench", "--url", url, "--quiet", "--json", str(out),
         "--format", fmt, "--samples-per-request", str(SAMPLES),
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


def filled_queue():
    """The bench requests stored by `serve` (embedded log, 4 partitions, by
    series): its data directory, and the samples in it."""
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
    return data, sent


def timed_consume(data, sent, store, stored, sink_args):
    """`consume --exit-at-end` of the whole queue into `store`, timed; checks
    that `stored()` then counts every sample, and stops the store."""
    before = rw.cpu_secs(store.proc.pid)
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN), "consume", "--group", "bench", "--from-beginning", "--exit-at-end",
         "--data-dir", str(data), *sink_args, "--batch-samples", str(SAMPLES)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    assert os.waitstatus_to_exitcode(status) == 0, "consume failed"
    store_cpu = rw.cpu_secs(store.proc.pid) - before
    count = stored()
    store.stop()
    shutil.rmtree(data, ignore_errors=True)
    assert count == sent, (count, sent)
    cpu = usage.ru_utime + usage.ru_stime
    return {"samples_per_sec": sent / wall, "samples": sent, "wall_secs": wall,
            "consumer_cpu_per_million": cpu / (sent / 1e6),
            "store_cpu_per_million": store_cpu / (sent / 1e6)}


def sink():
    data, sent = filled_queue()
    prom = rw.Prometheus()
    return timed_consume(data, sent, prom, prom.samples_stored,
                         ["--sink", "remote-write", "--url", prom.url])


class Influx:
    """InfluxDB 1.6 with its own temp dir and ports, database `bench`."""

    def __init__(self):
        self.port = suite.free_port()
        self.tmp = tempfile.mkdtemp(prefix="msbench-influx-")
        t = self.tmp
        config = Path(t) / "influxdb.conf"
        config.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{suite.free_port()}"\n'
            f'[meta]\n  dir = "{t}/meta"\n[data]\n  dir = "{t}/data"\n  wal-dir = "{t}/wal"\n'
            f'  query-log-enabled = false\n[http]\n  enabled = true\n'
            f'  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            f'[monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n')
        self.proc = subprocess.Popen([INFLUXD, "run", "-config", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as r:
                    if r.status == 204:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "influxd did not start"
            time.sleep(0.2)
        q = urllib.parse.quote("CREATE DATABASE bench")
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{self.port}/query?q={q}", method="POST"), timeout=10).read()
        self.url = f"http://127.0.0.1:{self.port}/write"

    def count(self):
        q = urllib.parse.quote('SELECT count("value") FROM /.*/')
        with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/query?db=bench&q={q}", timeout=60) as r:
            j = json.loads(r.read())
        return sum(s["values"][0][1] for s in j["results"][0].get("series", []))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.tmp, ignore_errors=True)


def influx_ceiling():
    """InfluxDB 1.6's own ingest of line protocol from the load generator."""
    db = Influx()
    before = rw.cpu_secs(db.proc.pid)
    report = bench(db.url + "?db=bench", "influx")
    cpu = rw.cpu_secs(db.proc.pid) - before
    db.stop()
    sent = report["successful"] * SAMPLES
    assert report["failed"] == 0, report
    return {"samples_per_sec": report["samples_per_sec"], "samples": sent,
            "store_cpu_per_million": cpu / (sent / 1e6)}


def sink_influx():
    """The same queue into InfluxDB 1.6."""
    data, sent = filled_queue()
    db = Influx()
    return timed_consume(data, sent, db, db.count,
                         ["--sink", "influx", "--url", db.url, "--influx-db", "bench"])


def main():
    runs = []
    for i in range(RUNS):
        c = ceiling()
        s = sink()
        ratio = s["samples_per_sec"] / c["samples_per_sec"]
        fc = influx_ceiling() if INFLUX else None
        f = sink_influx() if INFLUX else None
        if f:
            f["ratio"] = f["samples_per_sec"] / fc["samples_per_sec"]
        runs.append({"round": i, "ceiling": c, "sink": s, "ratio": ratio, "influx": f,
                     "influx_ceiling": fc, "loadavg": os.getloadavg()[0]})
        print(f"round {i + 1}/{RUNS}: Prometheus ceiling {c['samples_per_sec']:,.0f} samples/s; "
              f"consume --sink remote-write {s['samples_per_sec']:,.0f} samples/s "
              f"({ratio:.2f}×), consumer CPU {s['consumer_cpu_per_million']:.2f} s/M samples, "
              f"Prometheus CPU {c['store_cpu_per_million']:.2f} (bench) / "
              f"{s['store_cpu_per_million']:.2f} (sink) s/M", file=sys.stderr)
        if f:
            print(f"round {i + 1}/{RUNS}: InfluxDB ceiling {fc['samples_per_sec']:,.0f} samples/s; "
                  f"consume --sink influx {f['samples_per_sec']:,.0f} samples/s "
                  f"({f['ratio']:.2f}×), consumer CPU "
                  f"{f['consumer_cpu_per_million']:.2f} s/M, InfluxDB CPU "
                  f"{f['store_cpu_per_million']:.2f} s/M", file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": suite.machine(), "runs": runs,
                                   "settings": {"clients": CLIENTS, "samples_per_request": SAMPLES,
                                                "requests_per_client": REQUESTS}}, indent=2))
    render()


def render():
    """The "consume sinks" section of BENCHMARKS.md from the saved results."""
    r = json.loads(RESULTS.read_text())
    runs, m = r["runs"], r["machine"]
    ratios = [x["ratio"] for x in runs]
    iratios = [x["influx"]["ratio"] for x in runs if x.get("influx") and "ratio" in x["influx"]]
    influx_verdict = (
        f"Into InfluxDB: median {statistics.median(iratios):.2f}× of its ceiling "
        f"({min(iratios):.2f}–{max(iratios):.2f}) — "
        f"**{'met' if statistics.median(iratios) >= 0.8 else 'not met'}**."
        if iratios else "")
    cpu = [x["sink"]["consumer_cpu_per_million"] for x in runs]
    pcpu = [x["sink"]["store_cpu_per_million"] for x in runs]
    rows = []
    for x in runs:
        c, s, f = x["ceiling"], x["sink"], x.get("influx")
        fc = x.get("influx_ceiling")
        influx = (f"{f['samples_per_sec']:,.0f} samples/s ({f['consumer_cpu_per_million']:.2f} / "
                  f"{f['store_cpu_per_million']:.2f})" if f else "n/a")
        if fc:
            influx = (f"{fc['samples_per_sec']:,.0f} samples/s | {influx} | "
                      f"{f['ratio']:.2f}")
        else:
            influx = f"n/a | {influx} | n/a"
        rows.append(f"| {x['round'] + 1} | {c['samples_per_sec']:,.0f} samples/s | "
                    f"{s['samples_per_sec']:,.0f} samples/s | {x['ratio']:.2f} | "
                    f"{s['consumer_cpu_per_million']:.2f} | {c['store_cpu_per_million']:.2f} / "
                    f"{s['store_cpu_per_million']:.2f} | {influx} | {x['loadavg']:.1f} |")
    med = statistics.median(ratios)
    text = f"""## consume sinks

`metricstream consume --sink remote-write` into Prometheus 2.42, beside
Prometheus' own ingest ceiling measured the same way in the same round, and
`--sink influx` into InfluxDB 1.6 (`benchmarks/sinks.py`, raw figures in
`benchmarks/results/sinks.json`):

- ceiling: a fresh Prometheus (`--web.enable-remote-write-receiver`, no
  scrapes) fed by `metricstream bench --format remote-write
  --samples-per-request {SAMPLES} --clients {CLIENTS} --keep-alive --requests {REQUESTS}`
  ({CLIENTS * REQUESTS * SAMPLES:,} samples, 400 series × 5 samples per request);
- sink: the same requests into `metricstream serve` (embedded log, 4
  partitions, `--partition-by series`), stopped; then a fresh Prometheus and
  `metricstream consume --sink remote-write --batch-samples {SAMPLES}
  --exit-at-end`, timed from start to exit. Same batch size; 4 partitions =
  at most 4 requests in flight, as the {CLIENTS} bench clients. Every run ends with
  all samples appended in Prometheus
  (`prometheus_tsdb_head_samples_appended_total`, checked by the script);
- influx: the same queue into a fresh InfluxDB 1.6 (`/write`, precision ms),
  every point counted back with `/query`; its ceiling: a fresh InfluxDB fed
  by `metricstream bench --format influx --samples-per-request {SAMPLES}
  --clients {CLIENTS} --keep-alive --requests {REQUESTS}` (lines of 3 fields:
  667 points per request where the sink sends {SAMPLES} one-field points, so
  the ceiling is the easier load and the ratio a lower bound).

CPU per million samples: the consumer's rusage (user + system); the store's
utime + stime over the run (`/proc/PID/stat`).

Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']};
{m['rustc']}; {m['date']}; {len(runs)} rounds. The machine was shared with other
builds (1-minute load average after each round in the last column), so
absolute figures move; the ratio (same round, back to back) is the useful one.

| round | Prometheus ceiling (bench) | consume --sink remote-write | ratio | consumer CPU s per M samples | Prometheus CPU s per M (bench / sink) | InfluxDB ceiling (bench) | consume --sink influx (consumer / InfluxDB CPU s per M) | ratio | load |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

Target (issue 12): the sink at ≥ 0.8 × the store's own ceiling — **{"met" if med >= 0.8 else "not met"}**:
median {med:.2f}× ({min(ratios):.2f}–{max(ratios):.2f}). {influx_verdict}
Why: the consumer and the store share the 2 cores. Prometheus spends
{min(pcpu):.2f}–{max(pcpu):.2f} s per million samples; the consumer {min(cpu):.2f}–{max(cpu):.2f}
(the bench client ≈ 0.2), so together they saturate the 2 cores near 2 × 10⁶ /
({statistics.median(cpu):.2f} + {statistics.median(pcpu):.2f}) ≈
{2e6 / (statistics.median(cpu) + statistics.median(pcpu)) / 1000:,.0f}k samples/s, and the
sink lands at ≈ 85–90% of that (the 4 partitions differ by ≈ 12% in size,
so the last stretch runs with fewer requests in flight). 0.8× of the
ceiling needs the consumer at ≈ 0.55 s per million with every core busy,
≈ 0.3 at today's 87%.

Before this round of work (build bcdf7b1, same machine kind, earlier the
same day, 3 rounds): consumer 1.94–2.02 s per million, ratio 0.46–0.52×
(remote-write), 0.44–0.50× (influx). What cut it (each measured with
`perf` against a do-nothing store): stored records read by a decoder for
exactly what `serve` writes (`src/sink/stored.rs`: strings found eight
bytes at a time, UTF-8 checked once per record, serde for anything else)
instead of serde (JSON was ≈ 27% of the consumer); a known series found by
the bytes its record spells it with (one hash, one comparison, tags not
parsed); remote_write encoded by hand with each series' labels encoded
once per series, not once per request (the prost structs cloned every
label); InfluxDB series keys made once per series; recently delivered
samples in a ring instead of a hash set (its insert and remove were ≈ 5%);
sample sizes precomputed (page faults per run of 2 M samples went from
1,300–2,100 to ≈ 580 with these: fewer fresh allocations);
offsets committed every 200 ms instead of two fsyncs per batch. What is
left (profile with a do-nothing store): the kernel's copy of the log into
the reader ≈ 19% and zeroing of fresh memory ≈ 16% (first touch of a page
is slow on this VM; the consumer's resident set grows to ≈ 170 MB, mostly
record buffers freed on another thread than the one that allocated them),
scanning the stored JSON ≈ 15%, series lookup ≈ 7%, snappy ≈ 4%. Tried
and dropped: decoding on the thread that reads the log (the buffers are
then freed where they were allocated, but that thread became the limit:
slower), mimalloc v2 and other purge settings (no change), 2 instead of 4
runtime threads (no change). The influx sink costs ≈ 1.25× the consumer
CPU of remote-write per sample (a text line per point); InfluxDB itself
spends ≈ 4 s per million one-field points, so its ratio is bound the same way.

"""
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text()
    start = doc.index("## consume sinks")
    end = doc.index("## Micro-benchmarks")
    path.write_text(doc[:start] + text + doc[end:])


if __name__ == "__main__":
    if "--render" in sys.argv:
        render()
    else:
        main()
