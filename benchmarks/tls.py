#!/usr/bin/env python3
"""TLS against plaintext: `metricstream serve` with and without
`--tls-cert/--tls-key`, the same `metricstream bench` load on both, in the
same run.

    benchmarks/tls.py                     # 5 interleaved rounds, 10 s per run
    TLS_RUNS=1 TLS_DURATION=2s benchmarks/tls.py
    BENCH_BIN=target/debug/metricstream TLS_RUNS=1 TLS_DURATION=2s benchmarks/tls.py
                                          # no release build: check the plumbing only
    benchmarks/tls.py --render            # redraw the section from the saved results

Per round, each a fresh server (fresh data directory), taking turns:
- keep-alive clients (TLS_CLIENTS, default 20), JSON (the C++ test's
  3-metric batches to /metrics) and remote_write (2,000 samples per
  request to /api/v1/write): requests/s and p99, plaintext and TLS;
- a new connection per request (JSON): connections/s, which over https are
  full TLS handshakes/s plus the ones rustls' client resumed (both counted
  by bench).
The server runs `--ack accepted --rate-limit 0`, so the disk's fsync does
not hide the cost of TLS: this is the least favourable ratio. The
certificate is ECDSA P-256 from a test CA made with the `openssl` command.

Target (issue 22): keep-alive TLS ≥ 0.85 × plaintext throughput, checked
on the ratio within each round, for JSON and for remote_write.
Writes benchmarks/results/tls.json and the "TLS" section of BENCHMARKS.md.
"""

import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import remote_write as rw  # noqa: E402
import run as suite  # noqa: E402

ROOT = suite.ROOT
BIN = Path(os.environ["BENCH_BIN"]).resolve() if os.environ.get("BENCH_BIN") else suite.BIN
RESULTS = ROOT / "benchmarks/results/tls.json"
DURATION = os.environ.get("TLS_DURATION", "10s")
RUNS = int(os.environ.get("TLS_RUNS", "5"))
CLIENTS = int(os.environ.get("TLS_CLIENTS", "20"))
SAMPLES = int(os.environ.get("TLS_SAMPLES", "2000"))
SECTION = "## TLS"
TARGET = 0.85


def make_certificates(dir_):
    """A test CA and a server certificate for 127.0.0.1 signed by it (ECDSA
    P-256), written with the `openssl` command; returns (ca, cert, key)."""
    d = Path(dir_)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    suite.sh("openssl", "req", "-x509", *ec, "-keyout", str(d / "ca-key.pem"),
             "-out", str(d / "ca.pem"), "-days", "2", "-subj", "/CN=metricstream bench CA")
    suite.sh("openssl", "req", *ec, "-keyout", str(d / "key.pem"), "-out", str(d / "req.csr"),
             "-subj", "/CN=127.0.0.1")
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n")
    suite.sh("openssl", "x509", "-req", "-in", str(d / "req.csr"), "-CA", str(d / "ca.pem"),
             "-CAkey", str(d / "ca-key.pem"), "-CAcreateserial", "-out", str(d / "cert.pem"),
             "-days", "2", "-extfile", str(ext))
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


class Serve:
    """`metricstream serve` on the embedded log, accepted, no rate limit;
    over TLS when `tls` is (ca, cert, key)."""

    def __init__(self, tls=None):
        self.port = suite.free_port()
        self.tmp = tempfile.mkdtemp(prefix="msbench-tls-")
        cmd = [str(BIN), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.tmp,
               "--ack", "accepted", "--rate-limit", "0"]
        self.scheme, self.ca = "http", None
        if tls:
            self.ca, cert, key = tls
            cmd += ["--tls-cert", str(cert), "--tls-key", str(key)]
            self.scheme = "https"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready()

    def wait_ready(self, timeout=60):
        context = ssl.create_default_context(cafile=str(self.ca)) if self.ca else None
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"serve exited at start ({self.proc.returncode}): {self.proc.args}")
            try:
                with urllib.request.urlopen(self.url("/ready"), timeout=2, context=context) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"serve not ready within {timeout} s: {self.proc.args}")

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def stop(self):
        return suite.stop_process(self.proc, self.tmp)


# (name, path, bench arguments) of the loads; each runs plaintext and TLS.
LOADS = [
    ("json keep-alive", "/metrics", ["--keep-alive"]),
    ("remote_write keep-alive", "/api/v1/write",
     ["--keep-alive", "--format", "remote-write", "--samples-per-request", str(SAMPLES)]),
    ("json new connection", "/metrics", ["--new-connection"]),
]


def bench(server, path, args):
    out = Path(tempfile.mktemp(suffix=".json"))
    cmd = [str(BIN), "bench", "--url", server.url(path), "--quiet", "--json", str(out),
           "--clients", str(CLIENTS), "--duration", DURATION, *args]
    if server.ca:
        cmd += ["--tls-ca", str(server.ca)]
    # bench exits 1 when a request failed: the report says which; keep it.
    subprocess.run(cmd, check=False)
    report = json.loads(out.read_text())
    out.unlink()
    return report


def one_run(load, tls):
    name, path, args = load
    server = Serve(tls)
    before = rw.cpu_secs(server.proc.pid)
    report = bench(server, path, args)
    cpu = rw.cpu_secs(server.proc.pid) - before
    rss = server.stop()
    return {
        "load": name,
        "tls": tls is not None,
        "requests_per_sec": report["requests_per_sec"],
        "p50_ms": report["p50_ms"],
        "p99_ms": report["p99_ms"],
        "total": report["total"],
        "failed": report["failed"],
        "failures": report["failures"],
        "connections_opened": report.get("connections_opened"),
        "connections_per_sec": report.get("connections_per_sec"),
        "tls_resumed": report.get("tls_resumed"),
        "server_cpu_secs": cpu,
        "wall_secs": report["duration_secs"],
        "peak_rss_mib": rss,
    }


