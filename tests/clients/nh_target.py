"""A scrape target that exposes native histograms, made by hand.

Serves /metrics in Prometheus' protobuf exposition format: varint
length-delimited `io.prometheus.client.MetricFamily` messages, with
Content-Type application/vnd.google.protobuf;
proto=io.prometheus.client.MetricFamily; encoding=delimited. The messages
are described at run time with a FileDescriptorProto (no protoc, no
generated code), field numbers as in the upstream
io/prometheus/client/metrics.proto of github.com/prometheus/client_model at
commit 467cd280de49d01cd2ca0a738359e4123eeb531f (its last change to that
file). Shares no code with metricstream or Prometheus.

What Prometheus 2.42 scrapes from it (checked against its v2.42.0 source:
model/textparse/protobufparse.go, scrape/scrape.go, and its own copy of
the proto in prompb/io/prometheus/client/metrics.proto, which lacks the
newer fields): with --enable-feature=native-histograms it asks for this
format first and ingests a histogram as a native one when it has
positive/negative deltas, a zero count or a zero threshold; integer
histograms (deltas) and float histograms (absolute float counts, chosen
when sample_count_float or zero_count_float > 0) both; exponential schemas
-4..8 only (custom buckets are newer); exemplars of a native histogram only
from its classic `bucket` entries (the Histogram.exemplars field is newer),
and a counter's exemplar. So MetricFamily.unit, the created timestamps and
Histogram.exemplars are described here as upstream has them but never set.

Every scrape exposes, changing deterministically with the scrape number n
(1, 2, ...):
- nh_request_seconds{path="/api"} and {path="/health"}: integer native
  histograms, schema 3, positive buckets in two spans (the second growing
  every 5 scrapes), negative buckets, a zero bucket; classic buckets too,
  some of them with an exemplar (timestamps strictly increasing, as
  Prometheus' exemplar storage wants them per series; 2.42 keeps the first
  of them) from the second scrape on: 2.42's remote_write receiver appends
  a time series' exemplars before its histograms, so an exemplar sent with
  a series' very first histogram finds no series yet and is dropped (even
  from Prometheus to Prometheus);
- nh_payload_bytes: an integer native histogram with no classic buckets,
  schema 0, a zero bucket of threshold 0, and from the 4th scrape on NaN
  observations: a count above its buckets' sum, and a NaN sum;
- nh_queue_ratio: a float native histogram, schema -1;
- nh_requests_total{code="200"}: a counter with an exemplar, stamped on
  even scrapes and left for Prometheus to stamp on odd ones;
- nh_temperature_celsius: a gauge, NaN every 4th scrape.

Usage: nh_target.py [PORT]   (default 0: any free port)
Prints one JSON line, {"listen": "127.0.0.1:PORT"}, once it listens.
GET /scrapes answers {"scrapes": n}, the number of /metrics served.
"""

import json
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import timestamp_pb2

PACKAGE = "io.prometheus.client"
CONTENT_TYPE = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
    "encoding=delimited"
)
# What Prometheus puts in Accept when it can take this format.
ACCEPTED = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily"

F = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED
TIMESTAMP = ".google.protobuf.Timestamp"


def _message(file, name, fields):
    m = file.message_type.add(name=name)
    for field_name, number, label, kind, type_name in fields:
        f = m.field.add(name=field_name, number=number, label=label, type=kind)
        if type_name:
            f.type_name = type_name
    return m


