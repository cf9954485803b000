//! OTLP JSON bodies into `opentelemetry-proto`'s message types, following
//! the OTLP JSON mapping (module doc, "JSON"). Mirror structs read the JSON;
//! `From` impls move them into the generated types, so protobuf and JSON
//! requests meet in one type and one conversion.

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::metrics::v1 as metrics;
use opentelemetry_proto::tonic::resource::v1 as resource;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::batch::value::NORMAL_NAN;

/// Decodes a JSON body; Err names the field (`resourceMetrics[0]…`).
pub(super) fn decode(bytes: &[u8]) -> Result<ExportMetricsServiceRequest, String> {
    // serde's derive also reads a struct from an array of its fields; the
    // request, at least, must be an object.
    if bytes.trim_ascii_start().first() == Some(&b'[') {
        return Err(
            "invalid OTLP JSON body: an array, not an ExportMetricsServiceRequest object".into(),
        );
    }
    let request: Request = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        // The path is tracked only on the (rare) error path.
        Err(plain) => {
            let de = &mut serde_json::Deserializer::from_slice(bytes);
            let path = match serde_path_to_error::deserialize::<_, Request>(de) {
                Err(e) => e.path().to_string(),
                Ok(_) => String::new(),
            };
            return Err(if path.is_empty() || path == "." {
                format!("invalid OTLP JSON body: {plain}")
            } else {
                format!("invalid OTLP JSON body at {path}: {plain}")
            });
        }
    };
    request.into_proto()
}

/// A number field as the protobuf JSON mapping writes it: a JSON number,
/// or a string holding one (how 64-bit integers are always written).
#[derive(Debug)]
enum Num {
    U(u64),
    I(i64),
    F(f64),
    S(String),
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string holding one")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num::U(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num::I(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num::F(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Num, E> {
                Ok(Num::S(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Num {
    /// An integer of any width; floats only when they are whole.
    fn integer(&self) -> Option<i128> {
        match self {
            Num::U(v) => Some(*v as i128),
            Num::I(v) => Some(*v as i128),
            Num::F(v) if v.fract() == 0.0 && v.abs() < 1.8e19 => Some(*v as i128),
            Num::F(_) => None,
            Num::S(s) => s.trim().parse().ok(),
        }
    }

    fn float(&self) -> Option<f64> {
        match self {
            Num::U(v) => Some(*v as f64),
            Num::I(v) => Some(*v as f64),
            Num::F(v) => Some(*v),
            Num::S(s) => match s.trim() {
                // No bits in the text: Prometheus' NaN, which is stored as "NaN".
                "NaN" => Some(f64::from_bits(NORMAL_NAN)),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                other => other.parse().ok(),
            },
        }
    }
}

fn int<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
    let n = Option::<Num>::deserialize(d)?;
    let Some(n) = n else {
        return T::try_from(0).map_err(|_| de::Error::custom("no default"));
    };
    n.integer()
        .and_then(|i| T::try_from(i).ok())
        .ok_or_else(|| {
            de::Error::custom(format!(
                "{n:?} is not an integer of {} bits",
                std::mem::size_of::<T>() * 8
            ))
        })
}

fn opt_int<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<Option<T>, D::Error> {
    int(d).map(Some)
}

fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    opt_float(d).map(Option::unwrap_or_default)
}

fn opt_float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Num>::deserialize(d)? {
        None => Ok(None),
        Some(n) => n
            .float()
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("{n:?} is not a double"))),
    }
}

/// A repeated field; `null` is empty.
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or_default())
}

/// An enum: its number, or its name.
fn temporality<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    match Option::<Num>::deserialize(d)? {
        None => Ok(0),
        Some(Num::S(s)) if metrics::AggregationTemporality::from_str_name(&s).is_some() => {
            Ok(metrics::AggregationTemporality::from_str_name(&s).map_or(0, |t| t as i32))
        }
        Some(n) => n
            .integer()
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| de::Error::custom(format!("{n:?} is not an aggregation temporality"))),
    }
}

/// Elements of a repeated 64-bit field, each a number or a string.
struct U64(u64);
impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<U64, D::Error> {
        int(d).map(U64)
    }
}

struct F64(f64);
impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<F64, D::Error> {
        float(d).map(F64)
    }
}

fn u64s<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    Ok(list::<D, U64>(d)?.into_iter().map(|v| v.0).collect())
}

