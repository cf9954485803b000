#!/usr/bin/env python3
"""The embedded log's durable path against the disk it runs on (issue 13):
the do-nothing server, `serve --ack durable` and `serve --ack accepted`
(`--rate-limit 0`, fresh server and data directory each run) under the same
wrk load, beside the disk's own floor measured in the same round.

    benchmarks/durable.py                  # 5 interleaved rounds, 10 s per run (~5 min)
    DUR_RUNS=1 DUR_DURATION=3s benchmarks/durable.py   # a quick, noisy pass
    DUR_DIR=/some/fs benchmarks/durable.py # data dirs and the floor on another file system
    benchmarks/durable.py --render         # redraw the section from the saved results

Each round, the targets taking turns (noop, durable, accepted, …):
- the floor (`disk_floor.py`, no server running, DUR_FLOOR_SECONDS each,
  default 2): 600-byte append + fdatasync in a loop (p50/p99, commits/s),
  and a group commit with 4 and 50 writer threads on one file;
- `wrk -t2 -c50 -d<dur> --latency -s benchmarks/post.lua` against each
  server: requests/s, p50/p99, context switches per request (voluntary +
  nonvoluntary over `/proc/PID/task/*/status`; threads that exited during
  the run are not counted) and server CPU ms per 1000 requests;
- for metricstream, `GET /stats` before and after: `commits` and
  `delivered` give commits/s and batches per commit; the optional
  `commit_write_seconds`, `commit_sync_seconds`, `commit_publish_seconds`
  give the per-commit cost of each phase (shown as – when absent);
- open loop on a fresh durable server, and on the do-nothing server as a
  control, at 50% of the durable maximum of `metricstream bench --clients 50
  --keep-alive` (same generator, 50 client ids) measured in that round:
  `metricstream bench --rate R --clients 50 --keep-alive`.

Median [min–max] over the rounds; ratios are taken within a round first.
Writes benchmarks/results/durable.json and the "Durable path" section of
BENCHMARKS.md (before "remote_write" if the section is new).
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as suite  # noqa: E402
import remote_write as rw  # noqa: E402
import disk_floor  # noqa: E402

ROOT = suite.ROOT
BIN = suite.BIN
RESULTS = ROOT / "benchmarks/results/durable.json"
DURATION = os.environ.get("DUR_DURATION", "10s")
RUNS = int(os.environ.get("DUR_RUNS", "5"))
FLOOR_SECONDS = float(os.environ.get("DUR_FLOOR_SECONDS", "2"))
CONNS = 50
GROUP_THREADS = (4, 50)
RECORD_BYTES = 600
PHASES = ("write", "sync", "publish")
SECTION = "## Durable path"
TARGETS = [("noop", None), ("durable", "durable"), ("accepted", "accepted")]
# DUR_BEFORE=/path/to/an/older/metricstream adds its durable and accepted
# runs to every round: a before/after comparison measured side by side.
BEFORE = os.environ.get("DUR_BEFORE")
if BEFORE:
    TARGETS += [("durable, before", "durable"), ("accepted, before", "accepted")]

if os.environ.get("DUR_DIR"):
    # suite.Server and the floor both make their directories with tempfile.
    tempfile.tempdir = os.environ["DUR_DIR"]


def seconds(duration):
    num, unit = re.fullmatch(r"([\d.]+)(ms|s|m|h)?", duration).groups()
    return float(num) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def filesystem(path):
    """`df -T` of a directory: device, type and mount point."""
    out = subprocess.run(["df", "-PT", path], text=True, capture_output=True).stdout
    fields = out.splitlines()[-1].split() if out else []
    if len(fields) < 7:
        return {"device": "?", "type": "?", "mount": "?", "path": path}
    return {"device": fields[0], "type": fields[1], "mount": fields[6], "path": path,
            "size_gib": round(int(fields[2]) / 2**20, 1)}


def ctx_switches(pid):
    """Voluntary + nonvoluntary context switches, summed over the live threads."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:  # the thread exited
            continue
        total += sum(int(x) for x in re.findall(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)",
                                                text, re.M))
    return total


def stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
        return json.loads(r.read())


