#!/usr/bin/env python3
"""The disk's own floor for a durable commit, measured where the embedded
log writes: a loop of one small append + fdatasync (or + syncfs), timed per
iteration. A group commit cannot cost less than one of these.

    benchmarks/disk_floor.py [DIR] [--n 2000] [--bytes 600]

Prints p50/p90/p99/max in ms for each mode, and commits/s.
"""

import argparse
import os
import statistics
import tempfile
import time


def loop(path, n, size, sync):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    dirfd = os.open(os.path.dirname(path), os.O_RDONLY)
    payload = os.urandom(size)
    times = []
    try:
        for _ in range(n):
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
            "per_sec": n / (sum(times) / 1000), "mean": statistics.mean(times)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--bytes", type=int, default=600)
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp(prefix="msfloor-")
    for sync in ("fdatasync", "syncfs"):
        r = loop(os.path.join(d, f"floor-{sync}"), a.n, a.bytes, sync)
        print(f"write {a.bytes} B + {sync}: p50 {r['p50']:.3f} ms, p90 {r['p90']:.3f}, "
              f"p99 {r['p99']:.3f}, max {r['max']:.2f}; {r['per_sec']:,.0f} commits/s")


if __name__ == "__main__":
    main()
