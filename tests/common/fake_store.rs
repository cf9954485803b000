//! A tiny HTTP/1.1 store for the sink tests: answers each request as a
//! script says (status, headers, body; by its number, or seeing the
//! request), keeps connections alive, and records
//! when each request came, its headers, content type and body; a remote_write body
//! (1.0 or 2.0) decodes into the points it holds ([`Received::decoded`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What to answer to request number n (0-based): status and extra header
/// lines; `None` never answers (the connection stays open, silent).
pub type Script = dyn Fn(usize) -> Option<(u16, Vec<(String, String)>)> + Send + Sync;

/// An answer: status, extra header lines, body.
pub type Answer = (u16, Vec<(String, String)>, String);

/// What to answer to request number n, seeing the request; `None` never
/// answers.
pub type RequestScript = dyn Fn(usize, &Received) -> Option<Answer> + Send + Sync;

#[derive(Clone)]
pub struct Received {
    pub at: Instant,
    /// Every header line as sent (names lowercased), in order.
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: Vec<u8>,
    pub status: Option<u16>,
}

pub struct FakeStore {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl FakeStore {
    pub fn start(script: Box<Script>) -> FakeStore {
        FakeStore::answering(Box::new(move |n, _| {
            script(n).map(|(status, headers)| (status, headers, String::new()))
        }))
    }

    /// A store whose answers depend on what it is sent.
    pub fn answering(script: Box<RequestScript>) -> FakeStore {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<RequestScript> = Arc::from(script);
        let r = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (r, script) = (r.clone(), script.clone());
                std::thread::spawn(move || serve(stream, &r, &*script));
            }
        });
        FakeStore { addr, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }
}

fn serve(stream: TcpStream, received: &Mutex<Vec<Received>>, script: &RequestScript) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut content_type = String::new();
        let mut headers = Vec::new();
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match input.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if !first {
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    } else if k.eq_ignore_ascii_case("content-type") {
                        content_type = v.trim().to_string();
                    }
                }
            }
            first = false;
        }
        let mut body = vec![0; length];
        if input.read_exact(&mut body).is_err() {
            return;
        }
        let request = Received {
            at: Instant::now(),
            headers,
            content_type: content_type.clone(),
            body,
            status: None,
        };
        let n = {
            let mut r = received.lock().unwrap();
            r.push(request.clone());
            r.len() - 1
        };
        // Not under the lock: a script may take its time (a slow store).
        let Some((status, headers, text)) = script(n, &request) else {
            // Never answer: hold the connection until the peer goes.
            let mut sink = Vec::new();
            let _ = input.read_to_end(&mut sink);
            return;
        };
        received.lock().unwrap()[n].status = Some(status);
        let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", text.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&text);
        if out.write_all(head.as_bytes()).is_err() {
            return;
        }
    }
}

/// One point a remote_write store received, in one form for 1.0 and 2.0
/// (and for what a test stored): ordered, so two lists compare as sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Point {
    /// The series' labels, `__name__` included.
    pub series: BTreeMap<String, String>,
    pub timestamp: i64,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum What {
    /// A float sample: its bits, and its start timestamp (0: none; 1.0
    /// has no field for it).
    Float { bits: u64, start: i64 },
    /// A native histogram: the 2.0 `Histogram` as prost encodes it (a
    /// 1.0 one turned into it), its timestamp left out (the point's).
    /// prost writes floats as their bits: equal bytes, equal histograms.
    Histogram(Vec<u8>),
    /// An exemplar: its labels, sorted, and its value's bits.
    Exemplar {
        labels: Vec<(String, String)>,
        bits: u64,
    },
}

impl What {
    /// Which list of its series the point is in.
    pub fn list(&self) -> &'static str {
        match self {
            What::Float { .. } => "samples",
            What::Histogram(_) => "histograms",
            What::Exemplar { .. } => "exemplars",
        }
    }
}

/// What a metric family's (1.0) or series' (2.0) metadata said: type
/// (the numbers are the same in both versions), unit, help.
pub type Meta = (i32, String, String);

/// A remote_write request's content.
pub struct Decoded {
    /// Its points, series by series, each series' lists in their order.
    pub points: Vec<Point>,
    /// Metadata by metric name (1.0: the family's; 2.0: the series').
    pub metadata: Vec<(String, Meta)>,
}

