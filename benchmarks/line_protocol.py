#!/usr/bin/env python3
"""Line protocol (and OTLP) receivers side by side: metricstream's embedded
log (durable and accepted) and InfluxDB 1.6 (Debian's influxdb, fsync per
write: its default wal-fsync-delay = "0s", like our durable mode), fed the
same requests by `metricstream bench --format influx`; OTLP/HTTP rows for
metricstream alone (`--format otlp`, no peer on this machine takes OTLP).

    benchmarks/line_protocol.py            # 5 interleaved rounds, 10 s per run
    LP_RUNS=3 LP_DURATION=5s benchmarks/line_protocol.py
    benchmarks/line_protocol.py --render   # redraw the section from the saved results

Two request sizes: 3 fields (one Telegraf-like line, the issue's figure)
and 3000 fields (1000 lines, Telegraf's default metric_batch_size), both at
50 connections. Every run starts a fresh server and data directory; the
targets take turns (A, B, C, … A, B, C, …). Writes
benchmarks/results/line_protocol.json and the "Line protocol and OTLP"
section of BENCHMARKS.md.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as suite  # noqa: E402
import remote_write as rw  # noqa: E402

ROOT = suite.ROOT
BIN = suite.BIN
RESULTS = ROOT / "benchmarks/results/line_protocol.json"
INFLUXD = os.environ.get("METRICSTREAM_INFLUXD", "/usr/bin/influxd")
DURATION = os.environ.get("LP_DURATION", "10s")
RUNS = int(os.environ.get("LP_RUNS", "5"))
CLIENTS = int(os.environ.get("LP_CLIENTS", "50"))
SIZES = [int(x) for x in os.environ.get("LP_SIZES", "3,3000").split(",")]
SECTION = "## Line protocol and OTLP"


class InfluxDB:
    """InfluxDB 1.6 on free loopback ports, everything in a temp dir."""

    def __init__(self):
        self.port = suite.free_port()
        self.tmp = tempfile.mkdtemp(prefix="msbench-influx-")
        conf = Path(self.tmp) / "influxdb.conf"
        conf.write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{suite.free_port()}"
[meta]
  dir = "{self.tmp}/meta"
[data]
  dir = "{self.tmp}/data"
  wal-dir = "{self.tmp}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "error"
""")
        self.proc = subprocess.Popen([INFLUXD, "-config", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        suite.wait_http(f"http://127.0.0.1:{self.port}/ping", timeout=60)
        q = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/query?q=CREATE+DATABASE+bench", method="POST")
        urllib.request.urlopen(q, timeout=10).read()
        self.base = f"http://127.0.0.1:{self.port}"

    def endpoint(self, fmt):
        return f"{self.base}/write?db=bench"

    def samples_stored(self, fields_per_point):
        with urllib.request.urlopen(f"{self.base}/debug/vars", timeout=10) as r:
            stats = json.loads(r.read())
        points = stats.get("write", {}).get("values", {}).get("pointReq")
        return points * fields_per_point if points is not None else None

    def stop(self):
        return suite.stop_process(self.proc, self.tmp)


class Metricstream(suite.Server):
    def __init__(self, ack):
        super().__init__("file", ack, ("--rate-limit", "0"))
        self.base = f"http://127.0.0.1:{self.port}"

    def endpoint(self, fmt):
        return f"{self.base}/v1/metrics" if fmt == "otlp" else f"{self.base}/write?db=bench"

    def samples_stored(self, fields_per_point):
        with urllib.request.urlopen(f"{self.base}/stats", timeout=5) as r:
            stats = json.loads(r.read())
        return sum(p["samples_received"] for p in stats["protocols"].values())


def bench(url, fmt, samples, duration):
    out = Path(tempfile.mktemp(suffix=".json"))
    proc = subprocess.Popen(
        [str(BIN), "bench", "--url", url, "--quiet", "--json", str(out),
         "--format", fmt, "--samples-per-request", str(samples),
         "--clients", str(CLIENTS), "--keep-alive", "--duration", duration])
    _, status, usage = os.wait4(proc.pid, 0)
    report = json.loads(out.read_text())
    out.unlink()
    report["generator_cpu_secs"] = usage.ru_utime + usage.ru_stime
    return report


def targets():
    t = [
        ("metricstream durable", "influx", lambda: Metricstream("durable")),
        ("metricstream accepted", "influx", lambda: Metricstream("accepted")),
        ("influxdb 1.6", "influx", InfluxDB),
    ]
    help_text = subprocess.run([str(BIN), "bench", "--help"], text=True,
                               capture_output=True).stdout
    if "otlp" in help_text:
        t.append(("metricstream durable", "otlp", lambda: Metricstream("durable")))
    return t


def one_run(name, fmt, start, samples):
    server = start()
    before = rw.cpu_secs(server.proc.pid)
    report = bench(server.endpoint(fmt), fmt, samples, DURATION)
    cpu = rw.cpu_secs(server.proc.pid) - before
    sent = report["successful"] * samples
    stored = server.samples_stored(3)
    rss = server.stop()
    return {
        "target": name, "format": fmt, "samples_per_request": samples,
        "samples_per_sec": report["samples_per_sec"],
        "requests_per_sec": report["requests_per_sec"],
        "p50_ms": report["p50_ms"], "p99_ms": report["p99_ms"], "max_ms": report["max_ms"],
        "total": report["total"], "failed": report["failed"], "failures": report["failures"],
        "samples_acknowledged": sent, "samples_stored": stored,
        "server_cpu_per_million": cpu / (sent / 1e6) if sent else None,
        "generator_cpu_per_million": report["generator_cpu_secs"] / (sent / 1e6) if sent else None,
        "peak_rss_mib": rss,
        "loadavg": os.getloadavg()[0],
    }


def measure():
    runs = []
    for round_ in range(RUNS):
        for samples in SIZES:
            for name, fmt, start in targets():
                r = one_run(name, fmt, start, samples)
                r["round"] = round_
                runs.append(r)
                print(f"round {round_ + 1}/{RUNS} {name} {fmt} {samples}: "
                      f"{r['samples_per_sec']:,.0f} samples/s, "
                      f"{r['requests_per_sec']:,.0f} req/s, p99 {r['p99_ms']:.2f} ms, "
                      f"{r['failed']} failed", file=sys.stderr)
    version = subprocess.run([INFLUXD, "version"], text=True, capture_output=True).stdout.strip()
    return {
        "machine": suite.machine(),
        "command": "benchmarks/line_protocol.py",
        "settings": {"clients": CLIENTS, "sizes": SIZES, "duration": DURATION, "runs": RUNS,
                     "influxdb": version},
        "runs": runs,
    }


def render_section(r):
    m, s = r["machine"], r["settings"]
    groups = {}
    for run in r["runs"]:
        groups.setdefault((run["samples_per_request"], run["format"], run["target"]), []).append(run)
    peer = {(x["samples_per_request"], x["round"]): x["samples_per_sec"]
            for x in r["runs"] if x["target"] == "influxdb 1.6"}
    lines = [
        SECTION, "",
        "The same line protocol from the same tool to metricstream's `POST /write` and to",
        f"InfluxDB 1.6 (`{s['influxdb']}`, Debian's package, its default",
        "`wal-fsync-delay = \"0s\"`: an fsync per write, like our durable mode; fresh data",
        "directory per run): `metricstream bench --format influx --samples-per-request N",
        f"--clients {s['clients']} --keep-alive`, Telegraf `cpu`-like lines of 3 float fields, fresh",
        "ns timestamps, success = any 2xx. OTLP rows: `--format otlp` to `POST /v1/metrics`",
        "(protobuf, gauges; no peer here takes OTLP). A sample is one field (one data point).",
        f"Targets take turns, {s['runs']} rounds of {s['duration']}; median [range] over the rounds;",
        "\"of InfluxDB\" is the ratio to InfluxDB's run of the same size in the same round.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']};",
        f"{m['rustc']}; run on {m['date']}. Regenerate with `{r['command']}`",
        "(raw figures: `benchmarks/results/line_protocol.json`).", "",
        "| samples/request | receiver | format | samples/s | of InfluxDB | requests/s | p99 "
        "| server CPU s per M samples | failed | stored ≥ acked |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def rng(xs, d=0, unit=""):
        xs = [x for x in xs if x is not None]
        if not xs:
            return "–"
        return f"{statistics.median(xs):,.{d}f}{unit} [{min(xs):,.{d}f}–{max(xs):,.{d}f}]"

    verdicts = []
    for (size, fmt, name), runs in sorted(groups.items()):
        ratios = [x["samples_per_sec"] / peer[(size, x["round"])] for x in runs
                  if peer.get((size, x["round"]))]
        ratio = rng(ratios, 2, "×") if name != "influxdb 1.6" else "1"
        stored = all(x["samples_stored"] is not None
                     and x["samples_stored"] >= x["samples_acknowledged"] for x in runs)
        lines.append(
            f"| {size} | {name} | {fmt} | {rng([x['samples_per_sec'] for x in runs])} | {ratio} "
            f"| {rng([x['requests_per_sec'] for x in runs])} "
            f"| {rng([x['p99_ms'] for x in runs], 2, ' ms')} "
            f"| {rng([x['server_cpu_per_million'] for x in runs], 2)} "
            f"| {sum(x['failed'] for x in runs)} of {sum(x['total'] for x in runs)} "
            f"| {'yes' if stored else 'NO'} |")
        if name == "metricstream durable" and fmt == "influx" and ratios:
            lo, med = min(ratios), statistics.median(ratios)
            verdicts.append(f"{size} fields/request: {med:.2f}× (lowest round {lo:.2f}×) — "
                            + ("met" if lo >= 2 else "met at the median" if med >= 2
                               else "**not met**"))
    if verdicts:
        lines += ["", "Target: durable embedded log ≥ 2× InfluxDB 1.6's samples/s on the same",
                  "requests. " + "; ".join(verdicts) + "."]
    notes = r.get("notes")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def headline(r):
    """The header table's rows for this section: (target, figure, met)."""
    peer = {(x["samples_per_request"], x["round"]): x["samples_per_sec"]
            for x in r["runs"] if x["target"] == "influxdb 1.6"}
    sizes = {}
    for x in r["runs"]:
        if x["target"] == "metricstream durable" and x["format"] == "influx" \
                and peer.get((x["samples_per_request"], x["round"])):
            sizes.setdefault(x["samples_per_request"], []).append(
                x["samples_per_sec"] / peer[(x["samples_per_request"], x["round"])])
    return [(f"line protocol durable ≥ 2 × InfluxDB 1.6 ({size} fields per request, samples/s)",
             rw.span(ratios, 2, "×"), suite.judge(ratios, lambda x: x >= 2))
            for size, ratios in sorted(sizes.items())]


def write_section(text):
    rw.write_section(text, SECTION)


def main():
    rw.script_main(RESULTS, measure, render_section, write_section)


if __name__ == "__main__":
    main()
