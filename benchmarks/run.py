#!/usr/bin/env python3
"""The whole benchmark report in one run: builds in release, runs this
script's own sections (the C++ system's test, throughput, big batches,
open loop: one run each, plus the Kafka producer comparison in interleaved
rounds), then every section script (durable, remote_write, line_protocol,
sinks, record_size: ROUNDS interleaved rounds each), then the criterion
micro-benchmarks, and writes BENCHMARKS.md (header table of every target
with the median and range it was checked on) and benchmarks/plots/.

    benchmarks/run.py                      # everything, 5 rounds, 10 s runs (about an hour)
    ROUNDS=1 DURATION=3s benchmarks/run.py # a quick, noisy pass of the plumbing
    SKIP_SECTIONS=1 benchmarks/run.py      # sections 1–5 only, the others kept as they are
    benchmarks/run.py --render             # redraw from the saved results

Everything runs on this machine, on loopback. Figures that are compared are
measured in the same round, one after the other, and given as ratios.
"""

import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plot  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/metricstream"
NOOP = ROOT / "target/release/examples/noop_server"
RAW_PRODUCER = ROOT / "target/release/examples/kafka_producer_ceiling"
RESULTS = ROOT / "benchmarks/results"
PLOTS = ROOT / "benchmarks/plots"
DURATION = os.environ.get("DURATION", "10s")
# Interleaved rounds for the figures the header's targets are checked on.
ROUNDS = int(os.environ.get("ROUNDS", "5"))
# The section scripts, run in this order by `benchmarks/run.py` (each
# writes its own section of BENCHMARKS.md and results/<name>.json).
SECTIONS = ["durable", "remote_write", "line_protocol", "sinks", "record_size", "tls"]
CONNS = [int(c) for c in os.environ.get("CONNS", "50,500").split(",")]

# The C++ system's published figures (../shared/DESIGN.md), for comparison.
CPP = {
    "kafka": {"success_rate": 97.9, "mean_ms": 0.15, "rps": 200},
    "file": {"success_rate": 97.4, "mean_ms": 0.70, "rps": 800},
}


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def peak_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def tansu_path():
    """The local Kafka-API broker (installed by scripts/kafka-broker.sh)."""
    try:
        return sh(str(ROOT / "scripts/kafka-broker.sh"), "install").strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


class Broker:
    """A fresh tansu broker with its own sqlite storage, for one server."""

    def __init__(self):
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="msbroker-")
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [TANSU, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "sqlite://tansu.db"],
            cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.address = f"127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


TANSU = None


class Server:
    """A server under test: `noop`, or metricstream on `file` or `kafka`
    with the given ack mode (a Kafka server gets a broker of its own)."""

    def __init__(self, kind, ack=None, extra=()):
        self.kind, self.ack = kind, ack
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="msbench-")
        self.broker = Broker() if kind == "kafka" else None
        if kind == "noop":
            cmd = [str(NOOP), f"127.0.0.1:{self.port}"]
        else:
            cmd = [str(BIN), "serve", "--listen", f"127.0.0.1:{self.port}",
                   "--data-dir", self.tmp, "--ack", ack, *extra]
            if self.broker:
                cmd += ["--queue", "kafka", "--brokers", self.broker.address,
                        "--create-topic"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.port}/{'health' if kind == 'noop' else 'ready'}",
                  timeout=60)
        self.url = f"http://127.0.0.1:{self.port}/metrics"

    def stop(self):
        rss = stop_process(self.proc, self.tmp)
        if self.broker:
            self.broker.stop()
        return rss


