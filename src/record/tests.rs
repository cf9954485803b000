//! Every reader agrees with every writer: what goes into a record (either
//! version, standalone or with the series ids of an epoch) comes back,
//! bit for bit, from wherever a reader starts.

use std::borrow::Cow;
use std::collections::BTreeMap;

use proptest::prelude::*;

use super::epoch::SeriesIds;
use super::metric::{histogram, BucketSpan, ExemplarPoint, Histogram, HistogramPoint};
use super::read::{epoch_start, PartitionReader};
use super::value::STALE_NAN;
use super::*;

/// A point as both sides can be compared: everything a reader gives back.
fn point_of_metric(m: &Metric<'_>, received_at: u64) -> String {
    let ts = m.timestamp.unwrap_or(received_at);
    let tags: Vec<(String, String)> = m
        .tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let what = if let Some(h) = &m.histogram {
        let mut h = h.0.clone();
        h.timestamp = ts as i64;
        h.start_timestamp = m.created_timestamp.unwrap_or(0) as i64;
        // Histogram fields are protobuf doubles: a -0.0 sum or threshold
        // reads back as 0.0, as in Prometheus' own messages (counts are in
        // a oneof, which keeps them; samples keep their bits).
        for f in [&mut h.sum, &mut h.zero_threshold] {
            if *f == 0.0 {
                *f = 0.0;
            }
        }
        format!("histogram {h:?} sum={:x}", h.sum.to_bits())
    } else if let Some(e) = &m.exemplar {
        let labels: Vec<(String, String)> = e.labels.clone().into_iter().collect();
        // A protobuf double, as in Prometheus' Exemplar: -0.0 reads back as 0.0.
        let v = m.value.as_f64();
        let v = if v == 0.0 { 0.0 } else { v };
        format!("exemplar {labels:?} {:x}", v.to_bits())
    } else {
        format!(
            "sample {} ns={:?} start={:?}",
            value_text(m.value),
            m.timestamp_ns,
            m.created_timestamp.filter(|&c| c != 0)
        )
    };
    let meta = if m.histogram.is_some() || m.exemplar.is_none() {
        format!("{:?} {:?}", m.unit, m.help)
    } else {
        String::new()
    };
    format!("{} {tags:?} {:?} t={ts} {what} {meta}", m.name, m.kind)
}

fn value_text(v: Value) -> String {
    match v {
        Value::Float(f) => format!("f{:x}", f.to_bits()),
        Value::Int(i) => format!("i{i}"),
        Value::UInt(u) => format!("u{u}"),
    }
}

fn point_of_sample(s: &Sample) -> String {
    let e = s.extra.as_deref();
    let what = if let Some(h) = s.histogram() {
        format!("histogram {h:?} sum={:x}", h.sum.to_bits())
    } else if let Some(labels) = s.exemplar() {
        format!("exemplar {labels:?} {:x}", s.value.as_f64().to_bits())
    } else {
        format!(
            "sample {} ns={:?} start={:?}",
            value_text(s.value),
            e.and_then(|e| e.timestamp_ns),
            e.and_then(|e| e.start_timestamp)
        )
    };
    let meta = if s.exemplar().is_none() {
        format!(
            "{:?} {:?}",
            e.and_then(|e| e.unit.as_deref()),
            e.and_then(|e| e.help.as_deref())
        )
    } else {
        String::new()
    };
    format!(
        "{} {:?} {:?} t={} {what} {meta}",
        s.name(),
        s.labels(),
        s.kind,
        s.timestamp
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,6}",
        "\\PC{1,8}",
        Just("__name__".to_string()),
        Just("a.b/c=d".to_string()),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::from_bits(STALE_NAN)),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        any::<u64>().prop_map(f64::from_bits),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        float().prop_map(Value::Float),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
    ]
}

fn spans() -> impl Strategy<Value = Vec<BucketSpan>> {
    prop::collection::vec(
        (any::<i32>(), 0..5u32).prop_map(|(offset, length)| BucketSpan { offset, length }),
        0..3,
    )
}

