"""An independent reader of metricstream's stored records, built from the
specification alone: proto/record.proto (compiled at run time with
grpcio-tools' protoc) and the byte layout its header comment gives. Shares
no code with metricstream's Rust reader.

    decode(value) -> dict

gives a record as the JSON batch of version 1 does
({"client_id", "received_at", "metrics": [{"name", "value", "type", "tags",
"timestamp", ...}]}), whatever its version, so that a test can read a Kafka
topic written in either format the same way. Values JSON cannot hold are
spelled as the version 1 JSON spells them ("NaN", "StaleNaN", "+Inf", ...).

Standalone records only (what Kafka topics hold): a record that refers to
series of earlier records (the embedded log's) is refused, as a reader that
starts there must first read its epoch (see the .proto).
"""

import importlib
import json
import os
import struct
import sys
import tempfile

import cramjam

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_pb = None

TYPES = ["unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info",
         "stateset"]
STALE_NAN = 0x7FF0000000000002
NORMAL_NAN = 0x7FF8000000000001


def _messages():
    """record_pb2, compiled from proto/record.proto once per process."""
    global _pb
    if _pb is None:
        from grpc_tools import protoc

        out = tempfile.mkdtemp(prefix="record-proto-")
        rc = protoc.main(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + out,
                          os.path.join(ROOT, "proto", "record.proto")])
        if rc != 0:
            raise RuntimeError("protoc could not compile proto/record.proto")
        sys.path.insert(0, out)
        _pb = importlib.import_module("record_pb2")
    return _pb


def _varint(b, at):
    v, shift = 0, 0
    while True:
        byte = b[at]
        at += 1
        v |= (byte & 0x7F) << shift
        if byte < 0x80:
            return v, at
        shift += 7


def _float_text(bits):
    """A float as the version 1 JSON spells it (a number where JSON can)."""
    (v,) = struct.unpack("<d", struct.pack("<Q", bits))
    if v == v and v not in (float("inf"), float("-inf")):
        return v
    if v == float("inf"):
        return "+Inf"
    if v == float("-inf"):
        return "-Inf"
    if bits == STALE_NAN:
        return "StaleNaN"
    if bits == NORMAL_NAN:
        return "NaN"
    return "NaN:0x%016x" % bits


def _value(bits, kind):
    if kind == 1:  # INT
        return struct.unpack("<q", struct.pack("<Q", bits))[0]
    if kind == 2:  # UINT
        return bits
    return _float_text(bits)


def decode(value):
    if value[:1] == b"{":
        return json.loads(value)
    if value[:1] != b"\x02":
        raise ValueError("unknown record format byte %r" % value[:1])
    pb = _messages()
    flags = value[1]
    if flags & 0x04 == 0:
        raise ValueError("a record that shares series ids with earlier ones (not standalone)")
    table_len, at = _varint(value, 2)
    table_bytes = value[at:at + table_len]
    body_bytes = value[at + table_len:]
    if flags & 0x01:
        table_bytes = bytes(cramjam.zstd.decompress(table_bytes))
    if flags & 0x02:
        body_bytes = bytes(cramjam.zstd.decompress(body_bytes))
    table = pb.SeriesTable.FromString(table_bytes)
    body = pb.Body.FromString(body_bytes)
    defs = {d.id: d for d in table.defs}
    series, last = [], 0
    for diff in table.ids:
        last += diff
        series.append(defs[last])
    infos = {i.series: i for i in body.infos}
    metrics, ts, at = [], body.received_at, 0
    for i, s in enumerate(series):
        tags = dict(zip(s.labels[0::2], s.labels[1::2]))
        kind = TYPES[body.types[i]]
        info = infos.get(i)
        value_kind = info.value_kind if info else 0
        for j in range(body.sample_counts[i]):
            ts += body.timestamps[at]
            m = {"name": s.name, "value": _value(body.values[at], value_kind), "type": kind,
                 "tags": tags, "timestamp": ts}
            at += 1
            if info and info.sub_ms_nanos and info.sub_ms_nanos[j]:
                m["timestamp_ns"] = ts * 1_000_000 + info.sub_ms_nanos[j]
            if info and info.start_timestamps and info.start_timestamps[j]:
                m["created_timestamp"] = info.start_timestamps[j]
            metrics.append(m)
        if info:
            for h in info.histograms:
                count = h.count_int if h.WhichOneof("count") == "count_int" else h.count_float
                metrics.append({"name": s.name, "value": count, "type": kind, "tags": tags,
                                "timestamp": h.timestamp,
                                "histogram": {"schema": h.schema, "sum": h.sum}})
            for e in info.exemplars:
                labels = [body.symbols[k] for k in e.labels]
                metrics.append({"name": s.name, "value": e.value, "type": kind, "tags": tags,
                                "timestamp": e.timestamp,
                                "exemplar": {"labels": dict(zip(labels[0::2], labels[1::2]))}})
    return {"client_id": body.client_id, "received_at": body.received_at, "metrics": metrics}


if __name__ == "__main__":
    # A record on stdin, its version 1 JSON form on stdout.
    print(json.dumps(decode(sys.stdin.buffer.read())))
