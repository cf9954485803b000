//! `POST /api/v2/write` and `POST /write` (InfluxDB line protocol) end to
//! end: a hostile table answered as documented (what each request gets and
//! exactly what `consume` reads back), the credentials InfluxDB clients
//! send, 1.x-style writes with `curl`, gzip and its limit, `--partition-by
//! series`, and the per-protocol counters.

mod common;

use std::io::Write as _;

use common::in_process::InProcess;
use common::{consume_all, request, Response, Server};
use metricstream::queue::{AckMode, PartitionBy};
use serde_json::{json, Value};

fn post(s: &InProcess, path: &str, body: &[u8]) -> Response {
    request(s.addr, "POST", path, &[], body)
}

/// What consume printed, without the fields that vary from run to run.
fn stored(dir: &std::path::Path) -> Vec<Value> {
    consume_all(dir, "check")
        .into_iter()
        .map(|mut l| {
            let m = l.as_object_mut().unwrap();
            for k in ["client_id", "partition", "offset", "received_at", "type"] {
                m.remove(k);
            }
            l
        })
        .collect()
}

struct Case {
    what: &'static str,
    path: &'static str,
    body: Vec<u8>,
    status: u16,
    /// Each must be in the error message.
    error_has: &'static [&'static str],
    /// What must be stored, in order.
    stored: Vec<Value>,
}

fn metric(name: &str, value: Value, tags: Value, timestamp: u64) -> Value {
    json!({"name": name, "value": value, "tags": tags, "timestamp": timestamp})
}