def stop_process(proc, tmp):
    """Stops a server (killed if it has not exited 30 s after SIGTERM) and
    removes its temporary directory; returns its peak RSS in MiB."""
    rss = peak_rss_mib(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(tmp, ignore_errors=True)
    return rss


def bench(url, *args):
    out = Path(tempfile.mktemp(suffix=".json"))
    subprocess.run([str(BIN), "bench", "--url", url, "--quiet", "--json", str(out), *args],
                   check=False)
    report = json.loads(out.read_text())
    out.unlink()
    return report


def wrk(url, conns, duration):
    text = sh("wrk", "-t2", f"-c{conns}", f"-d{duration}", "--latency",
              "-s", str(ROOT / "benchmarks/post.lua"), url)

    def ms(v):
        num, unit = re.match(r"([\d.]+)(\w+)", v).groups()
        return float(num) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {
        "requests_per_sec": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": ms(lat["50"]), "p90_ms": ms(lat["90"]), "p99_ms": ms(lat["99"]),
        "errors": errors,
    }


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(), "rustc": sh("rustc", "--version").strip(),
        "date": datetime.date.today().isoformat(),
        "commit": commit(),
        "wrk": (subprocess.run(["wrk", "--version"], text=True, capture_output=True).stdout.splitlines() or ["wrk"])[0].split(" [")[0] if shutil.which("wrk") else "n/a",
    }


def commit():
    """The commit measured: short hash, "-dirty" if tracked source files
    differ from it (the reports and results themselves do not count)."""
    try:
        head = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD").strip()
        dirty = sh("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no",
                   "--", ".", ":!BENCHMARKS.md", ":!RELIABILITY.md", ":!benchmarks/results",
                   ":!benchmarks/plots").strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def stamp(text, m, script):
    """A section's text with the line that says when, at which commit and
    by which script it was measured, right under its header."""
    head, _, rest = text.partition("\n")
    return (f"{head}\n\n_Measured {m['date']} at commit `{m.get('commit', 'unknown')}` by "
            f"`benchmarks/{script}`._\n{rest}")


MODES = [("file", "durable"), ("file", "accepted")]
KAFKA_MODES = [("kafka", "durable"), ("kafka", "accepted")]


