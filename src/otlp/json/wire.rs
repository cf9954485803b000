//! The OTLP metrics messages as JSON spells them (lowerCamelCase, every
//! field optional). Exemplars are not read: they are not stored.

use serde::Deserialize;

use super::fields::{
    boolean, f64s, float, int, list, opt_float, opt_int, string, temporality, u64s,
};

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Request {
    #[serde(deserialize_with = "list")]
    pub(super) resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct ResourceMetrics {
    pub(super) resource: Option<Resource>,
    #[serde(deserialize_with = "list")]
    pub(super) scope_metrics: Vec<ScopeMetrics>,
    #[serde(deserialize_with = "string")]
    pub(super) schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Resource {
    #[serde(deserialize_with = "list")]
    pub(super) attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    pub(super) dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct ScopeMetrics {
    pub(super) scope: Option<Scope>,
    #[serde(deserialize_with = "list")]
    pub(super) metrics: Vec<Metric>,
    #[serde(deserialize_with = "string")]
    pub(super) schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Scope {
    #[serde(deserialize_with = "string")]
    pub(super) name: String,
    #[serde(deserialize_with = "string")]
    pub(super) version: String,
    #[serde(deserialize_with = "list")]
    pub(super) attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    pub(super) dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct KeyValue {
    #[serde(deserialize_with = "string")]
    pub(super) key: String,
    pub(super) value: Option<AnyValue>,
}

/// One of its fields, as a protobuf oneof; `bytesValue` in base64.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct AnyValue {
    pub(super) string_value: Option<String>,
    pub(super) bool_value: Option<bool>,
    #[serde(deserialize_with = "opt_int")]
    pub(super) int_value: Option<i64>,
    #[serde(deserialize_with = "opt_float")]
    pub(super) double_value: Option<f64>,
    pub(super) array_value: Option<ArrayValue>,
    pub(super) kvlist_value: Option<KvList>,
    pub(super) bytes_value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ArrayValue {
    #[serde(deserialize_with = "list")]
    pub(super) values: Vec<AnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct KvList {
    #[serde(deserialize_with = "list")]
    pub(super) values: Vec<KeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Metric {
    #[serde(deserialize_with = "string")]
    pub(super) name: String,
    #[serde(deserialize_with = "string")]
    pub(super) description: String,
    #[serde(deserialize_with = "string")]
    pub(super) unit: String,
    #[serde(deserialize_with = "list")]
    pub(super) metadata: Vec<KeyValue>,
    pub(super) gauge: Option<Points<NumberPoint>>,
    pub(super) sum: Option<Points<NumberPoint>>,
    pub(super) histogram: Option<Points<HistogramPoint>>,
    pub(super) exponential_histogram: Option<Points<ExponentialPoint>>,
    pub(super) summary: Option<Points<SummaryPoint>>,
}

/// Gauge, Sum, Histogram, ExponentialHistogram and Summary alike: points,
/// and for some a temporality and monotonicity.
#[derive(Deserialize)]
#[serde(default, rename_all = "camelCase", bound = "P: Deserialize<'de>")]
pub(super) struct Points<P> {
    #[serde(deserialize_with = "list")]
    pub(super) data_points: Vec<P>,
    #[serde(deserialize_with = "temporality")]
    pub(super) aggregation_temporality: i32,
    #[serde(deserialize_with = "boolean")]
    pub(super) is_monotonic: bool,
}

impl<P> Default for Points<P> {
    fn default() -> Self {
        Points {
            data_points: Vec::new(),
            aggregation_temporality: 0,
            is_monotonic: false,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct NumberPoint {
    #[serde(deserialize_with = "list")]
    pub(super) attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    pub(super) start_time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    pub(super) time_unix_nano: u64,
    #[serde(deserialize_with = "opt_float")]
    pub(super) as_double: Option<f64>,
    #[serde(deserialize_with = "opt_int")]
    pub(super) as_int: Option<i64>,
    #[serde(deserialize_with = "int")]
    pub(super) flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct HistogramPoint {
    #[serde(deserialize_with = "list")]
    pub(super) attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    pub(super) start_time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    pub(super) time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    pub(super) count: u64,
    #[serde(deserialize_with = "opt_float")]
    pub(super) sum: Option<f64>,
    #[serde(deserialize_with = "u64s")]
    pub(super) bucket_counts: Vec<u64>,
    #[serde(deserialize_with = "f64s")]
    pub(super) explicit_bounds: Vec<f64>,
    #[serde(deserialize_with = "int")]
    pub(super) flags: u32,
    #[serde(deserialize_with = "opt_float")]
    pub(super) min: Option<f64>,
    #[serde(deserialize_with = "opt_float")]
    pub(super) max: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct ExponentialPoint {
    #[serde(deserialize_with = "list")]
    pub(super) attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    pub(super) start_time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    pub(super) time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    pub(super) count: u64,
    #[serde(deserialize_with = "opt_float")]
    pub(super) sum: Option<f64>,
    #[serde(deserialize_with = "int")]
    pub(super) scale: i32,
    #[serde(deserialize_with = "int")]
    pub(super) zero_count: u64,
    pub(super) positive: Option<Buckets>,
    pub(super) negative: Option<Buckets>,
    #[serde(deserialize_with = "int")]
    pub(super) flags: u32,
    #[serde(deserialize_with = "opt_float")]
    pub(super) min: Option<f64>,
    #[serde(deserialize_with = "opt_float")]
    pub(super) max: Option<f64>,
    #[serde(deserialize_with = "float")]
    pub(super) zero_threshold: f64,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Buckets {
    #[serde(deserialize_with = "int")]
    pub(super) offset: i32,
    #[serde(deserialize_with = "u64s")]
    pub(super) bucket_counts: Vec<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct SummaryPoint {
    #[serde(deserialize_with = "list")]
    pub(super) attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    pub(super) start_time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    pub(super) time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    pub(super) count: u64,
    #[serde(deserialize_with = "float")]
    pub(super) sum: f64,
    #[serde(deserialize_with = "list")]
    pub(super) quantile_values: Vec<Quantile>,
    #[serde(deserialize_with = "int")]
    pub(super) flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Quantile {
    #[serde(deserialize_with = "float")]
    pub(super) quantile: f64,
    #[serde(deserialize_with = "float")]
    pub(super) value: f64,
}