fn cases() -> Vec<Case> {
    let t = 1_700_000_000_000u64; // ms
    let db = |extra: Value| {
        let mut tags = json!({"db": "d"});
        if let (Some(t), Some(e)) = (tags.as_object_mut(), extra.as_object()) {
            t.extend(e.clone());
        }
        tags
    };
    let case = |what, path, body: &str, status, error_has, stored| Case {
        what,
        path,
        body: body.as_bytes().to_vec(),
        status,
        error_has,
        stored,
    };
    let huge = format!(
        "m,t={} f=1 1700000000\nm f=2 1700000000",
        "x".repeat(70_000)
    );
    vec![
        case(
            "escaping in measurement, tag keys and values, field keys",
            "/write?db=d&precision=s",
            "m\\ x,t\\,k=v\\=1\\ 2 f\\=1=1 1700000000",
            204,
            &[],
            vec![metric(
                "m x_f=1",
                json!(1.0),
                db(json!({"t,k": "v=1 2"})),
                t,
            )],
        ),
        case(
            "comments, blank lines and CRLF",
            "/write?db=d&precision=s",
            "# a comment\r\n\r\n  m value=1 1700000000\r\n\n",
            204,
            &[],
            vec![metric("m", json!(1.0), db(json!({})), t)],
        ),
        case(
            "a line over 64 KiB is refused, the next one stored",
            "/write?db=d&precision=s",
            &huge,
            400,
            &[
                "partial write",
                "1 of 2 lines refused",
                "line 1: line too long",
            ],
            vec![metric("m_f", json!(2.0), db(json!({})), t)],
        ),
        case(
            "a field's type changing between lines",
            "/write?db=d&precision=s",
            "m f=1 1700000000\nm f=2i 1700000000",
            400,
            &["line 2: field \"f\": field type conflict: integer here, float"],
            vec![metric("m_f", json!(1.0), db(json!({})), t)],
        ),
        case(
            "integer overflow",
            "/write?db=d",
            "m f=9223372036854775808i\nm g=-9223372036854775808i 1700000000000000000",
            400,
            &["line 1: field \"f\"", "1 point stored"],
            vec![metric("m_g", json!(i64::MIN), db(json!({})), t)],
        ),
        case(
            "timestamps out of range and before 1970",
            "/write?db=d&precision=s",
            "m f=1 9223372036854775807\nm f=1 -1\nm f=3 1700000000",
            400,
            &[
                "line 1: timestamp 9223372036854775807 out of range",
                "line 2: timestamp",
            ],
            vec![metric("m_f", json!(3.0), db(json!({})), t)],
        ),
        case(
            "NaN and infinities are not line protocol floats",
            "/write?db=d&precision=s",
            "m f=NaN\nm f=inf\nm f=-Inf\nm f=4 1700000000",
            400,
            &["3 of 4 lines refused", "line 1:", "line 2:", "line 3:"],
            vec![metric("m_f", json!(4.0), db(json!({})), t)],
        ),
        case(
            "a line of string fields only: nothing stored, said so",
            "/api/v2/write?bucket=d&precision=s",
            "m s=\"text\" 1700000000",
            400,
            &[
                "unable to parse",
                "1 string field refused",
                "line 1: string field \"s\"",
            ],
            vec![],
        ),
        case(
            "unsigned and signed extremes stay exact",
            "/api/v2/write?bucket=d&precision=ms",
            "m u=18446744073709551615u,i=9007199254740993i 1700000000000",
            204,
            &[],
            vec![
                metric("m_u", json!(u64::MAX), db(json!({})), t),
                metric("m_i", json!(9_007_199_254_740_993i64), db(json!({})), t),
            ],
        ),
        case(
            "1.x precision m (minutes)",
            "/write?db=d&precision=m",
            "m f=1 28333333",
            204,
            &[],
            vec![metric(
                "m_f",
                json!(1.0),
                db(json!({})),
                28_333_333 * 60_000,
            )],
        ),
        case(
            "2.x refuses precision m",
            "/api/v2/write?bucket=d&precision=m",
            "m f=1 28333333",
            400,
            &["precision: \"m\" is not one of ns, us, ms, s"],
            vec![],
        ),
        case(
            "unknown precision",
            "/write?db=d&precision=fortnight",
            "m f=1",
            400,
            &["precision: invalid precision \"fortnight\""],
            vec![],
        ),
        case(
            "1.x without db",
            "/write?precision=s",
            "m f=1",
            400,
            &["database is required"],
            vec![],
        ),
        case(
            "2.x without bucket",
            "/api/v2/write?org=o",
            "m f=1",
            400,
            &["bucket is required"],
            vec![],
        ),
        case(
            "a tag db in the line wins over the request's",
            "/write?db=d&precision=s",
            "m,db=other f=5 1700000000",
            204,
            &[],
            vec![metric("m_f", json!(5.0), json!({"db": "other"}), t)],
        ),
        case(
            "duplicate field keys and an empty tag value",
            "/write?db=d&precision=s",
            "m f=1,f=2 1700000000\nm,t= f=1 1700000000\nm,t=v f=6 1700000000",
            400,
            &[
                "line 1: duplicate field key \"f\"",
                "line 2: tag \"t\": empty tag value",
            ],
            vec![metric("m_f", json!(6.0), db(json!({"t": "v"})), t)],
        ),
        case(
            "an empty body stores nothing",
            "/write?db=d",
            "",
            204,
            &[],
            vec![],
        ),
    ]
}

#[test]
fn hostile_table() {
    for c in cases() {
        let dir = tempfile::tempdir().unwrap();
        let s = InProcess::start(dir.path(), AckMode::Durable);
        let r = post(&s, c.path, &c.body);
        assert_eq!(r.status, c.status, "{}: {}", c.what, r.body);
        if c.status == 204 {
            assert!(r.body.is_empty(), "{}: {}", c.what, r.body);
        } else {
            let v2 = c.path.starts_with("/api/v2");
            let body = r.json();
            let message = if v2 {
                assert_eq!(body["code"], "invalid", "{}: {}", c.what, r.body);
                body["message"].as_str()
            } else {
                assert!(
                    r.header("x-influxdb-error").is_some(),
                    "{}: 1.x repeats the error in a header",
                    c.what
                );
                body["error"].as_str()
            };
            let message = message.unwrap_or_else(|| panic!("{}: {}", c.what, r.body));
            for part in c.error_has {
                assert!(
                    message.contains(part),
                    "{}: {message:?} lacks {part:?}",
                    c.what
                );
            }
        }
        assert!(r.header("x-influxdb-version").is_some(), "{}", c.what);
        s.stop();
        let got = stored(dir.path());
        assert_eq!(got, c.stored, "{}", c.what);
    }
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_bodies_and_the_limit_after_gunzip() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);
    let gz = [("Content-Encoding", "gzip")];
    let body = gzip(b"m f=1 1700000000\nm f=2 1700000001\n");
    let r = request(s.addr, "POST", "/write?db=d&precision=s", &gz, &body);
    assert_eq!(r.status, 204, "{}", r.body);

    // 2 MiB of lines inflate past the 1 MiB limit from a few KiB.
    let bomb = gzip(&b"m f=1\n".repeat(350_000));
    assert!(bomb.len() < 64 * 1024);
    let r = request(s.addr, "POST", "/api/v2/write?bucket=d", &gz, &bomb);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["code"], "request too large", "{}", r.body);
    let r = request(s.addr, "POST", "/write?db=d", &gz, b"not gzip");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("not valid gzip"));

    let stats = request(s.addr, "GET", "/stats", &[], b"").json();
    assert_eq!(
        stats["protocols"]["influx"]["samples_received"], 2,
        "{stats}"
    );
    s.stop();
    assert_eq!(stored(dir.path()).len(), 2);
}