def run_suite():
    global MODES, TANSU
    if os.environ.get("KAFKA", "1") != "0":
        TANSU = tansu_path()
        if not TANSU:
            sys.exit("the Kafka scenarios need the tansu broker: scripts/kafka-broker.sh install "
                     "(or KAFKA=0 benchmarks/run.py to measure the embedded log only)")
        MODES = MODES + KAFKA_MODES
    r = {"machine": machine(), "duration": DURATION, "cpp_test": {}, "throughput": [],
         "tools": [], "wrk": [], "big_batches": [], "open_loop": []}

    # 1. The C++ system's test: 20 clients x 50 requests, new connection each, 100 ms apart.
    for backend, ack in [("noop", None), *MODES]:
        s = Server(backend, ack)
        rep = bench(s.url, "--clients", "20", "--requests", "50", "--metrics-per-request", "3",
                    "--new-connection", "--interval-ms", "100")
        rep["peak_rss_mib"] = s.stop()
        r["cpp_test"]["noop" if backend == "noop" else f"{backend}/{ack}"] = rep

    # 2. Throughput, keep-alive, beside a do-nothing server (the ceiling).
    for conns in CONNS:
        for kind, ack in [("noop", None), *MODES]:
            s = Server(kind, ack)
            rep = bench(s.url, "--clients", str(conns), "--duration", DURATION, "--keep-alive")
            rep["peak_rss_mib"] = s.stop()
            rep["server"] = kind if kind == "noop" else f"{kind}/{ack}"
            rep["connections"] = conns
            r["throughput"].append(rep)

    # The generator is not the bottleneck: wrk and bench against the same noop server;
    # and wrk against each mode (one client id, so the rate limit is off for it).
    if shutil.which("wrk"):
        for kind, ack in [("noop", None), *[m for m in MODES if m[0] == "file"]]:
            extra = ("--rate-limit", "0")
            s = Server(kind, ack, extra if kind != "noop" else ())
            w = wrk(s.url, 50, DURATION)
            w["peak_rss_mib"] = s.stop()
            w["server"] = kind if kind == "noop" else f"{kind}/{ack}"
            r["wrk"].append(w)
        s = Server("noop")
        r["tools"] = [{"tool": "wrk -t2 -c50", **wrk(s.url, 50, DURATION)},
                      {"tool": "metricstream bench --clients 50 --keep-alive",
                       **bench(s.url, "--clients", "50", "--duration", DURATION, "--keep-alive")}]
        s.stop()

    # Kafka: the raw librdkafka producer beside metricstream's Kafka modes
    # at 20 connections (issue 3's goals are stated there), interleaved
    # rounds so that the ratio is taken within a round.
    if TANSU:
        r["kafka_raw"], r["kafka_20"] = [], []
        for round_ in range(ROUNDS):
            b = Broker()
            sh(TANSU, "topic", "create", "metrics", "--partitions", "4",
               "--broker", f"tcp://{b.address}")
            out = sh(str(RAW_PRODUCER), b.address, "metrics", "200000")
            b.stop()
            r["kafka_raw"].append(float(re.search(r"throughput: ([\d.]+)", out).group(1)))
            for backend, ack in KAFKA_MODES:
                s = Server(backend, ack)
                rep = bench(s.url, "--clients", "20", "--duration", DURATION, "--keep-alive")
                rep["peak_rss_mib"] = s.stop()
                rep["server"], rep["connections"], rep["round"] = f"{backend}/{ack}", 20, round_
                r["kafka_20"].append(rep)

    # 3. Big batches: 1000 metrics per request.
    for backend, ack in MODES:
        s = Server(backend, ack)
        rep = bench(s.url, "--clients", "20", "--duration", DURATION, "--keep-alive",
                    "--metrics-per-request", "1000")
        rep["peak_rss_mib"] = s.stop()
        rep["server"] = f"{backend}/{ack}"
        r["big_batches"].append(rep)

    # 4. Open loop at 50% and 90% of the measured maximum (50 connections).
    for backend, ack in MODES:
        name = f"{backend}/{ack}"
        # The maximum at the same connection count as the open-loop runs.
        best = max(t["requests_per_sec"] for t in r["throughput"]
                   if t["server"] == name and t["connections"] == 50)
        for share in (0.5, 0.9):
            s = Server(backend, ack)
            rep = bench(s.url, "--clients", "50", "--duration", DURATION, "--keep-alive",
                        "--rate", str(int(best * share)))
            rep["peak_rss_mib"] = s.stop()
            rep["server"], rep["share"] = name, share
            r["open_loop"].append(rep)
    return r


def span(xs, d=2, unit=""):
    """median [min–max] of the rounds' figures."""
    return f"{statistics.median(xs):,.{d}f}{unit} [{min(xs):,.{d}f}–{max(xs):,.{d}f}]"


def judge(xs, ok):
    """A target's verdict over its rounds: True if every round meets it,
    "median" if the median does and some round does not, False if the
    median does not."""
    if all(ok(x) for x in xs):
        return True
    return "median" if ok(statistics.median(xs)) else False


