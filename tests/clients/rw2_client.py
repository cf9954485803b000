"""An independent Prometheus remote_write 2.0 client, made by hand.

Builds `io.prometheus.write.v2.Request` bodies without protoc or generated
code: the messages are described at run time with a FileDescriptorProto
(field numbers as in Prometheus' prompb/io/prometheus/write/v2/types.proto,
native histograms and exemplars included; `_self_check` compares the wire
bytes with ones worked out by hand from that file),
snappy-compressed in the block format with cramjam, and POSTed with
http.client. Shares no code with metricstream's Rust decoder.

Usage: rw2_client.py URL NOW_MS
  URL     the receiver, e.g. http://127.0.0.1:9090/api/v1/write
  NOW_MS  the base timestamp (ms); samples are stamped relative to it

Prints one JSON line per case: case, status, the three
X-Prometheus-Remote-Write-*-Written headers (strings, or null when absent)
and the error of a JSON error body (or null).
"""

import http.client
import json
import math
import struct
import sys
import urllib.parse

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "io.prometheus.write.v2"
V1_TYPE = "application/x-protobuf"
V2_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"

F = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED


def _message(file, name, fields, oneofs=()):
    """fields: (name, number, label, type, type name or None[, oneof name])."""
    m = file.message_type.add(name=name)
    for oneof in oneofs:
        m.oneof_decl.add(name=oneof)
    for field_name, number, label, kind, type_name, *oneof in fields:
        f = m.field.add(name=field_name, number=number, label=label, type=kind)
        if type_name:
            f.type_name = type_name
        if oneof:
            f.oneof_index = list(oneofs).index(oneof[0])
    return m


