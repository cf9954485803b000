#!/usr/bin/env python3
"""`consume --sink remote-write` into Prometheus 2.42 against Prometheus'
own ingest ceiling, measured the same way in the same round.

    benchmarks/sinks.py                   # 5 rounds
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

Then the consumer alone: the same queue, and one where every sample is a
new series (`bench --series-churn`), into a do-nothing store
(examples/noop_server): its CPU per sample and peak RSS.

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
RUNS = int(os.environ.get("SINK_RUNS", "5"))
CLIENTS = 4
SAMPLES = 2000
REQUESTS = int(os.environ.get("SINK_REQUESTS", "250"))
RESULTS = ROOT / "benchmarks/results/sinks.json"
INFLUXD = os.environ.get("METRICSTREAM_INFLUXD", "/usr/bin/influxd")
INFLUX = os.environ.get("INFLUX", "1") != "0" and Path(INFLUXD).exists()


# The sink's requests: 4 clients × 400 series over 4 partitions × 4 lanes
# (`--in-flight 4`) ≈ 100 series per lane, so 2000 samples ≈ 100 × 20.
SINK_SHAPE_SERIES = 100


def bench(url, fmt="remote-write", extra=()):
    out = Path(tempfile.mktemp(suffix=".json"))
    proc = subprocess.Popen(
        [str(BIN), "bench", "--url", url, "--quiet", "--json", str(out),
         "--format", fmt, "--samples-per-request", str(SAMPLES),
         "--clients", str(CLIENTS), "--keep-alive", "--requests", str(REQUESTS), *extra])
    proc.wait()
    report = json.loads(out.read_text())
    out.unlink()
    return report


def ceiling(extra=()):
    prom = rw.Prometheus()
    before = rw.cpu_secs(prom.proc.pid)
    report = bench(prom.url, extra=extra)
    cpu = rw.cpu_secs(prom.proc.pid) - before
    stored = prom.samples_stored()
    prom.stop()
    sent = report["successful"] * SAMPLES
    assert report["failed"] == 0 and stored == sent, (report, stored)
    return {"samples_per_sec": report["samples_per_sec"], "samples": sent,
            "store_cpu_per_million": cpu / (sent / 1e6)}


def filled_queue(extra=()):
    """The bench requests stored by `serve` (embedded log, 4 partitions, by
    series): its data directory, and the samples in it."""
    server = suite.Server("file", "durable", ("--rate-limit", "0", "--partition-by", "series",
                                              "--partitions", "4"))
    data = Path(tempfile.mkdtemp(prefix="msbench-sink-"))
    report = bench(server.url.replace("/metrics", "/api/v1/write"), extra=extra)
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
    # A do-nothing store counts nothing (None): its rows measure the
    # consumer's CPU, not delivery.
    assert count is None or count == sent, (count, sent)
    cpu = usage.ru_utime + usage.ru_stime
    return {"samples_per_sec": sent / wall, "samples": sent, "wall_secs": wall,
            "consumer_cpu_per_million": cpu / (sent / 1e6),
            "consumer_peak_rss_mib": usage.ru_maxrss / 1024,
            "store_cpu_per_million": store_cpu / (sent / 1e6)}


def sink(extra=()):
    data, sent = filled_queue()
    prom = rw.Prometheus()
    return timed_consume(data, sent, prom, prom.samples_stored,
                         ["--sink", "remote-write", "--url", prom.url, *extra])


NOOP = ROOT / "target/release/examples/noop_server"


class Noop:
    """A do-nothing store (examples/noop_server: 200 to any POST): what the
    consumer alone costs."""

    def __init__(self):
        self.port = suite.free_port()
        self.proc = subprocess.Popen([str(NOOP), f"127.0.0.1:{self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        suite.wait_http(f"http://127.0.0.1:{self.port}/health", timeout=30)
        self.url = f"http://127.0.0.1:{self.port}/metrics"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def sink_noop(churn=False):
    """The queue into the do-nothing store; with `churn`, a queue where
    every sample is a new series (`bench --series-churn`, one sample per
    series)."""
    extra = ("--series-churn", "--series-per-request", str(SAMPLES)) if churn else ()
    data, sent = filled_queue(extra)
    store = Noop()
    return timed_consume(data, sent, store, lambda: None,
                         ["--sink", "remote-write", "--url", store.url])


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


def influx_ceiling(extra=()):
    """InfluxDB 1.6's own ingest of line protocol from the load generator."""
    db = Influx()
    before = rw.cpu_secs(db.proc.pid)
    report = bench(db.url + "?db=bench", "influx", extra)
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
    subprocess.run(["cargo", "build", "--release", "--bin", "metricstream", "--example",
                    "noop_server"], cwd=ROOT, check=True)
    runs = []
    for i in range(RUNS):
        c = ceiling()
        cs = ceiling(("--series-per-request", str(SINK_SHAPE_SERIES)))
        s = sink()
        s1 = sink(("--in-flight", "1"))
        ratio = s["samples_per_sec"] / c["samples_per_sec"]
        s["ratio_same_shape"] = s["samples_per_sec"] / cs["samples_per_sec"]
        s1["ratio"] = s1["samples_per_sec"] / c["samples_per_sec"]
        n = sink_noop()
        ch = sink_noop(churn=True)
        fc = influx_ceiling() if INFLUX else None
        fc1 = influx_ceiling(("--fields-per-line", "1")) if INFLUX else None
        f = sink_influx() if INFLUX else None
        if f:
            f["ratio"] = f["samples_per_sec"] / fc["samples_per_sec"]
            f["ratio_one_field"] = f["samples_per_sec"] / fc1["samples_per_sec"]
        runs.append({"round": i, "ceiling": c, "ceiling_sink_shape": cs, "sink": s,
                     "sink_in_flight_1": s1, "ratio": ratio, "influx": f,
                     "noop": n, "churn": ch,
                     "influx_ceiling": fc, "influx_ceiling_one_field": fc1,
                     "loadavg": os.getloadavg()[0]})
        print(f"round {i + 1}/{RUNS}: Prometheus ceiling {c['samples_per_sec']:,.0f} samples/s; "
              f"consume --sink remote-write {s['samples_per_sec']:,.0f} samples/s "
              f"({ratio:.2f}×), consumer CPU {s['consumer_cpu_per_million']:.2f} s/M samples, "
              f"Prometheus CPU {c['store_cpu_per_million']:.2f} (bench) / "
              f"{s['store_cpu_per_million']:.2f} (sink) s/M", file=sys.stderr)
        print(f"round {i + 1}/{RUNS}: ceiling at the sink's shape ({SINK_SHAPE_SERIES} series × "
              f"{SAMPLES // SINK_SHAPE_SERIES} samples) {cs['samples_per_sec']:,.0f} samples/s, "
              f"Prometheus CPU {cs['store_cpu_per_million']:.2f} s/M: sink "
              f"{s['ratio_same_shape']:.2f}× of it; --in-flight 1: "
              f"{s1['samples_per_sec']:,.0f} samples/s ({s1['ratio']:.2f}×), Prometheus CPU "
              f"{s1['store_cpu_per_million']:.2f} s/M", file=sys.stderr)
        print(f"round {i + 1}/{RUNS}: into a do-nothing store: consumer CPU "
              f"{n['consumer_cpu_per_million']:.2f} s/M (repeated series), "
              f"{ch['consumer_cpu_per_million']:.2f} s/M (every sample a new series), peak RSS "
              f"{n['consumer_peak_rss_mib']:.0f} / {ch['consumer_peak_rss_mib']:.0f} MiB",
              file=sys.stderr)
        if f:
            print(f"round {i + 1}/{RUNS}: InfluxDB ceiling {fc['samples_per_sec']:,.0f} samples/s; "
                  f"consume --sink influx {f['samples_per_sec']:,.0f} samples/s "
                  f"({f['ratio']:.2f}×), consumer CPU "
                  f"{f['consumer_cpu_per_million']:.2f} s/M, InfluxDB CPU "
                  f"{f['store_cpu_per_million']:.2f} s/M; one-field ceiling "
                  f"{fc1['samples_per_sec']:,.0f} samples/s (InfluxDB CPU "
                  f"{fc1['store_cpu_per_million']:.2f} s/M): sink {f['ratio_one_field']:.2f}× of it",
                  file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": suite.machine(), "runs": runs,
                                   "settings": {"clients": CLIENTS, "samples_per_request": SAMPLES,
                                                "requests_per_client": REQUESTS}}, indent=2))
    if os.environ.get("SINK_RENDER", "1") == "1":
        render()


