#!/usr/bin/env python3
"""remote_write receivers side by side: metricstream (embedded log and Kafka,
durable and accepted) and Prometheus 2.42's own receiver, fed the same
remote_write 1.0 requests by `metricstream bench --format remote-write`.

    benchmarks/remote_write.py            # 5 interleaved rounds, 10 s per run
    RW_RUNS=5 RW_DURATION=15s benchmarks/remote_write.py
    KAFKA=0 benchmarks/remote_write.py    # without the Kafka rows
    benchmarks/remote_write.py --render   # redraw the section from the saved results

Each run starts a fresh server (fresh data directory, fresh TSDB, fresh
broker); the targets take turns (A, B, C, … A, B, C, …) so that a slow
minute on the machine hits all of them alike. Writes
benchmarks/results/remote_write.json and the "remote_write" section of
BENCHMARKS.md (the rest of the file is left as it is).

CPU per million samples: utime + stime of the server process (from
/proc/PID/stat) over the run, divided by the samples it acknowledged. The
load generator's own CPU is taken the same way (its rusage), to show it is
not the bottleneck.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as suite  # noqa: E402

ROOT = suite.ROOT
BIN = suite.BIN
RESULTS = ROOT / "benchmarks/results/remote_write.json"
PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
DURATION = os.environ.get("RW_DURATION", "10s")
KAFKA_DURATION = os.environ.get("RW_KAFKA_DURATION", DURATION)
RUNS = int(os.environ.get("RW_RUNS", "5"))
CLIENTS = int(os.environ.get("RW_CLIENTS", "20"))
SAMPLES = int(os.environ.get("RW_SAMPLES", "2000"))
TICK = os.sysconf("SC_CLK_TCK")
SECTION = "## remote_write"


def cpu_secs(pid):
    """utime + stime of a process, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Prometheus:
    """Prometheus as a remote_write receiver: no scrape targets, fresh TSDB."""

    def __init__(self):
        self.port = suite.free_port()
        self.tmp = tempfile.mkdtemp(prefix="msbench-prom-")
        config = Path(self.tmp) / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", "--web.enable-remote-write-receiver",
             f"--storage.tsdb.path={self.tmp}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        suite.wait_http(f"http://127.0.0.1:{self.port}/-/ready", timeout=60)
        self.url = f"http://127.0.0.1:{self.port}/api/v1/write"

    def samples_stored(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(r"^prometheus_tsdb_head_samples_appended_total(?:\{[^}]*\})? (\S+)$",
                      text, re.M)
        return float(m.group(1)) if m else None

    def stop(self):
        return suite.stop_process(self.proc, self.tmp)


class Metricstream(suite.Server):
    def __init__(self, kind, ack):
        super().__init__(kind, ack, ("--rate-limit", "0"))
        self.url = f"http://127.0.0.1:{self.port}/api/v1/write"

    def samples_stored(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            stats = json.loads(r.read())
        return stats["protocols"]["remote_write"]["samples_received"]


def bench(url, duration):
    """One `metricstream bench` run; returns its report plus its own CPU seconds."""
    out = Path(tempfile.mktemp(suffix=".json"))
    proc = subprocess.Popen(
        [str(BIN), "bench", "--url", url, "--quiet", "--json", str(out),
         "--format", "remote-write", "--samples-per-request", str(SAMPLES),
         "--clients", str(CLIENTS), "--keep-alive", "--duration", duration])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    report = json.loads(out.read_text())
    out.unlink()
    report["generator_cpu_secs"] = usage.ru_utime + usage.ru_stime
    return report


TARGETS = [
    ("metricstream file/durable", lambda: Metricstream("file", "durable")),
    ("metricstream file/accepted", lambda: Metricstream("file", "accepted")),
    ("metricstream kafka/durable", lambda: Metricstream("kafka", "durable")),
    ("metricstream kafka/accepted", lambda: Metricstream("kafka", "accepted")),
    ("prometheus 2.42", Prometheus),
]


def one_run(name, start):
    load_before = os.getloadavg()[0]
    server = start()
    duration = KAFKA_DURATION if "kafka" in name else DURATION
    broker = getattr(server, "broker", None)
    before = cpu_secs(server.proc.pid)
    broker_before = cpu_secs(broker.proc.pid) if broker else None
    report = bench(server.url, duration)
    after = cpu_secs(server.proc.pid)
    broker_cpu = cpu_secs(broker.proc.pid) - broker_before if broker else None
    stored = server.samples_stored()
    rss = server.stop()
    sent = report["successful"] * SAMPLES
    return {
        "target": name,
        "duration": duration,
        "samples_per_sec": report["samples_per_sec"],
        "requests_per_sec": report["requests_per_sec"],
        "p50_ms": report["p50_ms"],
        "p99_ms": report["p99_ms"],
        "max_ms": report["max_ms"],
        "total": report["total"],
        "failed": report["failed"],
        "failures": report["failures"],
        "samples_acknowledged": sent,
        "samples_stored": stored,
        "server_cpu_secs": after - before,
        "server_cpu_per_million": (after - before) / (sent / 1e6) if sent else None,
        "broker_cpu_secs": broker_cpu,
        "broker_cpu_per_million": broker_cpu / (sent / 1e6) if broker and sent else None,
        "generator_cpu_secs": report["generator_cpu_secs"],
        "generator_cpu_per_million": report["generator_cpu_secs"] / (sent / 1e6) if sent else None,
        "wall_secs": report["duration_secs"],
        "peak_rss_mib": rss,
        # Other work on the machine shows here (1-minute load average).
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg()[0],
    }


def measure():
    targets = TARGETS
    if os.environ.get("KAFKA", "1") != "0":
        suite.TANSU = suite.tansu_path()
        if not suite.TANSU:
            sys.exit("the Kafka rows need the tansu broker: scripts/kafka-broker.sh install "
                     "(or KAFKA=0)")
    else:
        targets = [t for t in TARGETS if "kafka" not in t[0]]
    runs = []
    for round_ in range(RUNS):
        for name, start in targets:
            r = one_run(name, start)
            r["round"] = round_
            runs.append(r)
            print(f"round {round_ + 1}/{RUNS} {name}: {r['samples_per_sec']:,.0f} samples/s, "
                  f"p99 {r['p99_ms']:.2f} ms, {r['failed']} failed, server CPU "
                  f"{r['server_cpu_per_million'] or 0:.2f} s/M, generator CPU "
                  f"{r['generator_cpu_per_million'] or 0:.2f} s/M", file=sys.stderr)
    return {
        "machine": suite.machine(),
        "command": "benchmarks/remote_write.py",
        "settings": {"clients": CLIENTS, "samples_per_request": SAMPLES, "duration": DURATION,
                     "kafka_duration": KAFKA_DURATION, "runs": RUNS, "keep_alive": True,
                     "prometheus": subprocess.run([PROMETHEUS, "--version"], text=True,
                                                  capture_output=True).stdout.splitlines()[0]
                     if Path(PROMETHEUS).exists() else "n/a"},
        "runs": runs,
    }


def summary(r):
    """Per target: median and range of each figure over its runs."""
    out = {}
    for run in r["runs"]:
        out.setdefault(run["target"], []).append(run)
    prom = {x["round"]: x["samples_per_sec"] for x in out.get("prometheus 2.42", [])}
    rows = {}
    for name, runs in out.items():
        def med(key):
            xs = [x[key] for x in runs if x[key] is not None]
            return (statistics.median(xs), min(xs), max(xs)) if xs else (float("nan"),) * 3
        ratios = [x["samples_per_sec"] / prom[x["round"]] for x in runs
                  if prom.get(x["round"])]
        rows[name] = {
            "runs": len(runs),
            # Against Prometheus' run of the same round (they ran minutes apart).
            "ratio": ((statistics.median(ratios), min(ratios), max(ratios))
                      if ratios else None),
            "broker_cpu_per_million": (med("broker_cpu_per_million")
                                       if runs[0].get("broker_cpu_per_million") else None),
            "samples_per_sec": med("samples_per_sec"),
            "requests_per_sec": med("requests_per_sec"),
            "p99_ms": med("p99_ms"),
            "server_cpu_per_million": med("server_cpu_per_million"),
            "generator_cpu_per_million": med("generator_cpu_per_million"),
            "server_cpu_secs": med("server_cpu_secs"),
            "generator_cpu_secs": med("generator_cpu_secs"),
            "peak_rss_mib": med("peak_rss_mib"),
            "failed": sum(x["failed"] for x in runs),
            "total": sum(x["total"] for x in runs),
            "stored_matches": all(x["samples_stored"] is not None and
                                  x["samples_stored"] >= x["samples_acknowledged"]
                                  for x in runs),
            "duration": runs[0]["duration"],
        }
    return rows


def render_section(r):
    m, s = r["machine"], r["settings"]
    rows = summary(r)
    lines = [
        SECTION,
        "",
        "Prometheus remote_write 1.0 receivers fed the same requests by the same tool,",
        f"`metricstream bench --format remote-write --samples-per-request {s['samples_per_request']}"
        f" --clients {s['clients']} --keep-alive`:",
        f"{s['samples_per_request']} samples per request over 400 series of 5–8 labels, snappy;",
        "each client writes its own series with fresh, increasing timestamps; success = any 2xx.",
        "metricstream runs with `--rate-limit 0`; Prometheus is",
        f"`{s['prometheus']}`",
        "with `--web.enable-remote-write-receiver` and no scrape targets. Every run starts a",
        "fresh server (fresh data directory or TSDB, and a fresh tansu broker for Kafka); the",
        f"receivers take turns, {s['runs']} rounds, {s['duration']} per run"
        + (f" ({s['kafka_duration']} for Kafka)" if s["kafka_duration"] != s["duration"] else "")
        + ". Figures are",
        "the median with the range over the runs in brackets. CPU per million samples is the",
        "process's utime + stime over the run (`/proc/PID/stat`) divided by the samples",
        "acknowledged; the load generator's own CPU is measured the same way (its rusage).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']};",
        f"{m['rustc']}; run on {m['date']}. Regenerate with `{r['command']}`",
        "(raw figures: `benchmarks/results/remote_write.json`).",
        "",
        "| receiver | samples/s | of Prometheus | requests/s | p99 | server CPU s per M samples "
        "| generator CPU s per M samples | failed | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def rng(t, d=0, unit=""):
        med, lo, hi = t
        return f"{med:,.{d}f}{unit} [{lo:,.{d}f}–{hi:,.{d}f}]"

    for name, t in rows.items():
        ratio = rng(t["ratio"], 2) if t["ratio"] else "–"
        cpu = rng(t["server_cpu_per_million"], 2)
        if t["broker_cpu_per_million"]:
            cpu += f" + broker {t['broker_cpu_per_million'][0]:.2f}"
        lines.append(
            f"| {name} | {rng(t['samples_per_sec'])} | {ratio} | {rng(t['requests_per_sec'])} "
            f"| {rng(t['p99_ms'], 2, ' ms')} | {cpu} "
            f"| {rng(t['generator_cpu_per_million'], 2)} | {t['failed']} of {t['total']} "
            f"| {t['peak_rss_mib'][0]:.0f} MiB |")
    durable = rows.get("metricstream file/durable")
    if durable and durable["ratio"]:
        ratio = durable["ratio"][0]
        cpu = durable["server_cpu_per_million"][0]

        def verdict(median_ok, every_ok):
            return "met" if every_ok else "met at the median, not in every round" if median_ok else "**not met**"

        lines += [
            "",
            "\"of Prometheus\" is the ratio to Prometheus' run in the same round (median and",
            "range over the rounds). Targets (stored-record issue): durable embedded log",
            f"≥ 1.5 × Prometheus' receiver in samples/s: {ratio:.2f} (lowest round "
            f"{durable['ratio'][1]:.2f}) — {verdict(ratio >= 1.5, durable['ratio'][1] >= 1.5)};",
            f"receiver CPU ≤ 0.8 s per million samples: {cpu:.2f} (highest round "
            f"{durable['server_cpu_per_million'][2]:.2f}) — "
            f"{verdict(cpu <= 0.8, durable['server_cpu_per_million'][2] <= 0.8)}.",
        ]
    notes = r.get("notes")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def headline(r):
    """The header table's rows for this section: (target, figure, met)."""
    by_round = {}
    for x in r["runs"]:
        by_round.setdefault(x["round"], {})[x["target"]] = x
    ratios, cpu = [], []
    for runs in by_round.values():
        d, p = runs.get("metricstream file/durable"), runs.get("prometheus 2.42")
        if d and p and p["samples_per_sec"]:
            ratios.append(d["samples_per_sec"] / p["samples_per_sec"])
        if d:
            cpu.append(d["server_cpu_per_million"])
    if not ratios:
        return []
    return [
        ("remote_write durable ≥ 1.5 × Prometheus 2.42's receiver (same bench load, samples/s)",
         span(ratios, 2, "×"), suite.judge(ratios, lambda x: x >= 1.5)),
        ("… receiver CPU ≤ 0.8 s per million samples", span(cpu, 2, " s"),
         suite.judge(cpu, lambda x: x <= 0.8)),
    ]


def span(xs, d=2, unit=""):
    """median [min–max]"""
    return f"{statistics.median(xs):,.{d}f}{unit} [{min(xs):,.{d}f}–{max(xs):,.{d}f}]"


def write_section(text, section=SECTION):
    """Replaces (or adds, before the micro-benchmarks) the section in BENCHMARKS.md."""
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text()
    start = doc.find(section + "\n")
    if start >= 0:
        end = doc.find("\n## ", start + len(section))
        doc = doc[:start] + text + ("\n" + doc[end + 1:] if end >= 0 else "")
    else:
        at = doc.find("## Micro-benchmarks")
        doc = doc[:at] + text + "\n" + doc[at:] if at >= 0 else doc + "\n" + text
    path.write_text(doc)


def script_main(results, measure, render, write, build=("--bin", "metricstream")):
    """What every section script does: `--render` redraws its section from
    the saved `results`; otherwise build in release, `measure`, save (keeping
    hand-written notes), then render and `write` the section."""
    if len(sys.argv) > 1 and sys.argv[1] == "--render":
        r = json.loads(results.read_text())
    else:
        subprocess.run(["cargo", "build", "--release", *build], cwd=ROOT, check=True)
        r = measure()
        if results.exists():
            # Hand-written notes (profile, caveats) survive a re-run.
            r["notes"] = json.loads(results.read_text()).get("notes", [])
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(r, indent=2) + "\n")
    # Older results kept the commit beside the machine, not in it.
    machine = {**r["machine"], "commit": r["machine"].get("commit", r.get("commit", "unknown"))}
    text = suite.stamp(render(r), machine, Path(sys.argv[0]).name)
    write(text)
    print(text)


def main():
    script_main(RESULTS, measure, render_section, write_section)


if __name__ == "__main__":
    main()