def _types():
    """The 2.0 messages, described at run time."""
    file = descriptor_pb2.FileDescriptorProto(
        name="rw2_client/io_prometheus_write_v2.proto",
        package=PACKAGE,
        syntax="proto3",
    )
    ref = lambda n: "." + PACKAGE + "." + n  # noqa: E731
    _message(
        file,
        "Request",
        [
            ("symbols", 4, REPEATED, F.TYPE_STRING, None),
            ("timeseries", 5, REPEATED, F.TYPE_MESSAGE, ref("TimeSeries")),
        ],
    )
    _message(
        file,
        "TimeSeries",
        [
            ("labels_refs", 1, REPEATED, F.TYPE_UINT32, None),
            ("samples", 2, REPEATED, F.TYPE_MESSAGE, ref("Sample")),
            ("histograms", 3, REPEATED, F.TYPE_MESSAGE, ref("Histogram")),
            ("exemplars", 4, REPEATED, F.TYPE_MESSAGE, ref("Exemplar")),
            ("metadata", 5, OPTIONAL, F.TYPE_MESSAGE, ref("Metadata")),
        ],
    )
    _message(
        file,
        "Sample",
        [
            ("value", 1, OPTIONAL, F.TYPE_DOUBLE, None),
            ("timestamp", 2, OPTIONAL, F.TYPE_INT64, None),
            ("start_timestamp", 3, OPTIONAL, F.TYPE_INT64, None),
        ],
    )
    metadata = _message(
        file,
        "Metadata",
        [
            ("type", 1, OPTIONAL, F.TYPE_ENUM, ref("Metadata.MetricType")),
            ("help_ref", 3, OPTIONAL, F.TYPE_UINT32, None),
            ("unit_ref", 4, OPTIONAL, F.TYPE_UINT32, None),
        ],
    )
    enum = metadata.enum_type.add(name="MetricType")
    for number, name in enumerate(
        [
            "UNSPECIFIED",
            "COUNTER",
            "GAUGE",
            "HISTOGRAM",
            "GAUGEHISTOGRAM",
            "SUMMARY",
            "INFO",
            "STATESET",
        ]
    ):
        enum.value.add(name="METRIC_TYPE_" + name, number=number)
    histogram = _message(
        file,
        "Histogram",
        [
            ("count_int", 1, OPTIONAL, F.TYPE_UINT64, None, "count"),
            ("count_float", 2, OPTIONAL, F.TYPE_DOUBLE, None, "count"),
            ("sum", 3, OPTIONAL, F.TYPE_DOUBLE, None),
            ("schema", 4, OPTIONAL, F.TYPE_SINT32, None),
            ("zero_threshold", 5, OPTIONAL, F.TYPE_DOUBLE, None),
            ("zero_count_int", 6, OPTIONAL, F.TYPE_UINT64, None, "zero_count"),
            ("zero_count_float", 7, OPTIONAL, F.TYPE_DOUBLE, None, "zero_count"),
            ("negative_spans", 8, REPEATED, F.TYPE_MESSAGE, ref("BucketSpan")),
            ("negative_deltas", 9, REPEATED, F.TYPE_SINT64, None),
            ("negative_counts", 10, REPEATED, F.TYPE_DOUBLE, None),
            ("positive_spans", 11, REPEATED, F.TYPE_MESSAGE, ref("BucketSpan")),
            ("positive_deltas", 12, REPEATED, F.TYPE_SINT64, None),
            ("positive_counts", 13, REPEATED, F.TYPE_DOUBLE, None),
            ("reset_hint", 14, OPTIONAL, F.TYPE_ENUM, ref("Histogram.ResetHint")),
            ("timestamp", 15, OPTIONAL, F.TYPE_INT64, None),
            ("custom_values", 16, REPEATED, F.TYPE_DOUBLE, None),
            ("start_timestamp", 17, OPTIONAL, F.TYPE_INT64, None),
        ],
        oneofs=("count", "zero_count"),
    )
    enum = histogram.enum_type.add(name="ResetHint")
    for number, name in enumerate(["UNSPECIFIED", "YES", "NO", "GAUGE"]):
        enum.value.add(name="RESET_HINT_" + name, number=number)
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
            ("labels_refs", 1, REPEATED, F.TYPE_UINT32, None),
            ("value", 2, OPTIONAL, F.TYPE_DOUBLE, None),
            ("timestamp", 3, OPTIONAL, F.TYPE_INT64, None),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file.SerializeToString())

    def cls(name):
        d = pool.FindMessageTypeByName(PACKAGE + "." + name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(d)
        return message_factory.MessageFactory(pool).GetPrototype(d)

    names = ["Request", "TimeSeries", "Sample", "Metadata", "Histogram"]
    return {n: cls(n) for n in names}


T = _types()
Request, Metadata, Histogram = T["Request"], T["Metadata"], T["Histogram"]
COUNTER = Metadata.METRIC_TYPE_COUNTER
GAUGE = Metadata.METRIC_TYPE_GAUGE
HISTOGRAM = Metadata.METRIC_TYPE_HISTOGRAM
GAUGEHISTOGRAM = Metadata.METRIC_TYPE_GAUGEHISTOGRAM


def _self_check():
    """The wire bytes are the ones types.proto gives, checked by hand."""
    req = Request(symbols=["", "a"])
    ts = req.timeseries.add(labels_refs=[1, 1])
    ts.samples.add(value=1.0, timestamp=2, start_timestamp=3)
    ts.metadata.type = COUNTER
    ts.metadata.help_ref = 1
    ts.metadata.unit_ref = 1
    sample = b"\x09" + struct.pack("<d", 1.0) + b"\x10\x02\x18\x03"
    meta = b"\x08\x01\x18\x01\x20\x01"
    series = b"\x0a\x02\x01\x01" + b"\x12" + bytes([len(sample)]) + sample
    series += b"\x2a" + bytes([len(meta)]) + meta
    want = b"\x22\x00\x22\x01a" + b"\x2a" + bytes([len(series)]) + series
    got = req.SerializeToString()
    assert got == want, f"wire bytes {got.hex()} != {want.hex()}"
    # Histogram (field 3) and exemplar (field 4) of a series.
    ts = Request().timeseries.add()
    ts.histograms.add(count_int=1, timestamp=5)
    ts.exemplars.add(value=2.0)
    exemplar = b"\x11" + struct.pack("<d", 2.0)
    want = b"\x1a\x04\x08\x01\x78\x05" + b"\x22" + bytes([len(exemplar)]) + exemplar
    got = ts.SerializeToString()
    assert got == want, f"wire bytes {got.hex()} != {want.hex()}"
    # Every other histogram field by its number and wire type: a float
    # count (2, double), schema -53 (4, sint32 zigzag 105), a span (11) of
    # length 1 (offset 0 is the default: not written), a delta -1 (12,
    # packed sint64, zigzag 1), reset hint NO (14), a custom bound (16,
    # packed double) and the start timestamp (17).
    h = Histogram(
        count_float=2.5,
        schema=-53,
        positive_deltas=[-1],
        reset_hint=Histogram.RESET_HINT_NO,
        custom_values=[0.5],
        start_timestamp=5,
    )
    h.positive_spans.add(offset=0, length=1)
    want = (
        b"\x11" + struct.pack("<d", 2.5)
        + b"\x20\x69"
        + b"\x5a\x02\x10\x01"
        + b"\x62\x01\x01"
        + b"\x70\x02"
        + b"\x82\x01\x08" + struct.pack("<d", 0.5)
        + b"\x88\x01\x05"
    )
    got = h.SerializeToString()
    assert got == want, f"wire bytes {got.hex()} != {want.hex()}"
    # The other oneof members: an integer zero count (6) and a float one (7).
    got = Histogram(zero_count_int=3).SerializeToString()
    assert got == b"\x30\x03", got.hex()
    got = Histogram(zero_count_float=0.5).SerializeToString()
    assert got == b"\x39" + struct.pack("<d", 0.5), got.hex()
    h = Histogram(zero_threshold=0.25, negative_deltas=[2], negative_counts=[1.0])
    h.negative_spans.add(offset=-2, length=1)
    want = (
        b"\x29" + struct.pack("<d", 0.25)
        + b"\x42\x04\x08\x03\x10\x01"
        + b"\x4a\x01\x04"
        + b"\x52\x08" + struct.pack("<d", 1.0)
    )
    got = h.SerializeToString()
    assert got == want, f"wire bytes {got.hex()} != {want.hex()}"
    h = Histogram(positive_counts=[2.0])
    assert h.SerializeToString() == b"\x6a\x08" + struct.pack("<d", 2.0)


def from_bits(bits):
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


# Prometheus' staleness marker (value.StaleNaN) and the NaN it writes for a
# scraped "NaN" (value.NormalNaN); Python's own NaN has other bits.
STALE_NAN = from_bits(0x7FF0000000000002)
NORMAL_NAN = from_bits(0x7FF8000000000001)


class Builder:
    """A Request with a de-duplicated symbol table starting with ""."""

    def __init__(self, first=""):
        self.req = Request()
        self.index = {}
        self.sym(first)

    def sym(self, s):
        if s not in self.index:
            self.index[s] = len(self.req.symbols)
            self.req.symbols.append(s)
        return self.index[s]

    def series(self, labels, samples=(), kind=None, help="", unit="", refs=None):
        """labels: (name, value) pairs, sent in the order given; samples:
        (value, timestamp[, start_timestamp]); refs overrides labels_refs."""
        ts = self.req.timeseries.add()
        if refs is None:
            refs = [r for pair in labels for r in map(self.sym, pair)]
        ts.labels_refs.extend(refs)
        for s in samples:
            smp = ts.samples.add(value=s[0], timestamp=s[1])
            if len(s) > 2:
                smp.start_timestamp = s[2]
        if kind is not None:
            ts.metadata.type = kind
            ts.metadata.help_ref = self.sym(help)
            ts.metadata.unit_ref = self.sym(unit)
        return ts

    def body(self):
        return cramjam.snappy.compress_raw(self.req.SerializeToString()).read()


def post(url, body, content_type=V2_TYPE, encoding="snappy"):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {
        "Content-Type": content_type,
        "Content-Encoding": encoding,
        "X-Prometheus-Remote-Write-Version": "2.0.0",
        "User-Agent": "rw2_client.py",
    }
    try:
        conn.request("POST", u.path or "/", body=body, headers=headers)
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        error = None
        if text:
            try:
                error = json.loads(text).get("error")
            except ValueError:
                error = "not JSON: " + text[:200]
        return {
            "status": r.status,
            "samples_written": r.getheader("X-Prometheus-Remote-Write-Samples-Written"),
            "histograms_written": r.getheader(
                "X-Prometheus-Remote-Write-Histograms-Written"
            ),
            "exemplars_written": r.getheader(
                "X-Prometheus-Remote-Write-Exemplars-Written"
            ),
            "error": error,
        }
    finally:
        conn.close()


def cases(t):
    """(name, body, content type, encoding) of every case, in order."""
    out = []

    # A normal request: a counter with metadata and start timestamps, gauges
    # with awkward finite values, Prometheus' NaN, another NaN payload, ±Inf
    # and the staleness marker.
    b = Builder()
    b.series(
        [("__name__", "jobs_done_total"), ("case", "normal"), ("job", "batch")],
        [(1.0, t - 2000, t - 60000), (2.5, t - 1000, t - 60000)],
        kind=COUNTER,
        help="Jobs done.",
    )
    b.series(
        [
            ("__name__", "temp_celsius"),
            ("case", "normal"),
            ("instance", "a:9100"),
            ("job", "batch"),
        ],
        [
            (-3.5, t - 5),
            (0.1 + 0.2, t - 4),
            (-0.0, t - 3),
            (5e-324, t - 2),
            (1.7976931348623157e308, t - 1),
        ],
        kind=GAUGE,
        help="Temperature.",
        unit="celsius",
    )
    b.series(
        [("__name__", "up"), ("case", "normal"), ("job", "batch")],
        [
            (NORMAL_NAN, t - 5),
            (math.nan, t - 4),
            (math.inf, t - 3),
            (-math.inf, t - 2),
            (STALE_NAN, t - 1),
        ],
        kind=GAUGE,
    )
    out.append(("normal", b.body(), V2_TYPE, "snappy"))

    # symbols[0] is not "": the whole request is refused.
    b = Builder(first="oops")
    b.series(
        [("__name__", "sym0_metric"), ("case", "symbols0")], [(1.0, t)], kind=GAUGE
    )
    out.append(("symbols0_not_empty", b.body(), V2_TYPE, "snappy"))

    # A label ref past the symbol table: that series only is refused.
    b = Builder()
    b.series([("__name__", "ref_ok"), ("case", "ref_past")], [(1.0, t)], kind=GAUGE)
    past = len(b.req.symbols) + 1000
    b.series(
        [],
        [(2.0, t), (3.0, t + 1)],
        kind=GAUGE,
        refs=[b.sym("__name__"), b.sym("ref_bad"), b.sym("case"), past],
    )
    b.series(
        [("__name__", "ref_ok2"), ("case", "ref_past")], [(4.0, t)], kind=GAUGE
    )
    out.append(("ref_past_table", b.body(), V2_TYPE, "snappy"))

    # An odd number of refs: that series only is refused.
    b = Builder()
    b.series([("__name__", "odd_ok"), ("case", "odd")], [(5.0, t)], kind=GAUGE)
    b.series(
        [],
        [(6.0, t)],
        kind=GAUGE,
        refs=[b.sym("__name__"), b.sym("odd_bad"), b.sym("case")],
    )
    out.append(("odd_refs", b.body(), V2_TYPE, "snappy"))

    # Heavy reuse: one symbol as metric name, label name and several values;
    # the same label set twice (two TimeSeries, as the spec allows).
    b = Builder()
    labels = [
        ("__name__", "reuse"),
        ("a", "reuse"),
        ("b", "reuse"),
        ("case", "reuse"),
        ("reuse", "reuse"),
        ("x", "a"),
        ("y", "b"),
        ("z", "x"),
    ]
    b.series(labels, [(7.0, t - 2), (8.0, t - 1)], kind=COUNTER)
    b.series(labels, [(9.0, t)], kind=COUNTER)
    b.series([("__name__", "reuse"), ("case", "reuse")], [(10.0, t)], kind=COUNTER)
    out.append(("heavy_reuse", b.body(), V2_TYPE, "snappy"))

    # Unicode label values (and a UTF-8 metric name, as Prometheus 3 allows).
    b = Builder()
    b.series(
        [
            ("__name__", "unicode_values"),
            ("case", "unicode"),
            ("city", "Zürich"),
            ("emoji", "🦀 ferris"),
            ("jp", "日本語"),
            ("mixed", "e\u0301 \u00e9 \u2028 ☕"),
        ],
        [(11.0, t)],
        kind=GAUGE,
    )
    b.series(
        [("__name__", "smörgåsbord.total_°C"), ("case", "unicode")],
        [(12.0, t)],
        kind=GAUGE,
    )
    out.append(("unicode", b.body(), V2_TYPE, "snappy"))

    # UTF-8 names as Prometheus 3 and OpenTelemetry send them: a dotted
    # metric name, dotted and non-ASCII label names, Prometheus 3's
    # reserved __type__ label; and a metric name that is only "__". Labels
    # sorted as the spec says (by name; Python compares code points, the
    # order of UTF-8 bytes).
    b = Builder()
    b.series(
        sorted(
            [
                ("__name__", "http.server.request.duration"),
                ("__type__", "gauge"),
                ("case", "utf8"),
                ("service.name", "checkout"),
                ("région", "Zürich"),
                ("🦀", "ferris"),
            ]
        ),
        [(17.0, t)],
        kind=GAUGE,
        help="Request duration.",
        unit="s",
    )
    b.series([("__name__", "__"), ("case", "utf8")], [(18.0, t)], kind=GAUGE)
    out.append(("utf8_names", b.body(), V2_TYPE, "snappy"))

    # Native histograms: integer and float counts, exponential and custom
    # buckets, start timestamps and reset hints; exemplars beside them.
    b = Builder()
    ts = b.series(
        [("__name__", "rpc.duration"), ("case", "histogram")],
        kind=HISTOGRAM,
        help="RPC latency.",
        unit="seconds",
    )
    h = ts.histograms.add(
        count_int=7,
        sum=12.5,
        schema=3,
        zero_threshold=1e-128,
        zero_count_int=1,
        negative_deltas=[2],
        positive_deltas=[1, 1, -1],
        reset_hint=Histogram.RESET_HINT_NO,
        timestamp=t - 1000,
        start_timestamp=t - 60000,
    )
    h.negative_spans.add(offset=-2, length=1)
    h.positive_spans.add(offset=-1, length=2)
    h.positive_spans.add(offset=3, length=1)
    h = ts.histograms.add(
        count_int=6,
        sum=10.0,
        schema=-53,
        positive_deltas=[1, 2, -1],
        custom_values=[0.1, 0.5, 1.0],
        reset_hint=Histogram.RESET_HINT_YES,
        timestamp=t,
    )
    h.positive_spans.add(offset=0, length=2)
    h.positive_spans.add(offset=1, length=1)
    ts.exemplars.add(
        labels_refs=[b.sym("span_id"), b.sym("def"), b.sym("trace_id"), b.sym("abc")],
        value=0.042,
        timestamp=t - 1000,
    )
    ts.exemplars.add(
        labels_refs=[b.sym("trace_id"), b.sym("xyz")], value=0.2, timestamp=t
    )
    ts = b.series(
        [("__name__", "queue.wait"), ("case", "histogram"), ("région", "Zürich")],
        kind=GAUGEHISTOGRAM,
    )
    h = ts.histograms.add(
        count_float=6.5,
        sum=-3.25,
        schema=-4,
        zero_threshold=0.001,
        zero_count_float=0.5,
        negative_counts=[1.0, 2.0],
        positive_counts=[3.0],
        reset_hint=Histogram.RESET_HINT_GAUGE,
        timestamp=t - 1,
    )
    h.negative_spans.add(offset=0, length=2)
    h.positive_spans.add(offset=1, length=1)
    # Prometheus' staleness marker for a histogram: the sum is StaleNaN.
    h = ts.histograms.add(
        count_float=2.5,
        sum=STALE_NAN,
        schema=-53,
        zero_count_float=0.0,
        positive_counts=[1.5, 1.0],
        custom_values=[-1.0, 0.0, 2.5],
        timestamp=t,
    )
    h.positive_spans.add(offset=1, length=2)
    ts.exemplars.add(labels_refs=[b.sym("trace_id"), b.sym("ünï")], value=1.25, timestamp=t)
    out.append(("native_histograms", b.body(), V2_TYPE, "snappy"))

    # A histogram or exemplar that breaks a rule is refused alone, counted;
    # the float sample beside them is stored. A series all of whose points
    # are refused counts as a refused series.
    b = Builder()
    ts = b.series(
        [("__name__", "hist_mixed"), ("case", "histogram")], [(13.0, t)], kind=GAUGE
    )
    ts.histograms.add(count_int=0, schema=9, timestamp=t)
    ts.exemplars.add(labels_refs=[b.sym("trace_id")], value=1.5, timestamp=t)
    ts = b.series(
        [("__name__", "hist_only"), ("case", "histogram")], kind=COUNTER
    )
    h = ts.histograms.add(
        count_int=1, schema=-53, custom_values=[1.0, 1.0], positive_deltas=[1], timestamp=t
    )
    h.positive_spans.add(offset=0, length=1)
    out.append(("histogram_refused", b.body(), V2_TYPE, "snappy"))

    # The 2.0 body with the 1.0 content type.
    b = Builder()
    b.series([("__name__", "as_v1"), ("case", "v2_as_v1")], [(14.0, t)])
    out.append(("v2_body_as_v1", b.body(), V1_TYPE, "snappy"))

    # A wrong Content-Encoding; a wrong proto= parameter.
    b = Builder()
    b.series([("__name__", "gzip"), ("case", "encoding")], [(15.0, t)])
    out.append(("wrong_encoding", b.body(), V2_TYPE, "gzip"))
    b = Builder()
    b.series([("__name__", "proto"), ("case", "proto")], [(16.0, t)])
    wrong_proto = "application/x-protobuf;proto=io.prometheus.write.v2.Requests"
    out.append(("wrong_proto", b.body(), wrong_proto, "snappy"))
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    url, t = sys.argv[1], int(sys.argv[2])
    _self_check()
    for name, body, content_type, encoding in cases(t):
        answer = post(url, body, content_type, encoding)
        print(json.dumps({"case": name, **answer}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