def measure():
    certs = tempfile.mkdtemp(prefix="msbench-certs-")
    tls = make_certificates(certs)
    runs = []
    for round_ in range(RUNS):
        for load in LOADS:
            # Plaintext and TLS back to back, so both see the same minute.
            for t in (None, tls):
                r = one_run(load, t)
                r["round"] = round_
                runs.append(r)
                print(f"round {round_ + 1}/{RUNS} {r['load']} {'tls' if r['tls'] else 'plain'}: "
                      f"{r['requests_per_sec']:,.0f} req/s, p99 {r['p99_ms']:.2f} ms, "
                      f"{r['connections_per_sec'] or 0:,.0f} connections/s, "
                      f"{r['failed']} failed", file=sys.stderr)
    subprocess.run(["rm", "-rf", certs], check=False)
    return {
        "machine": suite.machine(),
        "command": "benchmarks/tls.py",
        "settings": {"clients": CLIENTS, "samples_per_request": SAMPLES, "duration": DURATION,
                     "runs": RUNS, "server": "serve --ack accepted --rate-limit 0",
                     "certificate": "ECDSA P-256, test CA"},
        "runs": runs,
    }


def ratios(r, load, key="requests_per_sec"):
    """TLS / plaintext of `key` for `load`, one per round."""
    by_round = {}
    for x in r["runs"]:
        if x["load"] == load:
            by_round.setdefault(x["round"], {})[x["tls"]] = x
    return [pair[True][key] / pair[False][key] for pair in by_round.values()
            if True in pair and False in pair and pair[False][key]]


def figures(r, load, tls, key):
    return [x[key] for x in r["runs"] if x["load"] == load and x["tls"] == tls
            and x[key] is not None]


def render_section(r):
    m, s = r["machine"], r["settings"]
    lines = [
        SECTION,
        "",
        f"`metricstream serve` ({s['server']}) plaintext and with `--tls-cert/--tls-key`",
        f"({s['certificate']}), the same `metricstream bench --clients {s['clients']}"
        f" --duration {s['duration']}` load on both: JSON (the C++ test's batches),",
        f"remote_write ({s['samples_per_request']} samples per request), keep-alive; and JSON with",
        "a new connection per request, where every https request pays a TLS handshake",
        "(full, or resumed by rustls' client session cache: both counted by bench).",
        f"Plaintext and TLS run back to back in each of {s['runs']} rounds, each run a fresh server;",
        "figures are the median with the range over the rounds in brackets, the ratio is",
        "TLS / plaintext within a round.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']};",
        f"{m['rustc']}; run on {m['date']}. Regenerate with `{r['command']}`",
        "(raw figures: `benchmarks/results/tls.json`).",
        "",
        "| load | plaintext req/s | TLS req/s | TLS / plaintext | plaintext p99 | TLS p99 "
        "| connections/s (TLS: handshakes/s) | TLS handshakes resumed | failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for load, _, _ in LOADS:
        def col(tls, key, d=0, unit=""):
            xs = figures(r, load, tls, key)
            return rw.span(xs, d, unit) if xs else "–"
        ratio = ratios(r, load)
        conns = (col(False, "connections_per_sec") + " / " + col(True, "connections_per_sec")
                 if "new connection" in load else "–")
        resumed = sum(figures(r, load, True, "tls_resumed"))
        opened = sum(figures(r, load, True, "connections_opened"))
        failed = sum(x["failed"] for x in r["runs"] if x["load"] == load)
        total = sum(x["total"] for x in r["runs"] if x["load"] == load)
        lines.append(
            f"| {load} | {col(False, 'requests_per_sec')} | {col(True, 'requests_per_sec')} "
            f"| {rw.span(ratio, 2, '×') if ratio else '–'} | {col(False, 'p99_ms', 2, ' ms')} "
            f"| {col(True, 'p99_ms', 2, ' ms')} | {conns} | {resumed:,} of {opened:,} "
            f"| {failed} of {total} |")
    lines += ["", f"Target: keep-alive TLS ≥ {TARGET} × plaintext throughput (JSON and remote_write)."]
    notes = r.get("notes")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def headline(r):
    """The header table's rows for this section: (target, figure, met)."""
    rows = []
    for load, what in (("json keep-alive", "JSON"), ("remote_write keep-alive", "remote_write")):
        xs = ratios(r, load)
        if xs:
            rows.append((f"TLS keep-alive ≥ {TARGET} × plaintext requests/s ({what}, same run)",
                         rw.span(xs, 2, "×"), suite.judge(xs, lambda x: x >= TARGET)))
    hs = figures(r, "json new connection", True, "connections_per_sec")
    if hs:
        rows.append(("TLS handshakes/s, a new connection per request (reported, no target)",
                     rw.span(hs, 0), None))
    failed = sum(x["failed"] for x in r["runs"])
    rows.append(("TLS section: zero failed requests (counted by bench)", str(failed), failed == 0))
    return rows


def main():
    if os.environ.get("BENCH_BIN") and not (len(sys.argv) > 1 and sys.argv[1] == "--render"):
        # A given binary (e.g. a debug build): measure with it, no release
        # build. Its figures say nothing about the release build's.
        r = measure()
        r["notes"] = [f"Measured with {BIN}, not a release build: plumbing check only."]
        print(render_section(r))
        return
    rw.script_main(RESULTS, measure, render_section,
                   lambda text: rw.write_section(text, SECTION))


if __name__ == "__main__":
    main()