def suite_headline(r):
    """This script's own rows for the header table: (target, figure, met)."""
    rows = []
    if r.get("kafka_raw") and r.get("kafka_20"):
        by_round = {}
        for t in r["kafka_20"]:
            by_round.setdefault(t.get("round", 0), {})[t["server"]] = t
        ratios = [by_round[i]["kafka/accepted"]["requests_per_sec"] / raw
                  for i, raw in enumerate(r["kafka_raw"])
                  if i in by_round and "kafka/accepted" in by_round[i]]
        p99 = [t["p99_ms"] for t in r["kafka_20"] if t["server"] == "kafka/durable"]
        if ratios:
            rows.append(("Kafka accepted ≥ 0.8 × raw librdkafka producer (20 connections)",
                         span(ratios, 2, "×"), judge(ratios, lambda x: x >= 0.8)))
        if p99:
            rows.append(("Kafka durable p99 under linger (2 ms) + 10 ms (20 connections)",
                         span(p99, 2, " ms"), judge(p99, lambda x: x < 12)))
        kf = [t for t in r["throughput"] + r["kafka_20"] if t["server"].startswith("kafka")]
        rows.append(("Kafka: zero failed requests at 20 and 500 connections (counted by bench)",
                     str(sum(t["failed"] for t in kf)), all(t["failed"] == 0 for t in kf)))
    cpp = [t for n, t in r["cpp_test"].items() if n != "noop"]
    rows.append(("C++ test: 100% success on every backend (counted by bench)",
                 ", ".join(f"{t['success_rate']:.2f}%" for t in cpp),
                 all(t["failed"] == 0 for t in cpp)))
    errors = sum(t["failed"] for key in ("throughput", "big_batches", "open_loop", "kafka_20")
                 for t in r.get(key, []))
    rows.append(("no failed request in sections 1–4 (counted by bench; a 503 counts as failed)",
                 str(errors), errors == 0))
    return rows


def section_headlines():
    """Each section script's rows for the header, from its saved results:
    [(section script, commit measured, rows)]."""
    out = []
    for name in SECTIONS:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        module = __import__(name)
        r = json.loads(path.read_text())
        out.append((name, r.get("machine", {}).get("commit", r.get("commit", "unknown")),
                    module.headline(r)))
    return out


def targets(r):
    """The issues' targets, one row per figure, each checked on the
    median of its section's interleaved rounds (the section that measured
    it is named, with the commit it measured)."""
    out = ["| target | median [min–max] over the rounds | met | measured by |",
           "|---|---|---|---|"]

    def verdict(ok):
        if ok == "median":
            return "at the median, not in every round"
        return "–" if ok is None else "yes" if ok else "**no**"

    for target, figure, ok in suite_headline(r):
        out.append(f"| {target} | {figure} | {verdict(ok)} | `run.py`, `{r['machine'].get('commit', '?')}` |")
    for name, commit_, rows in section_headlines():
        for target, figure, ok in rows:
            out.append(f"| {target} | {figure} | {verdict(ok)} | `{name}.py`, `{commit_}` |")
    return out + [""]


def fmt(x, d=1):
    return f"{x:,.{d}f}"


