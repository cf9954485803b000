//! metricstream's stored record, format version 2: the messages of
//! `proto/record.proto` (the specification, with the byte layout around
//! them), field by field. Its `Histogram` and `BucketSpan` are remote_write
//! 2.0's, whose fields and numbers the record's copy on purpose.

pub use crate::v2::{histogram, BucketSpan, Histogram};

/// The series of one record: ids (as differences) and the definitions of
/// the ids new in the record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SeriesTable {
    #[prost(sint64, repeated, tag = "1")]
    pub ids: Vec<i64>,
    #[prost(message, repeated, tag = "2")]
    pub defs: Vec<SeriesDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SeriesDef {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    /// Names and values alternating, sorted by name.
    #[prost(string, repeated, tag = "3")]
    pub labels: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Body {
    #[prost(string, tag = "1")]
    pub client_id: String,
    #[prost(string, tag = "2")]
    pub tenant: String,
    #[prost(int64, tag = "3")]
    pub received_at: i64,
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    #[prost(uint32, repeated, tag = "5")]
    pub sample_counts: Vec<u32>,
    #[prost(enumeration = "MetricType", repeated, tag = "6")]
    pub types: Vec<i32>,
    #[prost(sint64, repeated, tag = "7")]
    pub timestamps: Vec<i64>,
    #[prost(fixed64, repeated, tag = "8")]
    pub values: Vec<u64>,
    #[prost(message, repeated, tag = "9")]
    pub infos: Vec<SeriesInfo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    Unknown = 0,
    Counter = 1,
    Gauge = 2,
    Histogram = 3,
    GaugeHistogram = 4,
    Summary = 5,
    Info = 6,
    Stateset = 7,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ValueKind {
    Float = 0,
    Int = 1,
    Uint = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SeriesInfo {
    #[prost(uint32, tag = "1")]
    pub series: u32,
    #[prost(uint32, tag = "2")]
    pub unit: u32,
    #[prost(uint32, tag = "3")]
    pub help: u32,
    #[prost(enumeration = "ValueKind", tag = "4")]
    pub value_kind: i32,
    #[prost(uint32, repeated, tag = "5")]
    pub sub_ms_nanos: Vec<u32>,
    #[prost(int64, repeated, tag = "6")]
    pub start_timestamps: Vec<i64>,
    #[prost(message, repeated, tag = "7")]
    pub histograms: Vec<Histogram>,
    #[prost(message, repeated, tag = "8")]
    pub exemplars: Vec<Exemplar>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Symbols of label names and values, alternating.
    #[prost(uint32, repeated, tag = "1")]
    pub labels: Vec<u32>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}
