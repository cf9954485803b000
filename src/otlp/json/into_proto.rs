//! The JSON mirror types moved into `opentelemetry-proto`'s generated ones.

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::metrics::v1 as metrics;
use opentelemetry_proto::tonic::resource::v1 as resource;

use super::wire::{
    AnyValue, Buckets, ExponentialPoint, HistogramPoint, KeyValue, Metric, NumberPoint, Request,
    SummaryPoint,
};

impl Request {
    pub(super) fn into_proto(self) -> Result<ExportMetricsServiceRequest, String> {
        let mut resource_metrics = Vec::with_capacity(self.resource_metrics.len());
        for (r, rm) in self.resource_metrics.into_iter().enumerate() {
            let mut scope_metrics = Vec::with_capacity(rm.scope_metrics.len());
            for (s, sm) in rm.scope_metrics.into_iter().enumerate() {
                let mut out = Vec::with_capacity(sm.metrics.len());
                for (m, metric) in sm.metrics.into_iter().enumerate() {
                    out.push(metric.into_proto().map_err(|e| {
                        format!(
                            "invalid OTLP JSON body at resourceMetrics[{r}].scopeMetrics[{s}].\
                             metrics[{m}]: {e}"
                        )
                    })?);
                }
                let scope = match sm.scope {
                    Some(scope) => Some(common::InstrumentationScope {
                        name: scope.name,
                        version: scope.version,
                        attributes: key_values(scope.attributes).map_err(|e| {
                            format!(
                                "invalid OTLP JSON body at resourceMetrics[{r}].scopeMetrics[{s}]\
                                 .scope: {e}"
                            )
                        })?,
                        dropped_attributes_count: scope.dropped_attributes_count,
                    }),
                    None => None,
                };
                scope_metrics.push(metrics::ScopeMetrics {
                    scope,
                    metrics: out,
                    schema_url: sm.schema_url,
                });
            }
            let resource = match rm.resource {
                Some(res) => Some(resource::Resource {
                    attributes: key_values(res.attributes).map_err(|e| {
                        format!("invalid OTLP JSON body at resourceMetrics[{r}].resource: {e}")
                    })?,
                    dropped_attributes_count: res.dropped_attributes_count,
                    entity_refs: Vec::new(),
                }),
                None => None,
            };
            resource_metrics.push(metrics::ResourceMetrics {
                resource,
                scope_metrics,
                schema_url: rm.schema_url,
            });
        }
        Ok(ExportMetricsServiceRequest { resource_metrics })
    }
}

fn key_values(list: Vec<KeyValue>) -> Result<Vec<common::KeyValue>, String> {
    list.into_iter()
        .map(|kv| {
            let value = match kv.value {
                Some(v) => Some(any_value(v).map_err(|e| format!("attribute {:?}: {e}", kv.key))?),
                None => None,
            };
            Ok(common::KeyValue { key: kv.key, value })
        })
        .collect()
}

fn any_value(v: AnyValue) -> Result<common::AnyValue, String> {
    use common::any_value::Value;
    let mut set: Vec<Value> = Vec::with_capacity(1);
    if let Some(s) = v.string_value {
        set.push(Value::StringValue(s));
    }
    if let Some(b) = v.bool_value {
        set.push(Value::BoolValue(b));
    }
    if let Some(i) = v.int_value {
        set.push(Value::IntValue(i));
    }
    if let Some(d) = v.double_value {
        set.push(Value::DoubleValue(d));
    }
    if let Some(a) = v.array_value {
        let values = a
            .values
            .into_iter()
            .map(any_value)
            .collect::<Result<_, _>>()?;
        set.push(Value::ArrayValue(common::ArrayValue { values }));
    }
    if let Some(kv) = v.kvlist_value {
        set.push(Value::KvlistValue(common::KeyValueList {
            values: key_values(kv.values)?,
        }));
    }
    if let Some(b) = v.bytes_value {
        set.push(Value::BytesValue(base64(&b)?));
    }
    if set.len() > 1 {
        return Err("an AnyValue with more than one value".into());
    }
    Ok(common::AnyValue { value: set.pop() })
}

fn base64(text: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|e| format!("bytesValue is not base64: {e}"))
}