/// A gzip body may be several members one after the other (RFC 1952,
/// `cat a.gz b.gz`): every member's lines are stored, not the first's only.
#[test]
fn every_member_of_a_gzip_body_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);
    let gz = [("Content-Encoding", "gzip")];
    let body = [
        gzip(b"m,member=1 f=1 1700000000\n"),
        gzip(b"m,member=2 f=2 1700000001\n"),
    ]
    .concat();
    let r = request(
        s.addr,
        "POST",
        "/api/v2/write?bucket=b&precision=s",
        &gz,
        &body,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    s.stop();
    assert_eq!(
        stored(dir.path()),
        vec![
            json!({"name": "m_f", "value": 1.0, "tags": {"db": "b", "member": "1"},
                   "timestamp": 1_700_000_000_000u64}),
            json!({"name": "m_f", "value": 2.0, "tags": {"db": "b", "member": "2"},
                   "timestamp": 1_700_000_001_000u64}),
        ]
    );
}

#[test]
fn refused_points_are_counted_per_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);
    let r = post(&s, "/write?db=d", b"m a=1,b=\"x\",c=\"y\"\nbad\nm a=2");
    assert_eq!(r.status, 400, "{}", r.body);
    let stats = request(s.addr, "GET", "/stats", &[], b"").json();
    let influx = &stats["protocols"]["influx"];
    assert_eq!(influx["samples_received"], 2, "{stats}");
    // Two string fields and one unparseable line.
    assert_eq!(influx["samples_refused"], 3, "{stats}");
    let text = request(s.addr, "GET", "/metrics", &[], b"").body;
    assert!(
        text.contains(r#"metricstream_http_requests_total{protocol="influx",status="400"} 1"#),
        "{text}"
    );
    s.stop();
}

#[test]
fn partition_by_series_keeps_each_series_in_one_partition() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start_with(dir.path(), AckMode::Durable, PartitionBy::Series);
    for round in 0..5 {
        let body: String = (0..40)
            .map(|h| {
                format!(
                    "cpu,host=h{h} idle={round},busy={h} {}\n",
                    1_700_000_000 + round
                )
            })
            .collect();
        let r = post(&s, "/write?db=d&precision=s", body.as_bytes());
        assert_eq!(r.status, 204, "{}", r.body);
    }
    s.stop();
    let lines = consume_all(dir.path(), "check");
    assert_eq!(lines.len(), 5 * 40 * 2);
    let mut partition_of = std::collections::BTreeMap::new();
    for l in &lines {
        let series = format!("{}{}", l["name"], l["tags"]);
        let p = l["partition"].as_u64().unwrap();
        assert_eq!(
            *partition_of.entry(series.clone()).or_insert(p),
            p,
            "{series}"
        );
    }
    let used: std::collections::BTreeSet<_> = partition_of.values().collect();
    assert_eq!(used.len(), 4, "80 series spread over all 4 partitions");
    // In each series, the samples are in the order sent.
    let mut last = std::collections::BTreeMap::new();
    for l in &lines {
        let series = format!("{}{}", l["name"], l["tags"]);
        let ts = l["timestamp"].as_u64().unwrap();
        if let Some(prev) = last.insert(series, ts) {
            assert!(prev < ts);
        }
    }
}