def floor():
    """The disk's floor where the data directories go, with no server running."""
    d = tempfile.mkdtemp(prefix="msfloor-")
    try:
        single = disk_floor.loop(os.path.join(d, "single"), 1_000_000, RECORD_BYTES,
                                 "fdatasync", FLOOR_SECONDS)
        groups = [disk_floor.group_loop(os.path.join(d, f"group-{n}"), n, RECORD_BYTES,
                                        FLOOR_SECONDS) for n in GROUP_THREADS]
    finally:
        os.rmdir(d)
    return {"fdatasync": single, "group": groups}


def one_run(name, ack):
    if ack:
        built = suite.BIN
        if name.endswith(", before"):
            suite.BIN = Path(BEFORE)
        try:
            server = suite.Server("file", ack, ("--rate-limit", "0"))
        finally:
            suite.BIN = built
    else:
        server = suite.Server("noop")
    pid = server.proc.pid
    s0 = stats(server.port) if ack else None
    ctx0, cpu0 = ctx_switches(pid), rw.cpu_secs(pid)
    t0 = time.perf_counter()
    w = suite.wrk(server.url, CONNS, DURATION)
    elapsed = time.perf_counter() - t0
    ctx, cpu = ctx_switches(pid) - ctx0, rw.cpu_secs(pid) - cpu0
    s1 = stats(server.port) if ack else None
    fs = filesystem(server.tmp)
    server.stop()
    requests = w["requests_per_sec"] * seconds(DURATION)
    r = {"target": name, **w, "requests": requests,
         "ctx_per_request": ctx / requests if requests else None,
         "cpu_ms_per_1000": cpu * 1000 / (requests / 1000) if requests else None,
         "filesystem": fs, "loadavg": os.getloadavg()[0]}
    if ack:
        run_secs = seconds(DURATION)
        commits = s1["commits"] - s0["commits"]
        delivered = s1["delivered"] - s0["delivered"]
        r.update({"commits": commits, "delivered": delivered, "wrk_seconds": elapsed,
                  "commits_per_sec": commits / run_secs,
                  "batches_per_commit": delivered / commits if commits else None,
                  "commit_ms": run_secs * 1000 / commits if commits else None})
        for phase in PHASES:
            key = f"commit_{phase}_seconds"
            r[f"{phase}_ms"] = ((s1[key] - s0.get(key, 0)) * 1000 / commits
                                if key in s1 and commits else None)
    return r


def closed_loop_bench():
    """Durable requests/s of `metricstream bench --clients 50 --keep-alive`."""
    server = suite.Server("file", "durable", ("--rate-limit", "0"))
    rep = suite.bench(server.url, "--clients", str(CONNS), "--keep-alive",
                      "--duration", DURATION)
    server.stop()
    return rep["requests_per_sec"]


def open_loop(rate, noop=False):
    server = (suite.Server("noop") if noop
              else suite.Server("file", "durable", ("--rate-limit", "0")))
    rep = suite.bench(server.url, "--rate", str(rate), "--clients", str(CONNS), "--keep-alive",
                      "--duration", DURATION)
    server.stop()
    return {"rate": rate, "requests_per_sec": rep["requests_per_sec"], "p50_ms": rep["p50_ms"],
            "p99_ms": rep["p99_ms"], "p999_ms": rep["p999_ms"], "max_ms": rep["max_ms"],
            "failed": rep["failed"], "total": rep["total"]}


