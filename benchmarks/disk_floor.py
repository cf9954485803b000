#!/usr/bin/env python3
"""The disk's own floor for a durable commit, measured where the embedded
log writes: a loop of one small append + fdatasync (or + syncfs), timed per
iteration. A group commit cannot cost less than one of these.

    benchmarks/disk_floor.py [DIR] [--n 2000] [--bytes 600] [--threads 4,50] [--seconds 2]

Prints p50/p90/p99/max in ms for each mode, and commits/s. Then a classic
group commit with N writer threads on one shared file (`--threads`, 0 to
skip): each appends its record and waits; whoever finds no fdatasync in
progress becomes the leader and syncs for everyone written so far. Prints
commits (fdatasyncs)/s, writes/s, writes per fdatasync and a writer's wait
(p50/p99, write to durable). Python threads: a floor for the disk, not for
the GIL, at high N.
"""

import argparse
import os
import statistics
import tempfile
import threading
import time


def loop(path, n, size, sync, seconds=None):
    """n iterations (or fewer, if `seconds` run out first) of append + sync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    dirfd = os.open(os.path.dirname(path), os.O_RDONLY)
    payload = os.urandom(size)
    times = []
    stop = time.perf_counter() + seconds if seconds else float("inf")
    try:
        for _ in range(n):
            if time.perf_counter() >= stop:
                break
            t = time.perf_counter()
            os.write(fd, payload)
            if sync == "fdatasync":
                os.fdatasync(fd)
            else:
                os.syncfs(dirfd) if hasattr(os, "syncfs") else os.sync()
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        os.close(dirfd)
        os.unlink(path)
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))]  # noqa: E731
    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": times[-1],
            "per_sec": len(times) / (sum(times) / 1000), "mean": statistics.mean(times),
            "n": len(times)}


def group_loop(path, threads, size, seconds):
    """Group commit: `threads` writers append `size` bytes each to one file and
    wait until an fdatasync covers their record; one leader syncs for all."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    payload = os.urandom(size)
    cond = threading.Condition()
    state = {"written": 0, "synced": 0, "syncing": False, "fsyncs": 0}
    waits = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds

    def writer(mine):
        while time.perf_counter() < stop:
            t = time.perf_counter()
            os.write(fd, payload)  # before counting it: a sync that starts later covers it
            with cond:
                state["written"] += 1
                seq = state["written"]
                while state["synced"] < seq:
                    if state["syncing"]:
                        cond.wait()
                        continue
                    state["syncing"], upto = True, state["written"]
                    cond.release()
                    try:
                        os.fdatasync(fd)
                    finally:
                        cond.acquire()
                    state["synced"], state["syncing"] = upto, False
                    state["fsyncs"] += 1
                    cond.notify_all()
            mine.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    workers = [threading.Thread(target=writer, args=(w,)) for w in waits]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        os.close(fd)
        os.unlink(path)
    elapsed = time.perf_counter() - start
    times = sorted(x for w in waits for x in w)
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))]  # noqa: E731
    return {"threads": threads, "p50": q(0.5), "p99": q(0.99), "max": times[-1],
            "writes_per_sec": len(times) / elapsed, "per_sec": state["fsyncs"] / elapsed,
            "writes_per_fsync": state["synced"] / max(1, state["fsyncs"]),
            "seconds": elapsed}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--bytes", type=int, default=600)
    ap.add_argument("--threads", default="4,50", help="group commit writers, e.g. 4,50 (0: skip)")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each group commit run")
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp(prefix="msfloor-")
    for sync in ("fdatasync", "syncfs"):
        r = loop(os.path.join(d, f"floor-{sync}"), a.n, a.bytes, sync)
        print(f"write {a.bytes} B + {sync}: p50 {r['p50']:.3f} ms, p90 {r['p90']:.3f}, "
              f"p99 {r['p99']:.3f}, max {r['max']:.2f}; {r['per_sec']:,.0f} commits/s")
    for n in (int(x) for x in a.threads.split(",") if int(x) > 0):
        g = group_loop(os.path.join(d, f"floor-group-{n}"), n, a.bytes, a.seconds)
        print(f"group commit, {n} writers: {g['per_sec']:,.0f} fdatasyncs/s, "
              f"{g['writes_per_sec']:,.0f} writes/s, {g['writes_per_fsync']:.1f} writes/fdatasync; "
              f"wait p50 {g['p50']:.3f} ms, p99 {g['p99']:.3f}, max {g['max']:.2f}")


if __name__ == "__main__":
    main()