/// The credentials each InfluxDB client sends, against configured keys.
#[test]
fn influx_credentials_map_to_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--api-key", "telegraf:s3cret"]);
    let basic = "Basic dTpzM2NyZXQ="; // u:s3cret
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let ok: &[(&str, Headers)] = &[
        (
            "/api/v2/write?bucket=b",
            &[("Authorization", "Token s3cret")],
        ),
        (
            "/api/v2/write?bucket=b",
            &[("Authorization", "Bearer s3cret")],
        ),
        ("/write?db=b", &[("Authorization", basic)]),
        ("/write?db=b&u=someone&p=s3cret", &[]),
        ("/write?db=b", &[("Authorization", "Token s3cret")]),
    ];
    for (path, headers) in ok {
        let r = request(server.addr, "POST", path, headers, b"m f=1");
        assert_eq!(r.status, 204, "{path} {headers:?}: {}", r.body);
    }
    let refused: &[(&str, Headers, &str)] = &[
        (
            "/api/v2/write?bucket=b",
            &[("Authorization", "Token wrong")],
            "unknown API key",
        ),
        ("/api/v2/write?bucket=b", &[], "an API key is required"),
        ("/write?db=b&u=x&p=wrong", &[], "unknown API key"),
        (
            "/write?db=b&u=x&p=s3cret",
            &[("Authorization", "Token s3cret")],
            "sent more than once",
        ),
    ];
    for (path, headers, why) in refused {
        let r = request(server.addr, "POST", path, headers, b"m f=1");
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        let body = r.json();
        let message = if path.starts_with("/api/v2") {
            assert_eq!(body["code"], "unauthorized");
            body["message"].as_str().unwrap().to_string()
        } else {
            body["error"].as_str().unwrap().to_string()
        };
        assert!(message.contains(why), "{path}: {message}");
    }
    drop(server);
    let lines = consume_all(dir.path(), "check");
    assert_eq!(lines.len(), ok.len());
    assert!(lines.iter().all(|l| l["client_id"] == "telegraf"));
}