impl Metric {
    pub(super) fn into_proto(self) -> Result<metrics::Metric, String> {
        use metrics::metric::Data;
        let mut data: Vec<Data> = Vec::with_capacity(1);
        if let Some(g) = self.gauge {
            data.push(Data::Gauge(metrics::Gauge {
                data_points: g
                    .data_points
                    .into_iter()
                    .map(NumberPoint::into_proto)
                    .collect::<Result<_, _>>()?,
            }));
        }
        if let Some(s) = self.sum {
            data.push(Data::Sum(metrics::Sum {
                data_points: s
                    .data_points
                    .into_iter()
                    .map(NumberPoint::into_proto)
                    .collect::<Result<_, _>>()?,
                aggregation_temporality: s.aggregation_temporality,
                is_monotonic: s.is_monotonic,
            }));
        }
        if let Some(h) = self.histogram {
            data.push(Data::Histogram(metrics::Histogram {
                data_points: h
                    .data_points
                    .into_iter()
                    .map(HistogramPoint::into_proto)
                    .collect::<Result<_, _>>()?,
                aggregation_temporality: h.aggregation_temporality,
            }));
        }
        if let Some(h) = self.exponential_histogram {
            data.push(Data::ExponentialHistogram(metrics::ExponentialHistogram {
                data_points: h
                    .data_points
                    .into_iter()
                    .map(ExponentialPoint::into_proto)
                    .collect::<Result<_, _>>()?,
                aggregation_temporality: h.aggregation_temporality,
            }));
        }
        if let Some(s) = self.summary {
            data.push(Data::Summary(metrics::Summary {
                data_points: s
                    .data_points
                    .into_iter()
                    .map(SummaryPoint::into_proto)
                    .collect::<Result<_, _>>()?,
            }));
        }
        if data.len() > 1 {
            return Err(
                "more than one of gauge, sum, histogram, exponentialHistogram, summary".into(),
            );
        }
        Ok(metrics::Metric {
            name: self.name,
            description: self.description,
            unit: self.unit,
            metadata: key_values(self.metadata)?,
            data: data.pop(),
        })
    }
}

impl NumberPoint {
    pub(super) fn into_proto(self) -> Result<metrics::NumberDataPoint, String> {
        use metrics::number_data_point::Value;
        let value = match (self.as_double, self.as_int) {
            (Some(_), Some(_)) => return Err("a data point with both asDouble and asInt".into()),
            (Some(d), None) => Some(Value::AsDouble(d)),
            (None, Some(i)) => Some(Value::AsInt(i)),
            (None, None) => None,
        };
        Ok(metrics::NumberDataPoint {
            attributes: key_values(self.attributes)?,
            start_time_unix_nano: self.start_time_unix_nano,
            time_unix_nano: self.time_unix_nano,
            exemplars: Vec::new(),
            flags: self.flags,
            value,
        })
    }
}

impl HistogramPoint {
    pub(super) fn into_proto(self) -> Result<metrics::HistogramDataPoint, String> {
        Ok(metrics::HistogramDataPoint {
            attributes: key_values(self.attributes)?,
            start_time_unix_nano: self.start_time_unix_nano,
            time_unix_nano: self.time_unix_nano,
            count: self.count,
            sum: self.sum,
            bucket_counts: self.bucket_counts,
            explicit_bounds: self.explicit_bounds,
            exemplars: Vec::new(),
            flags: self.flags,
            min: self.min,
            max: self.max,
        })
    }
}

impl ExponentialPoint {
    pub(super) fn into_proto(self) -> Result<metrics::ExponentialHistogramDataPoint, String> {
        let buckets = |b: Option<Buckets>| {
            b.map(|b| metrics::exponential_histogram_data_point::Buckets {
                offset: b.offset,
                bucket_counts: b.bucket_counts,
            })
        };
        Ok(metrics::ExponentialHistogramDataPoint {
            attributes: key_values(self.attributes)?,
            start_time_unix_nano: self.start_time_unix_nano,
            time_unix_nano: self.time_unix_nano,
            count: self.count,
            sum: self.sum,
            scale: self.scale,
            zero_count: self.zero_count,
            positive: buckets(self.positive),
            negative: buckets(self.negative),
            flags: self.flags,
            exemplars: Vec::new(),
            min: self.min,
            max: self.max,
            zero_threshold: self.zero_threshold,
        })
    }
}

impl SummaryPoint {
    pub(super) fn into_proto(self) -> Result<metrics::SummaryDataPoint, String> {
        Ok(metrics::SummaryDataPoint {
            attributes: key_values(self.attributes)?,
            start_time_unix_nano: self.start_time_unix_nano,
            time_unix_nano: self.time_unix_nano,
            count: self.count,
            sum: self.sum,
            quantile_values: self
                .quantile_values
                .into_iter()
                .map(|q| metrics::summary_data_point::ValueAtQuantile {
                    quantile: q.quantile,
                    value: q.value,
                })
                .collect(),
            flags: self.flags,
        })
    }
}