def headline(r):
    """The header table's rows for this section: (target, figure, met)."""
    runs = r["runs"]
    if not runs:
        return []
    med = statistics.median
    shape = [x["sink"]["ratio_same_shape"] for x in runs]
    rows = [("consume --sink remote-write ≥ 0.8 × Prometheus' ceiling at the sink's request shape",
             rw.span(shape, 2, "×"), suite.judge(shape, lambda x: x >= 0.8))]
    nruns = [x for x in runs if x.get("noop") and x.get("churn")]
    if nruns:
        n = [x["noop"]["consumer_cpu_per_million"] for x in nruns]
        c = [x["churn"]["consumer_cpu_per_million"] for x in nruns]
        rows += [("consume CPU ≤ 0.25 s per million samples (repeated series, do-nothing store)",
                  rw.span(n, 2, " s"), suite.judge(n, lambda x: x <= 0.25)),
                 ("consume CPU ≤ 1 s per million samples (every sample a new series)",
                  rw.span(c, 2, " s"), suite.judge(c, lambda x: x <= 1.0))]
    return rows


def render():
    """The "consume sinks" section of BENCHMARKS.md from the saved results."""
    r = json.loads(RESULTS.read_text())
    runs, m = r["runs"], r["machine"]
    med = statistics.median

    def span(xs, fmt="{:.2f}"):
        return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"

    ratios = [x["ratio"] for x in runs]
    shape = [x["sink"]["ratio_same_shape"] for x in runs]
    one = [x["sink_in_flight_1"]["ratio"] for x in runs]
    cpu = [x["sink"]["consumer_cpu_per_million"] for x in runs]
    p_bench = [x["ceiling"]["store_cpu_per_million"] for x in runs]
    p_shape = [x["ceiling_sink_shape"]["store_cpu_per_million"] for x in runs]
    p_sink = [x["sink"]["store_cpu_per_million"] for x in runs]
    rows = []
    for x in runs:
        c, cs, s, s1 = x["ceiling"], x["ceiling_sink_shape"], x["sink"], x["sink_in_flight_1"]
        rows.append(
            f"| {x['round'] + 1} | {c['samples_per_sec']:,.0f} | {s['samples_per_sec']:,.0f} | "
            f"{x['ratio']:.2f} | {cs['samples_per_sec']:,.0f} | **{s['ratio_same_shape']:.2f}** | "
            f"{s1['samples_per_sec']:,.0f} | {s1['ratio']:.2f} | "
            f"{s['consumer_cpu_per_million']:.2f} / {s1['consumer_cpu_per_million']:.2f} | "
            f"{c['store_cpu_per_million']:.2f} / {cs['store_cpu_per_million']:.2f} / "
            f"{s['store_cpu_per_million']:.2f} / {s1['store_cpu_per_million']:.2f} | "
            f"{x['loadavg']:.1f} |")
    irows, iratios, ione, icpu, isink = [], [], [], [], []
    for x in runs:
        f, fc, fc1 = x.get("influx"), x.get("influx_ceiling"), x.get("influx_ceiling_one_field")
        if not (f and fc and fc1):
            continue
        iratios.append(f["ratio"])
        ione.append(f["ratio_one_field"])
        icpu.append(f["consumer_cpu_per_million"])
        isink.append(f["store_cpu_per_million"])
        irows.append(
            f"| {x['round'] + 1} | {fc['samples_per_sec']:,.0f} | {fc1['samples_per_sec']:,.0f} | "
            f"{f['samples_per_sec']:,.0f} | {f['ratio']:.2f} | **{f['ratio_one_field']:.2f}** | "
            f"{f['consumer_cpu_per_million']:.2f} | {fc['store_cpu_per_million']:.2f} / "
            f"{fc1['store_cpu_per_million']:.2f} / {f['store_cpu_per_million']:.2f} |")
    noop = ""
    nruns = [x for x in runs if x.get("noop") and x.get("churn")]
    if nruns:
        ncpu = [x["noop"]["consumer_cpu_per_million"] for x in nruns]
        ccpu = [x["churn"]["consumer_cpu_per_million"] for x in nruns]
        nrss = [x["noop"]["consumer_peak_rss_mib"] for x in nruns]
        crss = [x["churn"]["consumer_peak_rss_mib"] for x in nruns]
        whole = "{:.0f}"
        noop = f"""
The consumer alone, into a do-nothing store (`examples/noop_server`, 200 to
anything; nothing counted back: these rows measure CPU, not delivery), the
same queue (repeated series: 1,600 series, each sample of one) and a queue
where every sample is a new series (`bench --series-churn
--series-per-request {SAMPLES}`: {CLIENTS * REQUESTS * SAMPLES:,} series, one sample
each, as an agent with short-lived series sends), `--sink remote-write`:

| queue | consumer CPU s per M samples | target | peak RSS MiB |
|---|---|---|---|
| repeated series | {span(ncpu)} | ≤ 0.25 — **{"met" if med(ncpu) <= 0.25 else "not met"}** | {span(nrss, whole)} |
| every sample a new series | {span(ccpu)} | ≤ 1 — **{"met" if med(ccpu) <= 1.0 else "not met"}** | {span(crss, whole)} |
"""
    influx = ""
    if irows:
        influx = f"""
Into InfluxDB 1.6 (`/write`, precision ms; every point counted back with
`/query`). The sink writes one point per sample (measurement = metric name,
field `value`: a line per sample); the load generator's default lines carry
three fields, three points per line, which InfluxDB takes for less CPU per
point. Both ceilings are measured in every round (`--fields-per-line 3`, the
default, and `--fields-per-line 1`: {SAMPLES} lines of one field per request,
the sink's shape).

| round | InfluxDB ceiling, 3 fields per line | ceiling, 1 field per line | consume --sink influx | ratio to 3-field | ratio to 1-field | consumer CPU s/M | InfluxDB CPU s/M (bench 3-field / bench 1-field / sink) |
|---|---|---|---|---|---|---|---|
""" + "\n".join(irows) + f"""

Target (≥ 0.8×) at the same batch size and line shape (2000 one-field
points): **{"met" if med(ione) >= 0.8 else "not met"}**, median {span(ione)}; against the
three-field ceiling {span(iratios)}. The consumer spends {span(icpu)} s per million
samples into InfluxDB (line protocol text per point costs more than
remote_write's protobuf); InfluxDB {span(isink)} s on the sink's points, so InfluxDB
is the limit.
"""
    text = f"""## consume sinks

`metricstream consume` into Prometheus 2.42 (`--sink remote-write`) and
InfluxDB 1.6 (`--sink influx`), beside each store's own ingest ceiling
measured the same way in the same round (`benchmarks/sinks.py`, raw figures
in `benchmarks/results/sinks.json`).

- ceiling: a fresh Prometheus (`--web.enable-remote-write-receiver`, no
  scrapes) fed by `metricstream bench --format remote-write
  --samples-per-request {SAMPLES} --clients {CLIENTS} --keep-alive --requests {REQUESTS}`
  ({CLIENTS * REQUESTS * SAMPLES:,} samples; each client its own 400 series, 5 samples
  each per request: Prometheus' own default shape);
- sink: the same requests into `metricstream serve` (embedded log, 4
  partitions, `--partition-by series`), stopped; then a fresh Prometheus and
  `metricstream consume --sink remote-write --batch-samples {SAMPLES}
  --exit-at-end` (default `--in-flight 4`: 4 lanes per partition, 16
  requests in flight), timed from start to exit. Every run ends with all
  samples appended in Prometheus
  (`prometheus_tsdb_head_samples_appended_total`, checked by the script);
- the sink's request shape differs from the load generator's: a lane holds
  a quarter of a partition's series (1,600 series / 4 partitions / 4 lanes
  ≈ 100), so a 2000-sample batch of this queue is ≈ 100 series × 20
  samples. Prometheus spends much less per sample on that shape (fewer label
  sets to read and look up), so every round also measures the ceiling at
  that shape (`bench --series-per-request {SINK_SHAPE_SERIES}`), and the sink with
  `--in-flight 1` (one request per partition: 400 series × 5, the load
  generator's shape, and 4 requests in flight as its 4 clients).

CPU per million samples: the consumer's rusage (user + system); the store's
utime + stime over the run (`/proc/PID/stat`).

Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']};
{m['rustc']}; {m['date']}; {len(runs)} rounds. Consumer and store share the
2 cores (as the load generator and the store do for the ceiling).

| round | Prometheus ceiling (400 × 5), samples/s | consume --sink remote-write | ratio (not like for like) | ceiling at the sink's shape (100 × 20) | ratio (like for like) | sink `--in-flight 1` | ratio | consumer CPU s/M (in-flight 4 / 1) | Prometheus CPU s/M (bench 400×5 / bench 100×20 / sink / sink in-flight 1) | load |
|---|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

Target (stored-record issue: the sink at ≥ 0.8 × Prometheus' ceiling **at
the same request shape**, the like-for-like figure and the verdict):
**{"met" if med(shape) >= 0.8 else "not met"}**, median {span(shape)} against the
ceiling at the sink's own shape (100 series × 20 samples, Prometheus
{span(p_shape)} s/M); there the store is so cheap that the consumer's own
{span(cpu)} s per million samples, on the same 2 cores, is the limit.
Beside it, not like for like (the load generator's 400 × 5 shape, which
costs Prometheus {span(p_bench)} s/M against {span(p_sink)} on the sink's
requests): {span(ratios)}; with `--in-flight 1` (one request per partition:
the load generator's shape and concurrency) {span(one)}.

{noop}
{influx}
"""
    rw.write_section(suite.stamp(text, m, "sinks.py"), "## consume sinks")


if __name__ == "__main__":
    if "--render" in sys.argv:
        render()
    else:
        main()