def measure():
    rounds = []
    for round_ in range(RUNS):
        f = floor()
        g = ", ".join(f"{x['threads']} writers {x['per_sec']:,.0f}/s × "
                      f"{x['writes_per_fsync']:.1f}" for x in f["group"])
        print(f"round {round_ + 1}/{RUNS} floor: fdatasync p50 {f['fdatasync']['p50']:.3f} ms, "
              f"p99 {f['fdatasync']['p99']:.3f} ms, {f['fdatasync']['per_sec']:,.0f}/s; "
              f"group {g}", file=sys.stderr)
        runs = []
        for name, ack in TARGETS:
            r = one_run(name, ack)
            runs.append(r)
            extra = (f", {r['commits_per_sec']:,.0f} commits/s × {r['batches_per_commit'] or 0:.1f}"
                     if ack else "")
            print(f"round {round_ + 1}/{RUNS} {name}: {r['requests_per_sec']:,.0f} req/s, "
                  f"p99 {r['p99_ms']:.2f} ms, {r['ctx_per_request']:.2f} ctx/req, "
                  f"{r['errors']} errors{extra}", file=sys.stderr)
        # 50% of the maximum of the same generator and load shape (50 client
        # ids over the partitions), not of wrk's single-client maximum.
        peak = closed_loop_bench()
        rate = max(1, int(peak * 0.5))
        ol, ol_noop = open_loop(rate), open_loop(rate, noop=True)
        ol["closed_loop_max"] = peak
        for what, x in (("durable", ol), ("do-nothing", ol_noop)):
            print(f"round {round_ + 1}/{RUNS} open loop {what} {x['rate']:,}/s: p99 "
                  f"{x['p99_ms']:.2f} ms, p99.9 {x['p999_ms']:.2f} ms, {x['failed']} failed",
                  file=sys.stderr)
        rounds.append({"round": round_, "floor": f, "runs": runs, "open_loop": ol,
                       "open_loop_noop": ol_noop})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"],
                           cwd=ROOT, text=True, capture_output=True).stdout.strip()
    return {
        "machine": suite.machine(),
        "command": "benchmarks/durable.py",
        "commit": commit + ("+dirty" if dirty else ""),
        "filesystem": rounds[0]["runs"][1]["filesystem"] if rounds else filesystem(
            tempfile.gettempdir()),
        "before": os.environ.get("DUR_BEFORE_NAME", BEFORE),
        "settings": {"duration": DURATION, "runs": RUNS, "connections": CONNS,
                     "floor_seconds": FLOOR_SECONDS, "record_bytes": RECORD_BYTES},
        "rounds": rounds,
    }


def rng(xs, d=2, unit=""):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{statistics.median(xs):,.{d}f}{unit} [{min(xs):,.{d}f}–{max(xs):,.{d}f}]"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def over_rounds(rounds, target, fn):
    """`fn(run, runs of its round, floor)` for `target`'s run of each
    round; None where it has none or the figure cannot be taken."""
    out = []
    for rd in rounds:
        runs = {x["target"]: x for x in rd["runs"]}
        x = runs.get(target)
        try:
            out.append(fn(x, runs, rd["floor"]) if x else None)
        except (TypeError, ZeroDivisionError):
            out.append(None)
    return out


