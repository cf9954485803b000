"""OTLP/HTTP load from the OpenTelemetry Python SDK and its own OTLP/HTTP
exporter (protobuf), for the SIGKILL test (tests/crash_protocols.rs).

Usage: otlp_load.py ENDPOINT TOKEN WORKERS POINTS

WORKERS threads, each with its own MeterProvider, InMemoryMetricReader
(delta temporality: a collection holds only what was recorded since the
last one) and OTLPMetricExporter, export in a loop until stdin is closed.
Export N holds POINTS data points of the counter `load.points`, with the
attributes batch="N" and point="K" (K in 0..POINTS) and the value
N*1000+K: the script checks that the collected MetricsData holds exactly
those before exporting it, so an export and a batch are the same thing.

The exporter is the SDK's, unchanged: it retries connection errors and
429/502/503/504 itself, with backoff, within its timeout (1 s here, so an
export gives up soon after the server goes away instead of outliving the
outage). Only its result counts: SUCCESS or FAILURE. Its requests go through
a requests.Session that counts them, and those refused at connect (which
sent nothing), so the test can tell an export that reached the server more
than once. Output, one JSON object per line:
  {"client": "opentelemetry-sdk 1.45.2, opentelemetry-exporter-otlp-proto-http 1.45.2"}
  {"batch": N, "ok": true|false, "result": "SUCCESS"|"FAILURE", "attempts": A,
   "refused": R, "error": "refused"|"cut"|null, "detail": "..."}
"error" is the last failed attempt's kind: "refused" (no connection was
made), "cut" (any other transport error), null (none, or an HTTP status).
"""

import itertools
import json
import os
import sys
import threading
from importlib.metadata import version

import requests
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
)
from opentelemetry.sdk.resources import Resource

endpoint, token, workers, points = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

stop = threading.Event()
out_lock = threading.Lock()
batches = itertools.count()


def emit(obj):
    with out_lock:
        print(json.dumps(obj), flush=True)


class CountingSession(requests.Session):
    """A plain requests.Session (what the exporter uses by default) that
    counts the HTTP requests made, those refused at connect, and keeps the
    last transport error."""

    def __init__(self):
        super().__init__()
        self.reset()

    def reset(self):
        self.attempts, self.refused, self.error = 0, 0, None

    def request(self, *args, **kwargs):
        self.attempts += 1
        try:
            return super().request(*args, **kwargs)
        except Exception as e:
            text = repr(e)
            # ECONNREFUSED: the connection was never made, nothing was sent.
            refused = "Connection refused" in text or "Errno 111" in text
            self.refused += refused
            self.error = ("refused" if refused else "cut", text[:200])
            raise


def points_of(metrics_data):
    """(batch, point, value) of every data point in the collected data."""
    out = []
    for rm in metrics_data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    out.append((p.attributes.get("batch"), p.attributes.get("point"), p.value))
    return out


def worker():
    delta = AggregationTemporality.DELTA
    reader = InMemoryMetricReader(preferred_temporality={Counter: delta})
    provider = MeterProvider(
        resource=Resource.create({"service.name": "otlp-load"}),
        metric_readers=[reader],
    )
    counter = provider.get_meter("metricstream.crash").create_counter("load.points")
    session = CountingSession()
    exporter = OTLPMetricExporter(
        endpoint=endpoint,
        headers={"Authorization": "Bearer " + token},
        timeout=1.0,
        session=session,
    )
    while not stop.is_set():
        with out_lock:
            n = next(batches)
        for k in range(points):
            counter.add(n * 1000 + k, {"batch": str(n), "point": str(k)})
        data = reader.get_metrics_data()
        got = sorted(points_of(data)) if data else []
        want = sorted((str(n), str(k), n * 1000 + k) for k in range(points))
        if got != want:
            # Not a metricstream failure: the export would not be batch n.
            print(f"batch {n}: the SDK collected {got[:5]}... instead of {want[:5]}...", file=sys.stderr, flush=True)
            os._exit(2)  # from a thread: sys.exit would end only the thread
        session.reset()
        try:
            result = exporter.export(data)
        except Exception as e:  # noqa: BLE001 - older exporters raise some transport errors
            result = MetricExportResult.FAILURE
            if session.error is None:
                session.error = ("cut", repr(e)[:200])
        ok = result == MetricExportResult.SUCCESS
        error, detail = session.error if session.error and not ok else (None, None)
        emit(
            {
                "batch": n,
                "ok": ok,
                "result": result.name,
                "attempts": session.attempts,
                "refused": session.refused,
                "error": error,
                "detail": detail,
            }
        )
    exporter.shutdown()
    provider.shutdown()


def main():
    emit(
        {
            "client": "opentelemetry-sdk "
            + version("opentelemetry-sdk")
            + ", opentelemetry-exporter-otlp-proto-http "
            + version("opentelemetry-exporter-otlp-proto-http")
        }
    )
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    # The test closes stdin to stop the load; every thread finishes its
    # export in progress and prints its outcome first.
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