def _types():
    """metrics.proto (proto2, as upstream), described at run time."""
    file = descriptor_pb2.FileDescriptorProto(
        name="nh_target/io_prometheus_client_metrics.proto",
        package=PACKAGE,
        syntax="proto2",
        dependency=["google/protobuf/timestamp.proto"],
    )
    ref = lambda n: "." + PACKAGE + "." + n  # noqa: E731
    _message(
        file,
        "LabelPair",
        [
            ("name", 1, OPTIONAL, F.TYPE_STRING, None),
            ("value", 2, OPTIONAL, F.TYPE_STRING, None),
        ],
    )
    enum = file.enum_type.add(name="MetricType")
    for name, number in [
        ("COUNTER", 0),
        ("GAUGE", 1),
        ("SUMMARY", 2),
        ("UNTYPED", 3),
        ("HISTOGRAM", 4),
        ("GAUGE_HISTOGRAM", 5),
    ]:
        enum.value.add(name=name, number=number)
    _message(file, "Gauge", [("value", 1, OPTIONAL, F.TYPE_DOUBLE, None)])
    _message(
        file,
        "Counter",
        [
            ("value", 1, OPTIONAL, F.TYPE_DOUBLE, None),
            ("exemplar", 2, OPTIONAL, F.TYPE_MESSAGE, ref("Exemplar")),
            ("created_timestamp", 3, OPTIONAL, F.TYPE_MESSAGE, TIMESTAMP),
        ],
    )
    _message(
        file,
        "Quantile",
        [
            ("quantile", 1, OPTIONAL, F.TYPE_DOUBLE, None),
            ("value", 2, OPTIONAL, F.TYPE_DOUBLE, None),
        ],
    )
    _message(
        file,
        "Summary",
        [
            ("sample_count", 1, OPTIONAL, F.TYPE_UINT64, None),
            ("sample_sum", 2, OPTIONAL, F.TYPE_DOUBLE, None),
            ("quantile", 3, REPEATED, F.TYPE_MESSAGE, ref("Quantile")),
            ("created_timestamp", 4, OPTIONAL, F.TYPE_MESSAGE, TIMESTAMP),
        ],
    )
    _message(file, "Untyped", [("value", 1, OPTIONAL, F.TYPE_DOUBLE, None)])
    _message(
        file,
        "Histogram",
        [
            ("sample_count", 1, OPTIONAL, F.TYPE_UINT64, None),
            ("sample_count_float", 4, OPTIONAL, F.TYPE_DOUBLE, None),
            ("sample_sum", 2, OPTIONAL, F.TYPE_DOUBLE, None),
            ("bucket", 3, REPEATED, F.TYPE_MESSAGE, ref("Bucket")),
            ("created_timestamp", 15, OPTIONAL, F.TYPE_MESSAGE, TIMESTAMP),
            ("schema", 5, OPTIONAL, F.TYPE_SINT32, None),
            ("zero_threshold", 6, OPTIONAL, F.TYPE_DOUBLE, None),
            ("zero_count", 7, OPTIONAL, F.TYPE_UINT64, None),
            ("zero_count_float", 8, OPTIONAL, F.TYPE_DOUBLE, None),
            ("negative_span", 9, REPEATED, F.TYPE_MESSAGE, ref("BucketSpan")),
            ("negative_delta", 10, REPEATED, F.TYPE_SINT64, None),
            ("negative_count", 11, REPEATED, F.TYPE_DOUBLE, None),
            ("positive_span", 12, REPEATED, F.TYPE_MESSAGE, ref("BucketSpan")),
            ("positive_delta", 13, REPEATED, F.TYPE_SINT64, None),
            ("positive_count", 14, REPEATED, F.TYPE_DOUBLE, None),
            ("exemplars", 16, REPEATED, F.TYPE_MESSAGE, ref("Exemplar")),
        ],
    )
    _message(
        file,
        "Bucket",
        [
            ("cumulative_count", 1, OPTIONAL, F.TYPE_UINT64, None),
            ("cumulative_count_float", 4, OPTIONAL, F.TYPE_DOUBLE, None),
            ("upper_bound", 2, OPTIONAL, F.TYPE_DOUBLE, None),
            ("exemplar", 3, OPTIONAL, F.TYPE_MESSAGE, ref("Exemplar")),
        ],
    )
    _message(
        file,
        "BucketSpan",
        [
            ("offset", 1, OPTIONAL, F.TYPE_SINT32, None),
            ("length", 2, OPTIONAL, F.TYPE_UINT32, None),
        ],
    )
    _message(
        file,
        "Exemplar",
        [
            ("label", 1, REPEATED, F.TYPE_MESSAGE, ref("LabelPair")),
            ("value", 2, OPTIONAL, F.TYPE_DOUBLE, None),
            ("timestamp", 3, OPTIONAL, F.TYPE_MESSAGE, TIMESTAMP),
        ],
    )
    _message(
        file,
        "Metric",
        [
            ("label", 1, REPEATED, F.TYPE_MESSAGE, ref("LabelPair")),
            ("gauge", 2, OPTIONAL, F.TYPE_MESSAGE, ref("Gauge")),
            ("counter", 3, OPTIONAL, F.TYPE_MESSAGE, ref("Counter")),
            ("summary", 4, OPTIONAL, F.TYPE_MESSAGE, ref("Summary")),
            ("untyped", 5, OPTIONAL, F.TYPE_MESSAGE, ref("Untyped")),
            ("histogram", 7, OPTIONAL, F.TYPE_MESSAGE, ref("Histogram")),
            ("timestamp_ms", 6, OPTIONAL, F.TYPE_INT64, None),
        ],
    )
    _message(
        file,
        "MetricFamily",
        [
            ("name", 1, OPTIONAL, F.TYPE_STRING, None),
            ("help", 2, OPTIONAL, F.TYPE_STRING, None),
            ("type", 3, OPTIONAL, F.TYPE_ENUM, ref("MetricType")),
            ("metric", 4, REPEATED, F.TYPE_MESSAGE, ref("Metric")),
            ("unit", 5, OPTIONAL, F.TYPE_STRING, None),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    ts_file = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(ts_file)
    pool.AddSerializedFile(ts_file.SerializeToString())
    pool.AddSerializedFile(file.SerializeToString())

    def cls(name):
        d = pool.FindMessageTypeByName(PACKAGE + "." + name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(d)
        return message_factory.MessageFactory(pool).GetPrototype(d)

    return cls("MetricFamily")


MetricFamily = _types()
COUNTER, GAUGE, HISTOGRAM = 0, 1, 4


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _self_check():
    """The wire bytes are the ones metrics.proto gives, checked by hand."""
    mf = MetricFamily(name="a", type=GAUGE)
    mf.metric.add().gauge.value = 1.0
    gauge = b"\x09" + struct.pack("<d", 1.0)
    metric = b"\x12" + bytes([len(gauge)]) + gauge
    want = b"\x0a\x01a" + b"\x18\x01" + b"\x22" + bytes([len(metric)]) + metric
    got = mf.SerializeToString()
    assert got == want, f"wire bytes {got.hex()} != {want.hex()}"
    # A native histogram's schema and deltas are zigzag (sint32/sint64),
    # repeated scalars unpacked (proto2 without [packed=true]), spans nested.
    mf = MetricFamily(name="h", type=HISTOGRAM)
    h = mf.metric.add().histogram
    h.sample_count = 2
    h.schema = 3
    h.positive_span.add(offset=-1, length=2)
    h.positive_delta.extend([1, -1])
    span = b"\x08\x01\x10\x02"
    hist = b"\x08\x02" + b"\x28\x06" + b"\x62" + bytes([len(span)]) + span
    hist += b"\x68\x02\x68\x01"
    metric = b"\x3a" + bytes([len(hist)]) + hist
    want = b"\x0a\x01h" + b"\x18\x04" + b"\x22" + bytes([len(metric)]) + metric
    got = mf.SerializeToString()
    assert got == want, f"wire bytes {got.hex()} != {want.hex()}"
    assert varint(300) == b"\xac\x02"


def deltas(counts):
    """Absolute bucket counts as the deltas integer histograms carry."""
    out, prev = [], 0
    for c in counts:
        out.append(c - prev)
        prev = c
    return out


class Clock:
    """Exemplar timestamps (ms): strictly increasing over the whole run,
    since Prometheus drops an exemplar not newer than its series' last."""

    def __init__(self):
        self.last = 0

    def next(self):
        self.last = max(self.last + 1, int(time.time() * 1000))
        return self.last


def _stamp(exemplar, ms):
    exemplar.timestamp.seconds = ms // 1000
    exemplar.timestamp.nanos = (ms % 1000) * 1_000_000


def _labels(msg, pairs):
    for k, v in pairs:
        msg.label.add(name=k, value=v)


def request_seconds(mf, n, path, k, clock):
    """An integer native histogram, schema 3: every count grows with n."""
    m = mf.metric.add()
    _labels(m, [("path", path)])
    h = m.histogram
    h.schema = 3
    h.zero_threshold = 0.001
    h.zero_count = n * k
    # Buckets 0..2 and, after a gap of 2, 5..(5 + 1 + n//5 capped): a new
    # bucket shows up every 5 scrapes, as with real traffic.
    first = [n * k + i for i in range(3)]
    second = [(i + 1) * n for i in range(1 + min(n // 5, 6))]
    h.positive_span.add(offset=-2, length=len(first))
    h.positive_span.add(offset=2, length=len(second))
    h.positive_delta.extend(deltas(first + second))
    negative = [n, 2 * n + k]
    h.negative_span.add(offset=1, length=len(negative))
    h.negative_delta.extend(deltas(negative))
    h.sample_count = h.zero_count + sum(first) + sum(second) + sum(negative)
    h.sample_sum = 0.125 * n * k + 0.1 * n
    # Classic buckets: only their exemplars are read by 2.42 (the native
    # histogram stands for the counts); cumulative counts kept consistent.
    total = h.sample_count
    for i, bound in enumerate([0.01, 0.1, 1.0, 10.0]):
        b = h.bucket.add(upper_bound=bound, cumulative_count=total * (i + 1) // 4)
        if i % 2 == 1 and n > 1:
            _labels(b.exemplar, [("trace_id", f"{path[1:]}-{n}-{i}")])
            b.exemplar.value = bound * 0.5 + n * 0.001
            _stamp(b.exemplar, clock.next())


def families(n, clock):
    out = []

    mf = MetricFamily(
        name="nh_request_seconds", help="Request latency.", type=HISTOGRAM
    )
    request_seconds(mf, n, "/api", 1, clock)
    request_seconds(mf, n, "/health", 3, clock)
    out.append(mf)

    mf = MetricFamily(name="nh_payload_bytes", help="Payload sizes.", type=HISTOGRAM)
    h = mf.metric.add().histogram
    h.schema = 0
    h.zero_count = n // 3
    counts = [n, 2 * n, n + 5]
    h.positive_span.add(offset=3, length=len(counts))
    h.positive_delta.extend(deltas(counts))
    # NaN observations (one from scrape 4 on) count but fall in no bucket,
    # and make the sum NaN: Prometheus (since 2.49) and metricstream take a
    # count above the buckets' only with a NaN sum.
    nans = n // 4
    h.sample_count = h.zero_count + sum(counts) + nans
    h.sample_sum = float("nan") if nans else 1024.5 * n
    out.append(mf)

    mf = MetricFamily(name="nh_queue_ratio", help="Queue fill ratio.", type=HISTOGRAM)
    h = mf.metric.add().histogram
    h.schema = -1
    h.zero_threshold = 0.0001
    h.zero_count_float = 0.25 * n
    positive = [0.5 * n, 1.25 * n, 0.75 * n + 0.5]
    h.positive_span.add(offset=-3, length=len(positive))
    h.positive_count.extend(positive)
    h.sample_count_float = h.zero_count_float + sum(positive)
    h.sample_sum = 0.3 * n
    out.append(mf)

    mf = MetricFamily(name="nh_requests_total", help="Requests.", type=COUNTER)
    m = mf.metric.add()
    _labels(m, [("code", "200")])
    m.counter.value = 3 * n + 0.5
    _labels(m.counter.exemplar, [("trace_id", f"req-{n}")])
    m.counter.exemplar.value = 0.25 * n
    if n % 2 == 0:
        _stamp(m.counter.exemplar, clock.next())
    out.append(mf)

    mf = MetricFamily(
        name="nh_temperature_celsius", help="Temperature.", type=GAUGE
    )
    mf.metric.add().gauge.value = float("nan") if n % 4 == 0 else 20 + 0.25 * n
    out.append(mf)
    return out


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.scrapes = 0
        self.clock = Clock()

    def body(self):
        with self.lock:
            self.scrapes += 1
            out = bytearray()
            for mf in families(self.scrapes, self.clock):
                data = mf.SerializeToString()
                out += varint(len(data)) + data
            return bytes(out)


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/metrics":
            # Only the protobuf format carries native histograms: a scraper
            # that does not ask for it (Prometheus without the
            # native-histograms feature) gets a 406, so its scrape fails
            # loudly instead of parsing these bytes as text.
            accept = self.headers.get("Accept", "").replace(" ", "")
            if ACCEPTED not in accept:
                self._send(406, "text/plain", b"only " + CONTENT_TYPE.encode() + b"\n")
                return
            self._send(200, CONTENT_TYPE, STATE.body())
        elif self.path == "/scrapes":
            with STATE.lock:
                n = STATE.scrapes
            self._send(200, "application/json", json.dumps({"scrapes": n}).encode())
        else:
            self._send(404, "text/plain", b"not found\n")

    def log_message(self, *args):
        pass


def main():
    if len(sys.argv) > 2:
        sys.exit(__doc__)
    port = int(sys.argv[1]) if len(sys.argv) == 2 else 0
    _self_check()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    host, port = server.server_address[:2]
    print(json.dumps({"listen": f"{host}:{port}"}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