def render(r):
    m = r["machine"]
    noop = {t["connections"]: t for t in r["throughput"] if t["server"] == "noop"}
    lines = [
        "# Benchmarks",
        "",
        "Regenerated in one run by `benchmarks/run.py` (see [benchmarks/README.md](benchmarks/README.md)):",
        "its own sections 1–5, then each section script (`" + "`, `".join(f"{n}.py" for n in SECTIONS)
        + "`), then the micro-benchmarks. Raw figures in `benchmarks/results/`. Every section",
        "says under its header when and at which commit it was measured.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']};",
        f"{m['rustc']}; {m['wrk']}; run on {m['date']} at commit `{m.get('commit', '?')}`;",
        f"{r['duration']} per timed run, {r.get('rounds', 1)} interleaved rounds where a figure is a target.",
        *stale_sections(m.get("commit")),
        "",
        "Which figures are counters and which are read back: requests/s, samples/s, failures",
        "and latencies are the load generator's own counts of the answers it got (a 2xx is",
        "a success); \"stored\" columns, bytes per sample and the sinks' delivered samples are",
        "read back (`consume` over the log; Prometheus' appended-samples counter or InfluxDB",
        "`/query` for the stores), and say so in their sections.",
        "",
        *targets(r),
        "![throughput](benchmarks/plots/throughput.svg)",
        "![latency](benchmarks/plots/latency.svg)",
        "",
        "Sections 1–4 are one run each at this commit (shapes and scale, not target figures:",
        "the targets above are checked on the interleaved rounds of the sections that name them).",
        "",
        "## 1. The C++ system's test",
        "",
        "20 clients × 50 requests, 3 metrics each, a new connection per request, 100 ms",
        "between a client's requests (what the C++ `load_test` did). Its figures are from",
        "`../shared/DESIGN.md`.",
        "",
        "| system | success | requests/s | mean | p50 | p99 | p99.9 | max | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in CPP.items():
        lines.append(f"| C++ ({'Kafka' if name == 'kafka' else 'one file per message'}) | {c['success_rate']}% | ~{c['rps']} | {c['mean_ms']} ms "
                     "| – | – | – | – | – |")
    for name, t in r["cpp_test"].items():
        lines.append(
            f"| {'do-nothing server' if name == 'noop' else 'metricstream ' + name} | {t['success_rate']:.2f}% ({t['successful']}/{t['total']}) "
            f"| {fmt(t['requests_per_sec'])} | {t['mean_ms']:.3f} ms | {t['p50_ms']:.3f} ms "
            f"| {t['p99_ms']:.3f} ms | {t['p999_ms']:.3f} ms | {t['max_ms']:.3f} ms "
            f"| {t['peak_rss_mib']:.1f} MiB |")
    lines += [
        "",
        "The request rate here is set by the test (20 clients × 10 requests/s), not by the",
        "server. The server idles between requests, so each one pays for waking it (and a",
        "new TCP connection): the do-nothing server's row is the floor on this machine.",
        "The C++ tool measured latency in whole milliseconds and counted any reply as",
        "success; ours counts a 200 with `\"success\":true` and measures in microseconds.",
        "",
        "## 2. Throughput (keep-alive, closed loop)",
        "",
        "`metricstream bench --keep-alive --clients N`; each client has its own client id.",
        "The do-nothing server is an axum endpoint answering a fixed JSON",
        "(`examples/noop_server.rs`): the ceiling for any HTTP service on this machine.",
        "",
        "| server | connections | requests/s | of ceiling | metrics/s | errors | p50 | p99 | p99.9 | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in r["throughput"]:
        ceiling = noop[t["connections"]]["requests_per_sec"]
        lines.append(
            f"| {t['server']} | {t['connections']} | {fmt(t['requests_per_sec'], 0)} "
            f"| {t['requests_per_sec'] / ceiling:.2f} | {fmt(t['metrics_per_sec'], 0)} "
            f"| {t['failed']} | {t['p50_ms']:.2f} ms | {t['p99_ms']:.2f} ms "
            f"| {t['p999_ms']:.2f} ms | {t['peak_rss_mib']:.1f} MiB |")
    if r["wrk"]:
        wnoop = next(w for w in r["wrk"] if w["server"] == "noop")["requests_per_sec"]
        lines += [
            "",
            "The same with `wrk -t2 -c50` and the C++ request (`benchmarks/post.lua`, one client",
            "id, so metricstream runs with `--rate-limit 0` here):",
            "",
            "| server | requests/s | of ceiling | errors | p50 | p90 | p99 | peak RSS |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for w in r["wrk"]:
            lines.append(
                f"| {w['server']} | {fmt(w['requests_per_sec'], 0)} "
                f"| {w['requests_per_sec'] / wnoop:.2f} | {w['errors']} | {w['p50_ms']:.2f} ms "
                f"| {w['p90_ms']:.2f} ms | {w['p99_ms']:.2f} ms | {w['peak_rss_mib']:.1f} MiB |")
        tw, tb = r["tools"]
        lines += [
            "",
            "Is the load generator the bottleneck? Both tools against the do-nothing server:",
            "",
            "| tool | requests/s | ratio to wrk |",
            "|---|---|---|",
            f"| {tw['tool']} | {fmt(tw['requests_per_sec'], 0)} | 1.00 |",
            f"| {tb['tool']} | {fmt(tb['requests_per_sec'], 0)} "
            f"| {tb['requests_per_sec'] / tw['requests_per_sec']:.2f} |",
        ]
    if r.get("kafka_raw"):
        raw = statistics.median(r["kafka_raw"])
        lines += [
            "",
            "Kafka: the raw librdkafka producer (`examples/kafka_producer_ceiling.rs`, same",
            "settings, C++-sized messages, 200,000 messages) against a fresh local tansu",
            "broker, beside metricstream's Kafka modes (each with a fresh broker too),",
            f"{len(r['kafka_raw'])} interleaved rounds, median [min–max]:",
            "",
            "| what | messages/s | of raw producer |",
            "|---|---|---|",
            f"| raw producer | {span(r['kafka_raw'], 0)} | 1.00 |",
        ]
        for mode in ("kafka/accepted", "kafka/durable"):
            xs = [t["requests_per_sec"] for t in r.get("kafka_20", []) if t["server"] == mode]
            ratios = [t["requests_per_sec"] / r["kafka_raw"][t.get("round", 0)]
                      for t in r.get("kafka_20", []) if t["server"] == mode]
            if xs:
                lines.append(f"| metricstream {mode}, 20 connections | {span(xs, 0)} "
                             f"| {span(ratios, 2)} |")
        for t in r["throughput"]:
            if t["server"].startswith("kafka"):
                lines.append(f"| metricstream {t['server']}, {t['connections']} connections "
                             f"(one run) | {t['requests_per_sec']:,.0f} | {t['requests_per_sec'] / raw:.2f} |")
    lines += [
        "",
        "## 3. Big batches (1000 metrics per request, 20 connections)",
        "",
        "| server | requests/s | metrics/s | errors | p50 | p99 | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in r["big_batches"]:
        lines.append(
            f"| {t['server']} | {fmt(t['requests_per_sec'], 0)} | {fmt(t['metrics_per_sec'], 0)} "
            f"| {t['failed']} | {t['p50_ms']:.2f} ms | {t['p99_ms']:.2f} ms "
            f"| {t['peak_rss_mib']:.1f} MiB |")
    lines += [
        "",
        "## 4. Latency at a fixed rate (open loop, 50 connections)",
        "",
        "Requests are sent on a fixed schedule and latency is measured from the scheduled",
        "time, so a stall cannot hide (no coordinated omission).",
        "",
        "| server | share of max | rate | achieved | errors | p50 | p90 | p99 | p99.9 | max |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in r["open_loop"]:
        lines.append(
            f"| {t['server']} | {int(t['share'] * 100)}% | {fmt(t['params']['rate'], 0)} "
            f"| {fmt(t['requests_per_sec'], 0)} | {t['failed']} | {t['p50_ms']:.2f} ms "
            f"| {t['p90_ms']:.2f} ms | {t['p99_ms']:.2f} ms | {t['p999_ms']:.2f} ms "
            f"| {t['max_ms']:.2f} ms |")
    lines += [
        "",
        "## 5. Memory",
        "",
        "Peak RSS (VmHWM) of the server is given in every table above; each scenario starts",
        "a fresh server.",
        "",
        *other_sections(),
        "## Micro-benchmarks",
        "",
        "`cargo bench` (criterion, `benches/hot_path.rs`): decode + validate + normalize",
        "of a batch, the partitioner, and log append with and without fsync.",
        "",
    ]
    return "\n".join(lines)


def stale_sections(commit_):
    """Lines naming each section of the current BENCHMARKS.md measured at
    another commit than `commit_`, or not stamped at all (none after a full
    run)."""
    path = ROOT / "BENCHMARKS.md"
    if not path.exists():
        return []
    ours = re.compile(r"(\d\. |Micro-benchmarks)")
    stamps, section = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:]
            if not ours.match(section):
                stamps[section] = None
        found = re.match(r"_Measured (\S+) at commit `([^`]+)`", line)
        if found and section in stamps and stamps[section] is None:
            stamps[section] = (found.group(1), found.group(2))
    stale = [f"**{name}** ({'not stamped: see its own text' if st is None else f'{st[0]}, commit `{st[1]}`'})"
             for name, st in stamps.items() if st is None or st[1] != commit_]
    if not stale:
        return []
    return ["", "Sections from other runs than this header's (each says when it was measured): "
            + "; ".join(stale) + "."]


def other_sections():
    """The sections other scripts write (durable path, remote_write, line
    protocol, sinks…), kept as they are in the current BENCHMARKS.md."""
    path = ROOT / "BENCHMARKS.md"
    if not path.exists():
        return []
    ours = re.compile(r"## (\d\. |Micro-benchmarks)")
    kept, keep = [], False
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            keep = not ours.match(line)
        if keep:
            kept.append(line)
    return kept + [""] if kept else []


def criterion():
    """Runs `cargo bench` and tabulates criterion's mean estimates."""
    subprocess.run(["cargo", "bench", "--bench", "hot_path", "--", "--warm-up-time", "1",
                    "--measurement-time", "3"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    rows = []
    for est in sorted((ROOT / "target/criterion").glob("**/new/estimates.json")):
        bench = json.loads((est.parent / "benchmark.json").read_text())
        mean_ns = json.loads(est.read_text())["mean"]["point_estimate"]
        thr = bench.get("throughput") or {}
        per = ""
        if "Bytes" in thr:
            per = f"{thr['Bytes'] / mean_ns * 1e9 / 2**20:,.0f} MiB/s"
        elif "Elements" in thr:
            per = f"{thr['Elements'] / mean_ns * 1e9:,.0f} records/s"
        rows.append(f"| {bench['full_id']} | {mean_ns / 1000:,.2f} µs | {per} |")
    return "\n".join(["| benchmark | mean time | throughput |", "|---|---|---|", *rows, ""])


def main():
    if not shutil.which("wrk") and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False)
    subprocess.run(["cargo", "build", "--release", "--bin", "metricstream",
                    "--example", "noop_server", "--example", "kafka_producer_ceiling"],
                   cwd=ROOT, check=True)
    results = run_suite()
    results["rounds"] = ROUNDS
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    # Each section script measures its own interleaved rounds and writes its
    # section; the same binary, built above at this commit, is reused.
    if not os.environ.get("SKIP_SECTIONS"):
        env = dict(os.environ, DUR_RUNS=str(ROUNDS), RW_RUNS=str(ROUNDS), LP_RUNS=str(ROUNDS),
                   SINK_RUNS=str(ROUNDS), RS_RUNS=str(ROUNDS), TLS_RUNS=str(ROUNDS))
        for name in SECTIONS:
            print(f"== benchmarks/{name}.py", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, str(ROOT / f"benchmarks/{name}.py")], cwd=ROOT,
                           env=env, check=True, stdout=subprocess.DEVNULL)
    if not os.environ.get("SKIP_CRITERION"):
        (RESULTS).mkdir(parents=True, exist_ok=True)
        (RESULTS / "criterion.md").write_text(criterion())
    PLOTS.mkdir(parents=True, exist_ok=True)
    plot.throughput(results, PLOTS / "throughput.svg")
    plot.latency(results, PLOTS / "latency.svg")
    micro = ROOT / "benchmarks/results/criterion.md"
    text = render(results)
    if micro.exists():
        text += micro.read_text()
    (ROOT / "BENCHMARKS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--render":
        r = json.loads((RESULTS / "latest.json").read_text())
        plot.throughput(r, PLOTS / "throughput.svg")
        plot.latency(r, PLOTS / "latency.svg")
        text = render(r)
        micro = ROOT / "benchmarks/results/criterion.md"
        if micro.exists():
            text += micro.read_text()
        (ROOT / "BENCHMARKS.md").write_text(text)
    else:
        main()
