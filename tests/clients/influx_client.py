"""Writes points to metricstream with InfluxDB's own Python client
(influxdb-client, the 2.x API) and prints, as one JSON object per line,
what metricstream must have stored for them.

Usage: influx_client.py URL TOKEN [CA_FILE [CERT_FILE KEY_FILE]]

With an https URL, CA_FILE is the CA the server's certificate is checked
against, CERT_FILE and KEY_FILE a client certificate (mutual TLS).

Every field type (float, integer, unsigned, boolean, string) and every
precision the client offers (ns, us, ms, s) go through the client's
SYNCHRONOUS write API, as Point objects and as raw line protocol. A write
with a string field must fail with the client's ApiException (HTTP 400)
and still store its numeric fields. Output lines:
  {"expect": {name, value, tags, timestamp, timestamp_ns?}}   one per stored metric
  {"refused": {"status": 400, "message": ...}}               one per refused write
"""

import json
import sys

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

url, token = sys.argv[1], sys.argv[2]
tls = {}
if len(sys.argv) > 3:
    tls["ssl_ca_cert"] = sys.argv[3]
if len(sys.argv) > 5:
    tls["cert_file"], tls["cert_key_file"] = sys.argv[4], sys.argv[5]
BUCKET = "telegraf"
BASE_NS = 1_700_000_000_123_456_789
# The int64 that a float cannot hold.
BIG = 9_223_372_036_854_775_807


def emit(name, value, tags, ns):
    ms = ns // 1_000_000
    expect = {"name": name, "value": value, "tags": dict(tags, db=BUCKET), "timestamp": ms}
    if ns % 1_000_000:
        expect["timestamp_ns"] = ns
    print(json.dumps({"expect": expect}), flush=True)


with InfluxDBClient(url=url, token=token, org="my-org", **tls) as client:
    write = client.write_api(write_options=SYNCHRONOUS)
    precisions = [
        (WritePrecision.NS, 1),
        (WritePrecision.US, 1_000),
        (WritePrecision.MS, 1_000_000),
        (WritePrecision.S, 1_000_000_000),
    ]
    for i, (precision, unit) in enumerate(precisions):
        ts = BASE_NS // unit + i  # in the precision's unit
        ns = ts * unit
        tags = {"host": "web 1", "region": "eu,west", "p": str(precision)}
        point = (
            Point("cpu")
            .tag("host", tags["host"])
            .tag("region", tags["region"])
            .tag("p", tags["p"])
            .field("usage_idle", 97.5 + i)
            .field("count", BIG - i)
            .field("up", i % 2 == 0)
            .time(ts, precision)
        )
        write.write(bucket=BUCKET, record=point, write_precision=precision)
        emit("cpu_usage_idle", 97.5 + i, tags, ns)
        emit("cpu_count", BIG - i, tags, ns)
        emit("cpu_up", 1.0 if i % 2 == 0 else 0.0, tags, ns)

        # Raw line protocol through the same client: unsigned and `value`.
        raw = f"disk,p={precision} free=18446744073709551615u,value=-3i {ts}"
        write.write(bucket=BUCKET, record=raw, write_precision=precision)
        emit("disk_free", 18446744073709551615, {"p": str(precision)}, ns)
        emit("disk", -3, {"p": str(precision)}, ns)

    # A string field: the numeric field is stored, the write fails with 400.
    point = Point("svc").tag("name", "api").field("version", "1.2.3").field("up", 1.0)
    point = point.time(BASE_NS, WritePrecision.NS)
    try:
        write.write(bucket=BUCKET, record=point)
        print(json.dumps({"refused": None}), flush=True)
    except ApiException as e:
        print(json.dumps({"refused": {"status": e.status, "message": json.loads(e.body)}}), flush=True)
    emit("svc_up", 1.0, {"name": "api"}, BASE_NS)