fn hist() -> impl Strategy<Value = Histogram> {
    (
        any::<bool>(),
        any::<u64>(),
        float(),
        -4..9i32,
        spans(),
        prop::collection::vec(any::<i64>(), 0..4),
        prop::collection::vec(float(), 0..4),
        0..4i32,
        prop::collection::vec(float(), 0..3),
    )
        .prop_map(
            |(float_counts, n, sum, schema, spans, deltas, counts, hint, custom)| {
                let (count, zero) = if float_counts {
                    (
                        histogram::Count::CountFloat(n as f64),
                        histogram::ZeroCount::ZeroCountFloat(sum),
                    )
                } else {
                    (
                        histogram::Count::CountInt(n),
                        histogram::ZeroCount::ZeroCountInt(n / 2),
                    )
                };
                Histogram {
                    count: Some(count),
                    sum,
                    schema: if custom.is_empty() { schema } else { -53 },
                    zero_threshold: 1e-128,
                    zero_count: Some(zero),
                    negative_spans: spans.clone(),
                    negative_deltas: if float_counts { vec![] } else { deltas.clone() },
                    negative_counts: if float_counts { counts.clone() } else { vec![] },
                    positive_spans: spans,
                    positive_deltas: if float_counts { vec![] } else { deltas },
                    positive_counts: if float_counts { counts } else { vec![] },
                    reset_hint: hint,
                    timestamp: 0,
                    custom_values: custom,
                    start_timestamp: 0,
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Kind {
    Sample(Value),
    Histogram(Box<Histogram>),
    Exemplar(f64, BTreeMap<String, String>),
}

/// Series name, tag count, what the point is, timestamp, sub-ms nanos,
/// created timestamp, unused.
type Pick = (usize, usize, Kind, Option<u64>, u32, u64, usize);

fn metric() -> impl Strategy<Value = Pick> {
    let kind = prop_oneof![
        6 => value().prop_map(Kind::Sample),
        2 => hist().prop_map(|h| Kind::Histogram(Box::new(h))),
        1 => (float(), prop::collection::btree_map(text(), text(), 0..3))
            .prop_map(|(v, l)| Kind::Exemplar(v, l)),
    ];
    (
        0..4usize,
        0..3usize,
        kind,
        prop::option::of(0..4_000_000_000_000u64),
        prop_oneof![Just(0u32), 1..1_000_000u32],
        prop_oneof![Just(0u64), 1..4_000_000_000_000u64],
        0..3usize,
    )
}

/// Metrics from picks: a few series (name × tag set) so that runs of one
/// series and repeats across records both happen.
fn metrics_of(picks: &[Pick], names: &[String]) -> Vec<Metric<'static>> {
    let types = [
        MetricType::Gauge,
        MetricType::Counter,
        MetricType::Histogram,
    ];
    picks
        .iter()
        .map(|(n, t, kind, ts, nanos, created, meta)| {
            let mut tags = BTreeMap::new();
            for i in 0..*t {
                tags.insert(
                    Cow::Owned(format!("k{i}")),
                    Cow::Owned(format!("v{}", i * 7 + n)),
                );
            }
            let name = names[*n % names.len()].clone();
            // One type per series, as senders do.
            let series_type = types[(*n % names.len()) % 3];
            let mut m = Metric::sample(name, Value::Float(0.0), series_type, tags, *ts);
            match kind {
                Kind::Sample(v) => {
                    m.value = *v;
                    // Sub-ms nanoseconds only with a timestamp they refine.
                    if let (Some(ts), true) = (ts, *nanos != 0) {
                        m.timestamp_ns = Some(ts * 1_000_000 + u64::from(*nanos));
                    }
                    m.created_timestamp = (*created != 0).then_some(*created);
                }
                Kind::Histogram(h) => {
                    m.value = match h.count {
                        Some(histogram::Count::CountInt(n)) => Value::UInt(n),
                        Some(histogram::Count::CountFloat(f)) => Value::Float(f),
                        None => Value::UInt(0),
                    };
                    m.created_timestamp = (*created != 0).then_some(*created);
                    m.histogram = Some(Box::new(HistogramPoint((**h).clone())));
                }
                Kind::Exemplar(v, labels) => {
                    m.value = Value::Float(*v);
                    m.exemplar = Some(Box::new(ExemplarPoint {
                        labels: labels.clone(),
                    }));
                }
            }
            // A series' unit and help are the same on all its points.
            let _ = meta;
            if (n % names.len() + t).is_multiple_of(2) && m.exemplar.is_none() {
                let n = n % names.len();
                m.unit = Some(Cow::Owned(format!("u{n}")));
                m.help = Some(Cow::Owned(format!("help of {n} ✓")));
            }
            m
        })
        .collect()
}

/// A tenant id as Mimir takes it (`crate::tenant::validate`).
fn tenant() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9!_.*'()-]{1,150}",
        Just("acme".to_string()),
        Just("...".to_string()),
    ]
    .prop_filter("`.` and `..` are no tenant ids", |t| t != "." && t != "..")
}

fn read_all(reader: &mut PartitionReader, records: &[(u64, Vec<u8>)]) -> Vec<Sample> {
    let mut out = Vec::new();
    for (offset, bytes) in records {
        reader.read(*offset, bytes, &mut out).expect("reads");
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any points → standalone compact records → the same points.
    #[test]
    fn standalone_records_read_back_bit_for_bit(
        picks in prop::collection::vec(metric(), 1..40),
        names in prop::collection::vec(text(), 1..4),
        received_at in 0..4_000_000_000_000u64,
        max_bytes in prop_oneof![Just(usize::MAX), 1..2000usize],
    ) {
        let mut metrics = metrics_of(&picks, &names);
        let want: Vec<String> = metrics.iter().map(|m| point_of_metric(m, received_at)).collect();
        let payloads = records(Format::Compact, "c", received_at, &mut metrics, max_bytes).unwrap();
        let mut reader = PartitionReader::new();
        let mut got = Vec::new();
        for (i, p) in payloads.into_iter().enumerate() {
            let bytes = p.into_bytes().unwrap();
            prop_assert!(epoch_start(i as u64, &bytes).is_none());
            let head = reader.read(i as u64, &bytes, &mut got).unwrap();
            prop_assert_eq!(head.received_at, received_at);
            prop_assert_eq!(head.client_id.as_str(), "c");
        }
        prop_assert_eq!(sorted(got.iter().map(point_of_sample).collect()), sorted(want));
    }

    /// Records of one partition with ids shared in epochs (resets where a
    /// segment would roll or a write failed, failed records written
    /// again): a reader from the start, and one starting at any offset
    /// (learning the records of its epoch before it), read what was
    /// written.
    #[test]
    fn epoch_records_read_back_from_any_offset(
        batches in prop::collection::vec(
            (prop::collection::vec(metric(), 1..12), 0..10u8), 1..12),
        names in prop::collection::vec(text(), 1..3),
        start_at in any::<prop::sample::Index>(),
    ) {
        let mut ids = SeriesIds::new();
        let mut log: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut want: Vec<Vec<String>> = Vec::new();
        for (picks, event) in &batches {
            let mut metrics = metrics_of(picks, &names);
            json::fill_timestamps(&mut metrics, 5);
            let enc = compact::encode("c", None, 5, &metrics).unwrap();
            let offset = log.len() as u64;
            if *event == 0 {
                // A failed write: assembled, never stored, the ids reset,
                // written again.
                let _lost = ids.assemble(offset, &enc).unwrap();
                ids.reset();
            } else if *event == 1 {
                // A new segment.
                ids.reset();
            }
            log.push((offset, ids.assemble(offset, &enc).unwrap()));
            want.push(metrics.iter().map(|m| point_of_metric(m, 5)).collect());
        }
        let all = read_all(&mut PartitionReader::new(), &log);
        let flat: Vec<String> = want.concat();
        prop_assert_eq!(sorted(all.iter().map(point_of_sample).collect()), sorted(flat));

        let k = start_at.index(log.len());
        let mut late = PartitionReader::new();
        let first = &log[k];
        if let Some(from) = epoch_start(first.0, &first.1) {
            prop_assert!(from < first.0);
            for (offset, bytes) in &log[from as usize..k] {
                late.learn(*offset, bytes).unwrap();
            }
        } else {
            // Reading it without learning must say what it needs, if anything.
            let mut probe = PartitionReader::new();
            let _ = probe.read(first.0, &first.1, &mut Vec::new()).unwrap();
        }
        let got = read_all(&mut late, &log[k..]);
        let flat: Vec<String> = want[k..].concat();
        prop_assert_eq!(sorted(got.iter().map(point_of_sample).collect()), sorted(flat));
    }

    /// Any tenant (or none) → records of either version, standalone or in
    /// an epoch → every reader gives it back, in the head and on every
    /// sample; a version 2 record and the version 1 (JSON) record Kafka's
    /// `--kafka-format json` writes of the same request read back the same.
    #[test]
    fn the_tenant_reads_back_from_every_version(
        picks in prop::collection::vec(metric(), 1..20),
        names in prop::collection::vec(text(), 1..3),
        tenant in prop::option::of(tenant()),
        max_bytes in prop_oneof![Just(usize::MAX), 1..2000usize],
    ) {
        let tenant = tenant.as_deref();
        let mut per_format = Vec::new();
        for format in [Format::Compact, Format::Json] {
            let mut metrics = metrics_of(&picks, &names);
            let payloads =
                tenant_records(format, "c", tenant, 5, &mut metrics, max_bytes).unwrap();
            let mut reader = PartitionReader::new();
            let mut got = Vec::new();
            for (i, p) in payloads.into_iter().enumerate() {
                let bytes = p.into_bytes().unwrap();
                let before = got.len();
                let head = reader.read(i as u64, &bytes, &mut got).unwrap();
                prop_assert_eq!(head.tenant.as_deref(), tenant);
                prop_assert_eq!(head.client_id.as_str(), "c");
                for s in &got[before..] {
                    prop_assert_eq!(s.tenant(), tenant);
                }
            }
            prop_assert_eq!(got.len(), picks.len());
            // What both versions keep of a plain sample (version 1's
            // reader leaves unit, help and sub-ms digits to `consume`'s
            // stdout, which prints the record as stored; JSON has one kind
            // of number: `0` reads back as an integer of either sign).
            let plain = got.iter().filter(|s| s.is_plain()).map(|s| {
                let bits = s.value.as_f64().to_bits();
                format!("{} {:?} {:?} t={} {bits:x}", s.name(), s.labels(), s.kind, s.timestamp)
            });
            per_format.push(sorted(plain.collect()));
        }
        // Epoch records (the embedded log's) carry it too.
        let mut metrics = metrics_of(&picks, &names);
        json::fill_timestamps(&mut metrics, 5);
        let enc = compact::encode("c", tenant, 5, &metrics).unwrap();
        let bytes = SeriesIds::new().assemble(0, &enc).unwrap();
        let mut got = Vec::new();
        let head = PartitionReader::new().read(0, &bytes, &mut got).unwrap();
        prop_assert_eq!(head.tenant.as_deref(), tenant);
        prop_assert!(got.iter().all(|s| s.tenant() == tenant));
        prop_assert_eq!(&per_format[0], &per_format[1]);
    }

    /// A damaged record never panics a reader: it reads something or says
    /// what is wrong.
    #[test]
    fn damaged_records_are_errors_not_panics(
        picks in prop::collection::vec(metric(), 1..10),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut metrics = metrics_of(&picks, &["m".to_string()]);
        let payloads = records(Format::Compact, "c", 1, &mut metrics, usize::MAX).unwrap();
        let mut bytes = payloads.into_iter().next().unwrap().into_bytes().unwrap();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = byte;
        }
        let _ = PartitionReader::new().read(0, &bytes, &mut Vec::new());
    }
}

#[test]
fn a_reader_starting_mid_epoch_says_where_the_epoch_starts() {
    let mut ids = SeriesIds::new();
    let mut m = vec![Metric::sample(
        "up",
        Value::Float(1.0),
        MetricType::Gauge,
        BTreeMap::new(),
        Some(1),
    )];
    let enc = compact::encode("c", None, 1, &m).unwrap();
    let first = ids.assemble(10, &enc).unwrap();
    m[0].value = Value::Float(2.0);
    let enc = compact::encode("c", None, 1, &m).unwrap();
    let second = ids.assemble(11, &enc).unwrap();
    assert_eq!(epoch_start(10, &first), None);
    assert_eq!(epoch_start(11, &second), Some(10));
    let mut reader = PartitionReader::new();
    let e = reader.read(11, &second, &mut Vec::new()).unwrap_err();
    assert_eq!(
        e,
        RecordError::NeedsEpoch {
            offset: 11,
            from: 10
        }
    );
    reader.learn(10, &first).unwrap();
    let mut out = Vec::new();
    reader.read(11, &second, &mut out).unwrap();
    assert_eq!(out[0].value, Value::Float(2.0));
    assert_eq!(out[0].name(), "up");
}

#[test]
fn unknown_formats_and_flags_are_named() {
    let mut reader = PartitionReader::new();
    let e = reader.read(3, b"\x07abc", &mut Vec::new()).unwrap_err();
    assert_eq!(e, RecordError::UnknownFormat { offset: 3, byte: 7 });
    assert!(e.to_string().contains("0x07"), "{e}");
    let e = reader
        .read(4, b"\x02\x80\x00\x00", &mut Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("unknown flags 0x80"), "{e}");
}

#[test]
fn records_are_cut_under_the_limit() {
    let mut metrics: Vec<Metric<'_>> = (0..10_000)
        .map(|i| {
            let mut tags = BTreeMap::new();
            tags.insert(Cow::Borrowed("host"), Cow::Owned(format!("h{i}")));
            Metric::sample(
                "m",
                Value::Float(f64::from(i)),
                MetricType::Gauge,
                tags,
                Some(1),
            )
        })
        .collect();
    for format in [Format::Compact, Format::Json] {
        let payloads = records(format, "c", 1, &mut metrics, 64 * 1024).unwrap();
        assert!(payloads.len() > 1, "{format:?}");
        let mut total = 0;
        let mut reader = PartitionReader::new();
        for (i, p) in payloads.into_iter().enumerate() {
            let bytes = p.into_bytes().unwrap();
            assert!(
                bytes.len() <= 64 * 1024,
                "{format:?}: {} bytes",
                bytes.len()
            );
            let mut out = Vec::new();
            reader.read(i as u64, &bytes, &mut out).unwrap();
            total += out.len();
        }
        assert_eq!(total, 10_000, "{format:?}");
    }
}

#[test]
fn json_records_carry_histograms_and_exemplars() {
    let h = Histogram {
        count: Some(histogram::Count::CountInt(u64::MAX)),
        sum: f64::from_bits(STALE_NAN),
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: Some(histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![BucketSpan {
            offset: -2,
            length: 2,
        }],
        positive_deltas: vec![5, -3],
        ..Default::default()
    };
    let mut hm = Metric::sample(
        "h",
        Value::UInt(u64::MAX),
        MetricType::Histogram,
        BTreeMap::new(),
        Some(7),
    );
    hm.histogram = Some(Box::new(HistogramPoint(h.clone())));
    let mut em = Metric::sample(
        "h",
        Value::Float(0.5),
        MetricType::Histogram,
        BTreeMap::new(),
        Some(8),
    );
    let mut labels = BTreeMap::new();
    labels.insert("trace_id".to_string(), "abc".to_string());
    em.exemplar = Some(Box::new(ExemplarPoint { labels }));
    let mut metrics = vec![hm, em];
    let payloads = records(Format::Json, "c", 1, &mut metrics, usize::MAX).unwrap();
    let bytes = payloads.into_iter().next().unwrap().into_bytes().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains(r#""histogram":{"count":18446744073709551615,"sum":"StaleNaN""#),
        "{text}"
    );
    let mut out = Vec::new();
    PartitionReader::new().read(0, &bytes, &mut out).unwrap();
    let mut want = h;
    want.timestamp = 7;
    let got = out[0].histogram().unwrap();
    assert_eq!(format!("{got:?}"), format!("{want:?}"));
    assert_eq!(got.sum.to_bits(), STALE_NAN);
    assert_eq!(
        out[1].exemplar(),
        Some(&[("trace_id".to_string(), "abc".to_string())][..])
    );
    assert_eq!((out[1].timestamp, out[1].value), (8, Value::Float(0.5)));
}
