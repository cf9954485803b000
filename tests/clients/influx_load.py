"""Line protocol load from InfluxDB's own Python client (influxdb-client,
the 2.x API), for the SIGKILL test (tests/crash_protocols.rs).

Usage: influx_load.py URL TOKEN WORKERS POINTS

WORKERS threads, each with its own client and SYNCHRONOUS write API, write
batches in a loop until stdin is closed. Batch N is POINTS points of the
measurement `load`, tagged batch=N and point=K (K in 0..POINTS), with the
integer field value=N*1000+K: one write call, one request. Without a timestamp,
so the server stamps them.

No retries (the client's default: a failed write raises and is not sent
again): a write that raises is printed as failed and the thread goes on with
the next batch, so across the server's outage some batches fail and none is
ever sent twice. Output, one JSON object per line:
  {"client": "influxdb-client 1.50.0"}                          first
  {"batch": N, "ok": true, "attempts": 1, "refused": 0}        a 2xx
  {"batch": N, "ok": false, "attempts": 1, "refused": 0|1, "status": 503|null,
   "error": "status"|"refused"|"cut", "detail": "..."}
"refused" means no connection was made (nothing was sent); "cut" any other
transport error (the connection broke or timed out, the request perhaps
sent).
"""

import itertools
import json
import sys
import threading
import time
from importlib.metadata import version

from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

url, token, workers, points = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
BUCKET = "load"

stop = threading.Event()
out_lock = threading.Lock()
batches = itertools.count()


def emit(obj):
    with out_lock:
        print(json.dumps(obj), flush=True)


def transport_error(e):
    text = repr(e)
    if "Connection refused" in text or "Errno 111" in text:
        return "refused"
    return "cut"


def failed(n, status, error, detail):
    refused = 1 if error == "refused" else 0
    return {"batch": n, "ok": False, "attempts": 1, "refused": refused, "status": status, "error": error, "detail": detail}


def worker():
    # A client per thread: its connection pool and API objects are not
    # shared. 5 s is far above a durable write's time on a busy machine and
    # far below the test's own deadlines.
    with InfluxDBClient(url=url, token=token, org="my-org", timeout=5_000) as client:
        write = client.write_api(write_options=SYNCHRONOUS)
        while not stop.is_set():
            with out_lock:
                n = next(batches)
            record = [
                Point("load").tag("batch", str(n)).tag("point", str(k)).field("value", n * 1000 + k)
                for k in range(points)
            ]
            try:
                write.write(bucket=BUCKET, record=record)
            except ApiException as e:
                emit(failed(n, e.status, "status", str(e.reason)))
            except Exception as e:  # noqa: BLE001 - every transport error is a failed write
                emit(failed(n, None, transport_error(e), repr(e)[:200]))
                # The server is down: no point in spinning on refused connections.
                time.sleep(0.1)
            else:
                # The client raises on anything but a 2xx.
                emit({"batch": n, "ok": True, "attempts": 1, "refused": 0})


def main():
    emit({"client": "influxdb-client " + version("influxdb-client")})
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    # The test closes stdin to stop the load; every thread finishes its
    # write in progress and prints its outcome first.
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