fn f64s<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(list::<D, F64>(d)?.into_iter().map(|v| v.0).collect())
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Request {
    #[serde(deserialize_with = "list")]
    resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ResourceMetrics {
    resource: Option<Resource>,
    #[serde(deserialize_with = "list")]
    scope_metrics: Vec<ScopeMetrics>,
    #[serde(deserialize_with = "string")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Resource {
    #[serde(deserialize_with = "list")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ScopeMetrics {
    scope: Option<Scope>,
    #[serde(deserialize_with = "list")]
    metrics: Vec<Metric>,
    #[serde(deserialize_with = "string")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Scope {
    #[serde(deserialize_with = "string")]
    name: String,
    #[serde(deserialize_with = "string")]
    version: String,
    #[serde(deserialize_with = "list")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct KeyValue {
    #[serde(deserialize_with = "string")]
    key: String,
    value: Option<AnyValue>,
}

/// One of its fields, as a protobuf oneof; `bytesValue` in base64.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    #[serde(deserialize_with = "opt_int")]
    int_value: Option<i64>,
    #[serde(deserialize_with = "opt_float")]
    double_value: Option<f64>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KvList>,
    bytes_value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ArrayValue {
    #[serde(deserialize_with = "list")]
    values: Vec<AnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KvList {
    #[serde(deserialize_with = "list")]
    values: Vec<KeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Metric {
    #[serde(deserialize_with = "string")]
    name: String,
    #[serde(deserialize_with = "string")]
    description: String,
    #[serde(deserialize_with = "string")]
    unit: String,
    #[serde(deserialize_with = "list")]
    metadata: Vec<KeyValue>,
    gauge: Option<Points<NumberPoint>>,
    sum: Option<Points<NumberPoint>>,
    histogram: Option<Points<HistogramPoint>>,
    exponential_histogram: Option<Points<ExponentialPoint>>,
    summary: Option<Points<SummaryPoint>>,
}

/// Gauge, Sum, Histogram, ExponentialHistogram and Summary alike: points,
/// and for some a temporality and monotonicity.
#[derive(Deserialize)]
#[serde(default, rename_all = "camelCase", bound = "P: Deserialize<'de>")]
struct Points<P> {
    #[serde(deserialize_with = "list")]
    data_points: Vec<P>,
    #[serde(deserialize_with = "temporality")]
    aggregation_temporality: i32,
    #[serde(deserialize_with = "boolean")]
    is_monotonic: bool,
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
struct NumberPoint {
    #[serde(deserialize_with = "list")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "opt_float")]
    as_double: Option<f64>,
    #[serde(deserialize_with = "opt_int")]
    as_int: Option<i64>,
    #[serde(deserialize_with = "int")]
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct HistogramPoint {
    #[serde(deserialize_with = "list")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    count: u64,
    #[serde(deserialize_with = "opt_float")]
    sum: Option<f64>,
    #[serde(deserialize_with = "u64s")]
    bucket_counts: Vec<u64>,
    #[serde(deserialize_with = "f64s")]
    explicit_bounds: Vec<f64>,
    #[serde(deserialize_with = "int")]
    flags: u32,
    #[serde(deserialize_with = "opt_float")]
    min: Option<f64>,
    #[serde(deserialize_with = "opt_float")]
    max: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ExponentialPoint {
    #[serde(deserialize_with = "list")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    count: u64,
    #[serde(deserialize_with = "opt_float")]
    sum: Option<f64>,
    #[serde(deserialize_with = "int")]
    scale: i32,
    #[serde(deserialize_with = "int")]
    zero_count: u64,
    positive: Option<Buckets>,
    negative: Option<Buckets>,
    #[serde(deserialize_with = "int")]
    flags: u32,
    #[serde(deserialize_with = "opt_float")]
    min: Option<f64>,
    #[serde(deserialize_with = "opt_float")]
    max: Option<f64>,
    #[serde(deserialize_with = "float")]
    zero_threshold: f64,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Buckets {
    #[serde(deserialize_with = "int")]
    offset: i32,
    #[serde(deserialize_with = "u64s")]
    bucket_counts: Vec<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SummaryPoint {
    #[serde(deserialize_with = "list")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    count: u64,
    #[serde(deserialize_with = "float")]
    sum: f64,
    #[serde(deserialize_with = "list")]
    quantile_values: Vec<Quantile>,
    #[serde(deserialize_with = "int")]
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Quantile {
    #[serde(deserialize_with = "float")]
    quantile: f64,
    #[serde(deserialize_with = "float")]
    value: f64,
}

// Into the generated types. Exemplars are not read (they are not stored).

impl Request {
    fn into_proto(self) -> Result<ExportMetricsServiceRequest, String> {
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
    fn into_proto(self) -> Result<metrics::Metric, String> {
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
    fn into_proto(self) -> Result<metrics::NumberDataPoint, String> {
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
    fn into_proto(self) -> Result<metrics::HistogramDataPoint, String> {
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
    fn into_proto(self) -> Result<metrics::ExponentialHistogramDataPoint, String> {
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
    fn into_proto(self) -> Result<metrics::SummaryDataPoint, String> {
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
