"""The OpenTelemetry Python SDK exporting metrics over OTLP/HTTP, unchanged.

A MeterProvider with the SDK's own OTLPMetricExporter (protobuf) records a
counter, an up-down counter, a synchronous and an observable gauge, an
explicit-bucket histogram and an exponential histogram, with attributes of
several types, then shuts down (one export). The exporter is wrapped only to
keep a copy of the very ExportMetricsServiceRequest it sends.

From that request the script works out, by itself and sharing no code with
metricstream, what metricstream should store (the mapping of its README
section "OpenTelemetry (OTLP/HTTP)"), and prints it as one JSON object:
{"export": "SUCCESS", "expected": [{"name", "type", "tags", "value",
"timestamp_ns", "created_timestamp"}, ...]}. Bucket bounds (`le`) and
quantiles are printed as numbers (how they are written out is metricstream's
business; what they are is not).

Usage: otlp_sdk.py ENDPOINT COMPRESSION SERVICE TEMPORALITY [CA_FILE [CERT_FILE KEY_FILE]]
(the files for an https ENDPOINT: the CA it trusts, a client certificate)
  ENDPOINT     e.g. http://127.0.0.1:9090/v1/metrics
  COMPRESSION  gzip or none
  SERVICE      the service.name resource attribute
  TEMPORALITY  cumulative (the SDK's default) or delta (counters, up-down
               counters and histograms exported as deltas)
"""

import json
import math
import sys

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource


class KeepingExporter(OTLPMetricExporter):
    """The SDK's exporter; keeps the request it sends and the result."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sent = []
        self.results = []

    def export(self, metrics_data, timeout_millis=10000, **kwargs):
        self.sent.append(encode_metrics(metrics_data))
        result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.results.append(result.name)
        return result


def record(endpoint, compression, service, temporality, tls=None):
    preferred = {}
    if temporality == "delta":
        delta = AggregationTemporality.DELTA
        preferred = {Counter: delta, UpDownCounter: delta, Histogram: delta}
    exporter = KeepingExporter(
        endpoint=endpoint,
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
        headers={"Authorization": "otel-sdk"},
        preferred_temporality=preferred,
        **(tls or {}),
    )
    # Exports only at shutdown (the interval is far longer than the run).
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "test"}),
        metric_readers=[reader],
        views=[
            View(instrument_name="rpc.latency", aggregation=ExponentialBucketHistogramAggregation()),
        ],
    )
    meter = provider.get_meter("metricstream.test", "1.2.3")

    requests = meter.create_counter("http.requests", unit="1")
    requests.add(3, {"route": "/a", "code": 200})
    requests.add(4, {"route": "/a", "code": 200})
    requests.add(2, {"route": "/b", "code": 503, "retried": True})

    depth = meter.create_up_down_counter("queue.depth")
    depth.add(10, {"queue": "q1"})
    depth.add(-3, {"queue": "q1"})

    temperature = meter.create_gauge("room.temperature", unit="Cel")
    temperature.set(21.5, {"room": "kitchen", "floor": 2, "sensors": ["a", "b"]})

    meter.create_observable_gauge(
        "cpu.load",
        callbacks=[lambda options: [Observation(0.25, {"cpu": "0"}), Observation(1.75, {"cpu": "1"})]],
    )

    duration = meter.create_histogram(
        "http.duration", unit="ms", explicit_bucket_boundaries_advisory=[1.0, 10.0, 100.0]
    )
    for v in [0.5, 7, 7, 120, 12000.25]:
        duration.record(v, {"route": "/a"})

    latency = meter.create_histogram("rpc.latency", unit="s")
    for v in [0.5, 1, 2, 3, 1000, -0.0]:
        latency.record(v)

    provider.shutdown()
    return exporter


def any_value(v, top=True):
    """An attribute value as metricstream writes it (README)."""
    kind = v.WhichOneof("value")
    if kind is None:
        return "" if top else None
    x = getattr(v, kind)
    if kind == "string_value":
        return x if top else x
    if kind == "bool_value":
        return ("true" if x else "false") if top else x
    if kind == "int_value":
        return str(x) if top else x
    if kind == "double_value":
        return (str(int(x)) if x.is_integer() else repr(x)) if top else x
    if kind == "array_value":
        items = [any_value(e, top=False) for e in x.values]
        return json.dumps(items, separators=(",", ":")) if top else items
    raise ValueError("unexpected attribute kind " + kind)


def tags_of(attributes):
    return {kv.key: any_value(kv.value) for kv in attributes}


def expected(request):
    out = []
    for rm in request.resource_metrics:
        resource = tags_of(rm.resource.attributes)
        for sm in rm.scope_metrics:
            scope = dict(resource)
            if sm.scope.name:
                scope["otel_scope_name"] = sm.scope.name
            if sm.scope.version:
                scope["otel_scope_version"] = sm.scope.version
            for m in sm.metrics:
                out.extend(metric(m, scope))
    return out


def metric(m, scope):
    kind = m.WhichOneof("data")
    data = getattr(m, kind)
    # 1 = delta (tagged so), 2 = cumulative; 0 is not valid OTLP.
    delta = {}
    if kind in ("sum", "histogram", "exponential_histogram"):
        assert data.aggregation_temporality in (1, 2), m
        if data.aggregation_temporality == 1:
            delta = {"otel_temporality": "delta"}
    rows = []

    def row(p, name, typ, extra, value, started=True):
        tags = dict(scope)
        tags.update(tags_of(p.attributes))
        tags.update(extra)
        tags.update(delta)
        r = {"name": name, "type": typ, "tags": tags, "value": value, "timestamp_ns": p.time_unix_nano}
        if started and p.start_time_unix_nano:
            r["created_timestamp"] = p.start_time_unix_nano // 1_000_000
        rows.append(r)

    for p in data.data_points:
        if kind in ("gauge", "sum"):
            value = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
            typ = "counter" if kind == "sum" and data.is_monotonic else "gauge"
            row(p, m.name, typ, {}, value, started=kind == "sum")
        elif kind == "histogram":
            cumulative = 0
            for bound, count in zip(p.explicit_bounds, p.bucket_counts):
                cumulative += count
                row(p, m.name + "_bucket", "histogram", {"le": bound}, cumulative)
            row(p, m.name + "_bucket", "histogram", {"le": "+Inf"}, p.count)
            row(p, m.name + "_sum", "histogram", {}, p.sum)
            row(p, m.name + "_count", "histogram", {}, p.count)
        elif kind == "exponential_histogram":
            base = 2.0 ** (2.0 ** -p.scale)
            cumulative = 0
            for k in reversed(range(len(p.negative.bucket_counts))):
                c = p.negative.bucket_counts[k]
                if c:
                    cumulative += c
                    row(p, m.name + "_bucket", "histogram", {"le": -(base ** (p.negative.offset + k))}, cumulative)
            if p.zero_count:
                cumulative += p.zero_count
                row(p, m.name + "_bucket", "histogram", {"le": p.zero_threshold}, cumulative)
            for k, c in enumerate(p.positive.bucket_counts):
                if c:
                    cumulative += c
                    row(p, m.name + "_bucket", "histogram", {"le": base ** (p.positive.offset + k + 1)}, cumulative)
            assert cumulative == p.count, p
            row(p, m.name + "_bucket", "histogram", {"le": "+Inf"}, p.count)
            row(p, m.name + "_sum", "histogram", {}, p.sum)
            row(p, m.name + "_count", "histogram", {}, p.count)
        else:
            raise ValueError("the SDK sent a " + kind)
    return rows


def main():
    endpoint, compression, service, temporality = sys.argv[1:5]
    # Optional: CA_FILE [CERT_FILE KEY_FILE] for an https endpoint.
    tls = {}
    if len(sys.argv) > 5:
        tls["certificate_file"] = sys.argv[5]
    if len(sys.argv) > 7:
        tls["client_certificate_file"], tls["client_key_file"] = sys.argv[6], sys.argv[7]
    exporter = record(endpoint, compression, service, temporality, tls)
    rows = [r for request in exporter.sent for r in expected(request)]
    for r in rows:
        assert not (isinstance(r["value"], float) and math.isnan(r["value"])), r
    print(json.dumps({"export": ",".join(exporter.results), "expected": rows}))


if __name__ == "__main__":
    main()