/// `/query` is admitted as every write is: with API keys configured, a
/// request without one is a 401 (in 1.x's error shape), and it is counted
/// with the other InfluxDB requests.
#[test]
fn query_is_admitted_like_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--api-key", "telegraf:s3cret"]);
    let create = "/query?q=CREATE+DATABASE+%22d%22";
    let r = request(server.addr, "POST", create, &[], b"");
    assert_eq!(r.status, 401, "{}", r.body);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("an API key is required"), "{error}");
    assert!(r.header("x-influxdb-version").is_some(), "{r:?}");
    let wrong = [("Authorization", "Token wrong")];
    let r = request(server.addr, "GET", create, &wrong, b"");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("unknown API key"), "{}", r.body);

    let with_query = format!("{create}&u=telegraf&p=s3cret");
    let r = request(server.addr, "POST", &with_query, &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let token = [("Authorization", "Token s3cret")];
    let r = request(server.addr, "GET", create, &token, b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#""results""#), "{}", r.body);

    let text = request(server.addr, "GET", "/metrics", &[], b"").body;
    for status in ["401", "200"] {
        let line =
            format!(r#"metricstream_http_requests_total{{protocol="influx",status="{status}"}} 2"#);
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
}

/// 1.x-style writes as a shell script would make them: curl, `-u`, a file.
/// Runs curl, so it is behind the `external` feature.
#[cfg(feature = "external")]
#[test]
fn curl_writes_in_the_1x_style() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--api-key", "ops:k3y"]);
    let file = dir.path().join("points.txt");
    std::fs::write(
        &file,
        "weather,location=us-midwest temperature=82 1465839830100400200\n\
         weather,location=us-east temperature=75,count=3i 1465839830100400200\n",
    )
    .unwrap();
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/stderr", "-w", "%{http_code}"])
            .args(args)
            .output()
            .expect("curl (Debian package curl) is needed for this test");
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let base = format!("http://{}", server.addr);
    let (code, body) = curl(&[
        "-XPOST",
        "-u",
        "ops:k3y",
        &format!("{base}/write?db=mydb"),
        "--data-binary",
        &format!("@{}", file.display()),
    ]);
    assert_eq!(code, "204", "{body}");
    let (code, body) = curl(&[
        "-i",
        "-XPOST",
        &format!("{base}/write?db=mydb&precision=s&u=ops&p=k3y"),
        "--data-binary",
        "cpu_load_short,host=server01,region=us-west value=0.64 1434055562",
    ]);
    assert_eq!(code, "204", "{body}");
    // Telegraf's influxdb output and the 1.x clients create their database first.
    let (code, body) = curl(&[
        "-XPOST",
        "-u",
        "ops:k3y",
        &format!("{base}/query"),
        "--data-urlencode",
        "q=CREATE DATABASE \"mydb\"",
    ]);
    assert_eq!(code, "200", "q in a form body: {body}");
    let (code, body) = curl(&[
        "-G",
        "-XPOST",
        "-u",
        "ops:k3y",
        &format!("{base}/query"),
        "--data-urlencode",
        "q=CREATE DATABASE \"mydb\"",
    ]);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains(r#""results""#), "{body}");
    let (code, body) = curl(&[
        "-G",
        &format!("{base}/query?u=ops&p=k3y"),
        "--data-urlencode",
        "q=SELECT * FROM x",
    ]);
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("writes only"), "{body}");
    let (code, body) = curl(&["-I", &format!("{base}/ping")]);
    assert_eq!(code, "204", "{body}");
    assert!(
        body.to_ascii_lowercase().contains("x-influxdb-version"),
        "{body}"
    );
    let (code, body) = curl(&[
        "-XPOST",
        &format!("{base}/write?db=mydb&u=ops&p=k3y"),
        "--data-binary",
        "weather,location=x temperature=\"hot\"",
    ]);
    assert_eq!(code, "400", "{body}");
    assert!(body.contains(r#""error":"unable to parse"#), "{body}");
    drop(server);

    let mut got = stored(dir.path());
    got.sort_by_key(|v| v.to_string());
    let mut want = vec![
        json!({"name": "weather_temperature", "value": 82.0,
               "tags": {"db": "mydb", "location": "us-midwest"},
               "timestamp": 1_465_839_830_100u64, "timestamp_ns": 1_465_839_830_100_400_200u64}),
        json!({"name": "weather_temperature", "value": 75.0,
               "tags": {"db": "mydb", "location": "us-east"},
               "timestamp": 1_465_839_830_100u64, "timestamp_ns": 1_465_839_830_100_400_200u64}),
        json!({"name": "weather_count", "value": 3,
               "tags": {"db": "mydb", "location": "us-east"},
               "timestamp": 1_465_839_830_100u64, "timestamp_ns": 1_465_839_830_100_400_200u64}),
        json!({"name": "cpu_load_short", "value": 0.64,
               "tags": {"db": "mydb", "host": "server01", "region": "us-west"},
               "timestamp": 1_434_055_562_000u64}),
    ];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(got, want);
}

/// Over the client's rate: 429 with Retry-After, in each API's error shape,
/// and nothing of the refused request stored.
#[test]
fn rate_limited_writes_get_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--rate-limit", "2"]);
    let mut limited = Vec::new();
    let mut stored = 0;
    for i in 0..20 {
        let path = if i % 2 == 0 {
            "/api/v2/write?bucket=b"
        } else {
            "/write?db=b"
        };
        let r = request(
            server.addr,
            "POST",
            path,
            &[],
            format!("m f={i}").as_bytes(),
        );
        match r.status {
            204 => stored += 1,
            429 => limited.push((path, r)),
            other => panic!("{other}: {}", r.body),
        }
    }
    assert!(limited.len() >= 10, "{} of 20 limited", limited.len());
    for (path, r) in &limited {
        assert!(r.header("retry-after").is_some(), "{path}: {:?}", r.headers);
        let body = r.json();
        if path.starts_with("/api/v2") {
            assert_eq!(body["code"], "too many requests", "{body}");
        } else {
            assert!(
                body["error"].as_str().unwrap().contains("requests/s"),
                "{body}"
            );
        }
    }
    drop(server);
    assert_eq!(consume_all(dir.path(), "check").len(), stored);
}