impl Received {
    /// The values of header `name` (any case), in order.
    pub fn header(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as remote_write 2.0 when its content type says so, else
    /// 1.0; panics if it is neither.
    pub fn decoded(&self) -> Decoded {
        use prost::Message;
        let proto = snap::raw::Decoder::new()
            .decompress_vec(&self.body)
            .expect("a snappy body");
        if self.content_type.contains("io.prometheus.write.v2.Request") {
            decode_v2(&prompb::v2::Request::decode(proto.as_slice()).expect("a 2.0 Request"))
        } else {
            decode_v1(&prompb::v1::WriteRequest::decode(proto.as_slice()).expect("a WriteRequest"))
        }
    }
}

/// A stored (2.0) histogram in the form [`What::Histogram`] compares.
pub fn histogram_point(h: &prompb::v2::Histogram) -> What {
    use prost::Message;
    let mut h = h.clone();
    h.timestamp = 0;
    What::Histogram(h.encode_to_vec())
}

fn decode_v1(req: &prompb::v1::WriteRequest) -> Decoded {
    let mut points = Vec::new();
    for ts in &req.timeseries {
        let series: BTreeMap<String, String> = ts
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        let point = |timestamp: i64, what: What| Point {
            series: series.clone(),
            timestamp,
            what,
        };
        for s in &ts.samples {
            let bits = s.value.to_bits();
            points.push(point(s.timestamp, What::Float { bits, start: 0 }));
        }
        for h in &ts.histograms {
            points.push(point(h.timestamp, histogram_point(&v2_histogram(h))));
        }
        for e in &ts.exemplars {
            let mut labels: Vec<(String, String)> = e
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            labels.sort();
            let bits = e.value.to_bits();
            points.push(point(e.timestamp, What::Exemplar { labels, bits }));
        }
    }
    let metadata = req
        .metadata
        .iter()
        .map(|m| {
            let meta = (m.r#type, m.unit.clone(), m.help.clone());
            (m.metric_family_name.clone(), meta)
        })
        .collect();
    Decoded { points, metadata }
}

fn decode_v2(req: &prompb::v2::Request) -> Decoded {
    assert_eq!(req.symbols.first().map(String::as_str), Some(""));
    let symbol = |i: u32| -> String {
        req.symbols
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| panic!("symbol {i} of {}", req.symbols.len()))
    };
    let pairs = |refs: &[u32]| -> Vec<(String, String)> {
        assert!(refs.len().is_multiple_of(2), "odd label refs {refs:?}");
        refs.chunks(2)
            .map(|p| (symbol(p[0]), symbol(p[1])))
            .collect()
    };
    let mut points = Vec::new();
    let mut metadata = Vec::new();
    for ts in &req.timeseries {
        let series: BTreeMap<String, String> = pairs(&ts.labels_refs).into_iter().collect();
        let point = |timestamp: i64, what: What| Point {
            series: series.clone(),
            timestamp,
            what,
        };
        for s in &ts.samples {
            let (bits, start) = (s.value.to_bits(), s.start_timestamp);
            points.push(point(s.timestamp, What::Float { bits, start }));
        }
        for h in &ts.histograms {
            points.push(point(h.timestamp, histogram_point(h)));
        }
        for e in &ts.exemplars {
            let mut labels = pairs(&e.labels_refs);
            labels.sort();
            let bits = e.value.to_bits();
            points.push(point(e.timestamp, What::Exemplar { labels, bits }));
        }
        let m = ts.metadata.expect("2.0 series metadata");
        let name = series.get("__name__").cloned().unwrap_or_default();
        metadata.push((name, (m.r#type, symbol(m.unit_ref), symbol(m.help_ref))));
    }
    Decoded { points, metadata }
}

/// A 1.0 histogram as the 2.0 message (no start timestamp).
fn v2_histogram(h: &prompb::v1::Histogram) -> prompb::v2::Histogram {
    use prompb::v1::histogram::{Count, ZeroCount};
    use prompb::v2::histogram as v2;
    let spans = |s: &[prompb::v1::BucketSpan]| -> Vec<prompb::v2::BucketSpan> {
        s.iter()
            .map(|s| prompb::v2::BucketSpan {
                offset: s.offset,
                length: s.length,
            })
            .collect()
    };
    prompb::v2::Histogram {
        count: h.count.map(|c| match c {
            Count::CountInt(n) => v2::Count::CountInt(n),
            Count::CountFloat(f) => v2::Count::CountFloat(f),
        }),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count.map(|c| match c {
            ZeroCount::ZeroCountInt(n) => v2::ZeroCount::ZeroCountInt(n),
            ZeroCount::ZeroCountFloat(f) => v2::ZeroCount::ZeroCountFloat(f),
        }),
        negative_spans: spans(&h.negative_spans),
        negative_deltas: h.negative_deltas.clone(),
        negative_counts: h.negative_counts.clone(),
        positive_spans: spans(&h.positive_spans),
        positive_deltas: h.positive_deltas.clone(),
        positive_counts: h.positive_counts.clone(),
        reset_hint: h.reset_hint,
        timestamp: h.timestamp,
        custom_values: h.custom_values.clone(),
        start_timestamp: 0,
    }
}