def render_section(r):
    m, s, fs = r["machine"], r["settings"], r["filesystem"]
    rounds = r["rounds"]

    def per_round(target, fn):
        return over_rounds(rounds, target, fn)

    def col(target, key):
        return per_round(target, lambda x, runs, f: x[key])

    def of_noop(target):
        return per_round(target, lambda x, runs, f:
                         x["requests_per_sec"] / runs["noop"]["requests_per_sec"])

    lines = [
        SECTION, "",
        f"Run on {m['date']}; {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']};",
        f"data directories on {fs['device']} ({fs['type']}, mounted on {fs['mount']}); "
        f"build `{r['commit']}`.",
        f"Regenerate with `{r['command']}` (raw figures: `benchmarks/results/durable.json`).", "",
        f"`wrk -t2 -c{s['connections']} -d{s['duration']} --latency -s benchmarks/post.lua` "
        "against the do-nothing",
        "server, `serve --ack durable --rate-limit 0` and `serve --ack accepted --rate-limit 0`,",
        "a fresh server and data directory per run, the targets taking turns, "
        f"{s['runs']} round{'s' if s['runs'] != 1 else ''};",
        "each round also measures the disk's floor on the same file system",
        f"(`benchmarks/disk_floor.py`, {s['record_bytes']} B records, "
        f"{s['floor_seconds']:g} s each, no server running).",
        "Median [min–max] over the rounds; ratios are taken within a round, then summarised.",
        "Context switches: voluntary + nonvoluntary over the server's live threads; CPU:",
        "utime + stime of the server.",
        *(["Rows marked “before”: the build named in `before` of the results "
           f"(`{r.get('before', '')}`), run in the same rounds (`DUR_BEFORE`)."]
          if any(x["target"].endswith(", before") for x in rounds[0]["runs"]) else []),
        "",
        "| server | requests/s | of do-nothing | p50 | p99 | ctx switches/request "
        "| CPU ms per 1000 requests | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = [x["target"] for x in rounds[0]["runs"]] if rounds else []
    for name in names:
        lines.append(
            f"| {name} | {rng(col(name, 'requests_per_sec'), 0)} "
            f"| {'1' if name == 'noop' else rng(of_noop(name), 2, '×')} "
            f"| {rng(col(name, 'p50_ms'), 2, ' ms')} | {rng(col(name, 'p99_ms'), 2, ' ms')} "
            f"| {rng(col(name, 'ctx_per_request'), 2)} | {rng(col(name, 'cpu_ms_per_1000'), 1)} "
            f"| {sum(x or 0 for x in col(name, 'errors'))} |")

    fd = [rd["floor"]["fdatasync"] for rd in rounds]
    lines += [
        "", "Group commits (`GET /stats` before and after: `commits`, `delivered`; commit cost",
        "= run seconds / commits; phase costs from `commit_{write,sync,publish}_seconds`",
        "when the server reports them):", "",
        "| server | commits/s | batches/commit | commit cost | write | sync | publish "
        "| commits/s ÷ fdatasyncs/s | cost ÷ fdatasync p50 | wrk p99 ÷ fdatasync p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in [n for n in names if n != "noop"]:
        lines.append(
            f"| {name} | {rng(col(name, 'commits_per_sec'), 0)} "
            f"| {rng(col(name, 'batches_per_commit'), 1)} "
            f"| {rng(col(name, 'commit_ms'), 3, ' ms')} "
            + "".join(f"| {rng(col(name, p + '_ms'), 3, ' ms')} " for p in PHASES)
            + f"| {rng(per_round(name, lambda x, r_, f: x['commits_per_sec'] / f['fdatasync']['per_sec']), 2, '×')} "
            f"| {rng(per_round(name, lambda x, r_, f: x['commit_ms'] / f['fdatasync']['p50']), 1, '×')} "
            f"| {rng(per_round(name, lambda x, r_, f: x['p99_ms'] / f['fdatasync']['p99']), 1, '×')} |")

    lines += [
        "", "The disk's floor (600 B append + fdatasync in a loop; group commit: N Python",
        "threads append to one file, one leader fdatasyncs for all written so far, the",
        "others wait; at 50 threads the GIL, not the disk, may set the pace):", "",
        "| loop | commits/s | writes/s | writes/commit | p50 | p99 |",
        "|---|---|---|---|---|---|",
        f"| append + fdatasync | {rng([x['per_sec'] for x in fd], 0)} | = commits | 1 "
        f"| {rng([x['p50'] for x in fd], 3, ' ms')} | {rng([x['p99'] for x in fd], 3, ' ms')} |",
    ]
    for i, n in enumerate(GROUP_THREADS):
        g = [rd["floor"]["group"][i] for rd in rounds if len(rd["floor"]["group"]) > i]
        lines.append(
            f"| group commit, {n} writers | {rng([x['per_sec'] for x in g], 0)} "
            f"| {rng([x['writes_per_sec'] for x in g], 0)} "
            f"| {rng([x['writes_per_fsync'] for x in g], 1)} "
            f"| {rng([x['p50'] for x in g], 3, ' ms')} | {rng([x['p99'] for x in g], 3, ' ms')} |")

    lines += [
        "", "Open loop on a fresh durable server at 50% of the round's durable maximum with",
        f"the same generator (`metricstream bench --clients {s['connections']} --keep-alive`, "
        "closed loop, 50 client ids: all partitions),",
        "and on the do-nothing server at the same rate (what the machine and the load",
        f"generator allow): `metricstream bench --rate R --clients {s['connections']} "
        f"--keep-alive --duration {s['duration']}`,",
        "latency from the scheduled send time:", "",
        "| server | rate | achieved | p50 | p99 | p99.9 | max | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for what, key in (("durable", "open_loop"), ("do-nothing", "open_loop_noop")):
        ol = [rd[key] for rd in rounds if key in rd]
        if not ol:
            continue
        lines.append(
            f"| {what} | {rng([x['rate'] for x in ol], 0)} "
            f"| {rng([x['requests_per_sec'] for x in ol], 0)} "
            f"| {rng([x['p50_ms'] for x in ol], 2, ' ms')} "
            f"| {rng([x['p99_ms'] for x in ol], 2, ' ms')} "
            f"| {rng([x['p999_ms'] for x in ol], 2, ' ms')} "
            f"| {rng([x['max_ms'] for x in ol], 2, ' ms')} "
            f"| {sum(x['failed'] for x in ol)} of {sum(x['total'] for x in ol)} |")

    lines += ["", "Targets (on the medians):", ""]
    lines += [f"- {t}" for t in targets(rounds, per_round, of_noop, col)]
    notes = r.get("notes")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def targets(rounds, per_round, of_noop, col):
    def verdict(ok):
        return "–" if ok is None else "met" if ok else "**not met**"

    out = []
    d_ratio = med(of_noop("durable"))
    cost_x = med(per_round("durable", lambda x, r_, f: x["commit_ms"] / f["fdatasync"]["p50"]))
    bpc = med(col("durable", "batches_per_commit"))
    alt = cost_x is not None and bpc is not None and cost_x <= 2 and bpc >= 40
    ok = None if d_ratio is None else d_ratio >= 0.6 or alt
    out.append(f"durable ≥ 0.6× do-nothing (or commit cost ≤ 2× fdatasync p50 with ≥ 40 "
               f"batches/commit): {_f(d_ratio, 2, '×')}; commit cost {_f(cost_x, 1, '×')} "
               f"fdatasync p50, {_f(bpc, 1)} batches/commit — {verdict(ok)}")
    p99_x = med(per_round("durable", lambda x, r_, f: x["p99_ms"] / f["fdatasync"]["p99"]))
    noop_x = med(per_round("noop", lambda x, r_, f: x["p99_ms"] / f["fdatasync"]["p99"]))
    out.append(f"durable p99 ≤ 3× fdatasync p99: {_f(med(col('durable', 'p99_ms')), 2, ' ms')} "
               f"= {_f(p99_x, 1, '×')} — {verdict(None if p99_x is None else p99_x <= 3)} "
               f"(the do-nothing server's own p99 under the same load: "
               f"{_f(med(col('noop', 'p99_ms')), 2, ' ms')} = {_f(noop_x, 1, '×')})")
    ol = med([rd["open_loop"]["p99_ms"] for rd in rounds])
    ol_noop = med([rd["open_loop_noop"]["p99_ms"] for rd in rounds if "open_loop_noop" in rd])
    out.append(f"durable open loop at 50%: p99 ≤ 10 ms: {_f(ol, 2, ' ms')} — "
               f"{verdict(None if ol is None else ol <= 10)} (do-nothing server at the same "
               f"rate: {_f(ol_noop, 2, ' ms')})")
    a_ratio, a_p99 = med(of_noop("accepted")), med(col("accepted", "p99_ms"))
    ok = None if a_ratio is None or a_p99 is None else a_ratio >= 0.6 and a_p99 <= 5
    out.append(f"accepted ≥ 0.6× do-nothing and p99 ≤ 5 ms: {_f(a_ratio, 3, '×')}, "
               f"p99 {_f(a_p99, 2, ' ms')} — {verdict(ok)}")
    return out


def headline(r):
    """The header table's rows for this section: (target, figure, met)."""
    rounds = r["rounds"]

    def per_round(target, fn):
        return over_rounds(rounds, target, fn)

    ratio = [x for x in per_round("durable", lambda x, runs, f:
                                  x["requests_per_sec"] / runs["noop"]["requests_per_sec"])
             if x is not None]
    p99 = [x for x in per_round("durable", lambda x, runs, f: x["p99_ms"]) if x is not None]
    errors = sum(x or 0 for x in per_round("durable", lambda x, runs, f: x["errors"]))
    if not ratio:
        return []
    return [
        ("durable embedded log ≥ 0.6 × do-nothing server (wrk -c50, requests/s)",
         rng(ratio, 2, "×"), suite.judge(ratio, lambda x: x >= 0.6)),
        ("… durable p99 (wrk -c50)", rng(p99, 2, " ms"), None),
        ("… with zero errors", str(errors), errors == 0),
    ]


def _f(x, d, unit=""):
    return "–" if x is None else f"{x:,.{d}f}{unit}"


def write_section(text):
    """Replaces the section in BENCHMARKS.md, or inserts it before remote_write."""
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text()
    if doc.find(SECTION + "\n") < 0 and "\n## remote_write\n" in doc:
        at = doc.find("\n## remote_write\n") + 1
        path.write_text(doc[:at] + text + "\n" + doc[at:])
    else:
        rw.write_section(text, SECTION)


def main():
    rw.script_main(RESULTS, measure, render_section, write_section,
                   build=("--bin", "metricstream", "--example", "noop_server"))


if __name__ == "__main__":
    main()
