//! OTLP/HTTP metrics bodies (protobuf `ExportMetricsServiceRequest`),
//! shaped like one SDK export: one resource (the client's service and
//! host), one instrumentation scope, and `samples` number data points over
//! metrics of [`POINTS_PER_METRIC`] attribute sets each, cycling through a
//! cumulative counter, a gauge and an up-down counter. Every request is
//! stamped afresh with a `time_unix_nano` that only goes up, and counters
//! only grow, as an SDK's would.

use std::io::Write as _;

use anyhow::Context as _;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Data points (attribute sets) per metric; the last metric may have fewer.
pub const POINTS_PER_METRIC: usize = 10;

const NAMES: [&str; 3] = [
    "http.server.request.count",
    "system.cpu.utilization",
    "queue.depth",
];

fn attribute(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
    }
}

/// One client's request and the state that keeps its times going up.
#[derive(Debug)]
pub struct OtlpBodies {
    request: ExportMetricsServiceRequest,
    last_ns: u64,
    rng: SmallRng,
    gzip: bool,
    encoded: Vec<u8>,
}

impl OtlpBodies {
    /// `samples` data points per request over client `client`'s own series.
    pub fn new(client: u32, samples: usize, gzip: bool) -> Self {
        let start = now_ns();
        let metrics = (0..samples.div_ceil(POINTS_PER_METRIC))
            .map(|m| {
                let points = (samples - m * POINTS_PER_METRIC).min(POINTS_PER_METRIC);
                let data_points: Vec<NumberDataPoint> = (0..points)
                    .map(|p| NumberDataPoint {
                        attributes: vec![
                            attribute("route", format!("/api/v1/items/{p}")),
                            attribute("instance", format!("i{}", m / NAMES.len())),
                        ],
                        start_time_unix_nano: start,
                        value: Some(Value::AsInt(0)),
                        ..NumberDataPoint::default()
                    })
                    .collect();
                let data = match m % NAMES.len() {
                    0 => metric::Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    }),
                    1 => metric::Data::Gauge(Gauge { data_points }),
                    _ => metric::Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: false,
                    }),
                };
                Metric {
                    name: NAMES[m % NAMES.len()].to_string(),
                    data: Some(data),
                    ..Metric::default()
                }
            })
            .collect();
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        attribute("service.name", format!("load-{client}")),
                        attribute("host.name", format!("host-{client}.example.internal")),
                        attribute("telemetry.sdk.name", "metricstream-bench".to_string()),
                    ],
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "metricstream.bench".to_string(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        ..InstrumentationScope::default()
                    }),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        Self {
            request,
            last_ns: 0,
            rng: SmallRng::from_rng(&mut rand::rng()),
            gzip,
            encoded: Vec::new(),
        }
    }

    /// Data points in every body.
    pub fn samples(&self) -> usize {
        self.points().count()
    }

    fn points(&self) -> impl Iterator<Item = &NumberDataPoint> {
        let metrics = self
            .request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics);
        metrics
            .flat_map(|s| &s.metrics)
            .flat_map(|m| match &m.data {
                Some(metric::Data::Sum(s)) => &s.data_points[..],
                Some(metric::Data::Gauge(g)) => &g.data_points[..],
                _ => &[],
            })
    }

    /// The next body, stamped at `max(now_ns, last + 1)`.
    pub fn next_body(&mut self, now_ns: u64) -> anyhow::Result<Bytes> {
        let t = now_ns.max(self.last_ns.saturating_add(1));
        self.last_ns = t;
        for scope in self
            .request
            .resource_metrics
            .iter_mut()
            .flat_map(|r| &mut r.scope_metrics)
        {
            for m in &mut scope.metrics {
                let (points, counter) = match &mut m.data {
                    Some(metric::Data::Sum(s)) => (&mut s.data_points, s.is_monotonic),
                    Some(metric::Data::Gauge(g)) => (&mut g.data_points, false),
                    _ => continue,
                };
                for p in points {
                    p.time_unix_nano = t;
                    let last = match p.value {
                        Some(Value::AsInt(v)) => v,
                        _ => 0,
                    };
                    let step = self.rng.random_range(0..1000_i64);
                    p.value = Some(Value::AsInt(if counter {
                        last.saturating_add(step)
                    } else {
                        step
                    }));
                }
            }
        }
        self.encoded.clear();
        self.request
            .encode(&mut self.encoded)
            .context("encode OTLP request")?;
        if !self.gzip {
            return Ok(Bytes::from(self.encoded.clone()));
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&self.encoded).context("gzip OTLP request")?;
        Ok(Bytes::from(e.finish().context("gzip OTLP request")?))
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn decode(body: &[u8]) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest::decode(body).expect("an ExportMetricsServiceRequest")
    }

    fn points(r: &ExportMetricsServiceRequest) -> Vec<(String, NumberDataPoint)> {
        let metrics = r.resource_metrics[0].scope_metrics[0].metrics.iter();
        metrics
            .flat_map(|m| {
                let points = match &m.data {
                    Some(metric::Data::Sum(s)) => s.data_points.clone(),
                    Some(metric::Data::Gauge(g)) => g.data_points.clone(),
                    other => panic!("{other:?}"),
                };
                points.into_iter().map(|p| (m.name.clone(), p))
            })
            .collect()
    }

    #[test]
    fn bodies_carry_the_points_asked_with_rising_times() {
        for samples in [1, 9, 10, 11, 100, 1001] {
            let mut b = OtlpBodies::new(3, samples, false);
            assert_eq!(b.samples(), samples);
            let one = decode(&b.next_body(5).unwrap());
            let two = decode(&b.next_body(5).unwrap());
            let (one, two) = (points(&one), points(&two));
            assert_eq!(one.len(), samples);
            for ((name, a), (_, b)) in one.iter().zip(&two) {
                assert_eq!((a.time_unix_nano, b.time_unix_nano), (5, 6));
                if name == NAMES[0] {
                    let (Some(Value::AsInt(x)), Some(Value::AsInt(y))) = (a.value, b.value) else {
                        panic!("{a:?}")
                    };
                    assert!(y >= x, "a counter went down");
                }
            }
        }
    }

    #[test]
    fn gzip_bodies_inflate_to_the_same_request() {
        let mut b = OtlpBodies::new(0, 20, true);
        let body = b.next_body(1).unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(points(&decode(&raw)).len(), 20);
    }
}
