//! Malformed HTTP and JSON against the real binary: every row gets its
//! documented status (never a 5xx, never a hang), an error that says what
//! and where, and stores nothing unless it is a valid batch. Afterwards the
//! same server still takes a valid batch. remote_write's UTF-8 names get a
//! table of their own ([`name_rows`]), sent by both protocol versions.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::report::{record, Figures};
use common::{consume_all, cpp_body, Server};

/// Body limit of the server under test: room for 10 000 tags, small enough
/// to hit with a bomb.
const MAX_BODY: usize = 256 * 1024;
/// The server's --request-timeout: a body that never comes costs this.
const REQUEST_TIMEOUT: &str = "3s";

enum Send {
    /// `POST /metrics` with these headers (Content-Length is added) and body.
    Post(Vec<(String, String)>, Vec<u8>),
    /// Bytes written as they are.
    Raw(Vec<u8>),
}

impl Send {
    /// Only a `POST /metrics` may store a batch.
    fn is_post_metrics(&self) -> bool {
        match self {
            Send::Post(..) => true,
            Send::Raw(bytes) => bytes.starts_with(b"POST /metrics "),
        }
    }
}

struct Row {
    name: &'static str,
    send: Send,
    status: u16,
    /// The `error` message must contain this; empty for hyper's own bodiless
    /// answers to unparsable HTTP.
    message: &'static str,
}

fn json() -> Vec<(String, String)> {
    vec![("Content-Type".into(), "application/json".into())]
}

fn with(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn metric(name: &str, value: &str, kind: &str, extra: &str) -> String {
    format!(r#"{{"name":{name},"value":{value},"type":{kind}{extra}}}"#)
}

/// A batch of one metric with the given JSON pieces.
fn one(name: &str, value: &str, kind: &str, extra: &str) -> Vec<u8> {
    format!(r#"{{"metrics":[{}]}}"#, metric(name, value, kind, extra)).into_bytes()
}

/// A valid first metric, then this one: errors must say `metrics[1]`.
fn second(name: &str, value: &str, kind: &str, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"metrics":[{},{}]}}"#,
        metric(r#""ok""#, "1", r#""gauge""#, ""),
        metric(name, value, kind, extra)
    )
    .into_bytes()
}

fn batch_of(n: usize) -> Vec<u8> {
    let m = metric(r#""cpu""#, "1.5", r#""gauge""#, r#","tags":{"h":"a"}"#);
    format!(r#"{{"metrics":[{}]}}"#, vec![m; n].join(",")).into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn post(headers: Vec<(String, String)>, body: Vec<u8>) -> Send {
    Send::Post(headers, body)
}

/// A request head for raw rows; `extra` header lines end in `\r\n`.
fn head(method: &str, extra: &str) -> Vec<u8> {
    format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}").into_bytes()
}

fn raw(parts: &[&[u8]]) -> Send {
    Send::Raw(parts.concat())
}

// One line per row reads as a table; rustfmt would spread it over 700 lines.
#[rustfmt::skip]
fn rows() -> Vec<Row> {
    let valid = one(r#""cpu""#, "1.5", r#""gauge""#, "");
    let valid_len = format!("Content-Length: {}\r\n\r\n", valid.len());
    let chunked = [format!("{:x}\r\n", valid.len()).as_bytes(), &valid, b"\r\n0\r\n\r\n"].concat();
    let ten_k_tags: Vec<String> = (0..10_000).map(|i| format!(r#""k{i}":"v""#)).collect();
    let zip = gzip(&valid);
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let row = |name, send, status, message| Row { name, send, status, message };
    let bad = |name, body: Vec<u8>, message| row(name, post(json(), body), 400, message);
    let gz = || with(&[("Content-Encoding", "gzip")]);
    vec![
        // JSON syntax.
        bad("truncated JSON", br#"{"metrics":[{"name":"x","value":1"#.to_vec(), "invalid JSON in metrics[0]: EOF"),
        bad("truncated in a string", br#"{"metrics":[{"name":"x"#.to_vec(), "invalid JSON in metrics[0].name: EOF"),
        bad("empty body", vec![], "invalid JSON: EOF"),
        bad("100k '[' at the top", "[".repeat(100_000).into_bytes(), "invalid JSON: invalid type: sequence, expected an object"),
        bad("100k '[' as a metric", [br#"{"metrics":["#.as_slice(), "[".repeat(100_000).as_bytes()].concat(), "metrics[0]: invalid type: sequence, expected a metric object"),
        bad("40k '{' as a tag value", one(r#""cpu""#, "1", r#""gauge""#, &format!(r#","tags":{}"#, r#"{"a":"#.repeat(40_000))), "metrics[0].tags.a: invalid type: map, expected a string"),
        bad("100k '[' in an unknown field, unclosed", [br#"{"x":"#.as_slice(), "[".repeat(100_000).as_bytes()].concat(), "invalid JSON in x: EOF"),
        row("100k balanced '[' in unknown fields (ignored)", post(json(), format!(r#"{{"x":{deep},"metrics":[{}]}}"#, metric(r#""cpu""#, "1", r#""gauge""#, &format!(r#","y":{deep}"#))).into_bytes()), 200, ""),
        bad("a request line after the object", [valid.as_slice(), b"POST /metrics HTTP/1.1\r\n\r\n"].concat(), "invalid JSON after the object: trailing characters"),
        bad("not JSON at all", b"metrics=cpu:1".to_vec(), "invalid JSON: expected value at line 1 column 1"),
        // Numbers.
        bad("1e400", one(r#""cpu""#, "1e400", r#""gauge""#, ""), "invalid JSON in metrics[0].value: number out of range"),
        bad("1e309", one(r#""cpu""#, "1e309", r#""gauge""#, ""), "invalid JSON in metrics[0].value: number out of range"),
        bad("-1e400", one(r#""cpu""#, "-1e400", r#""gauge""#, ""), "invalid JSON in metrics[0].value: number out of range"),
        bad("10k-digit integer", one(r#""cpu""#, &"9".repeat(10_000), r#""gauge""#, ""), "invalid JSON in metrics[0].value: number out of range"),
        bad("NaN", one(r#""cpu""#, "NaN", r#""gauge""#, ""), "invalid JSON in metrics[0].value"),
        bad("Infinity", one(r#""cpu""#, "Infinity", r#""gauge""#, ""), "invalid JSON in metrics[0].value"),
        bad("-Infinity", one(r#""cpu""#, "-Infinity", r#""gauge""#, ""), "invalid JSON in metrics[0].value"),
        // The stored form of non-finite values (remote_write's) is no way in here.
        bad("\"StaleNaN\" as a value", one(r#""cpu""#, r#""StaleNaN""#, r#""gauge""#, ""), "metrics[0].value: expected a finite number"),
        bad("\"x\" as a value", one(r#""cpu""#, r#""x""#, r#""gauge""#, ""), "metrics[0].value: invalid type: string \"x\", expected f64"),
        bad("type unknown", one(r#""cpu""#, "1", r#""unknown""#, ""), "metrics[0].type: unknown variant `unknown`"),
        bad("timestamp over u64", one(r#""cpu""#, "1", r#""gauge""#, r#","timestamp":99999999999999999999999"#), "metrics[0].timestamp: invalid type"),
        // Invalid UTF-8.
        bad("invalid UTF-8 in a name", [br#"{"metrics":[{"name":"a"#.as_slice(), b"\xff\xfe", br#"","value":1,"type":"gauge"}]}"#].concat(), "invalid JSON in metrics[0].name: invalid unicode code point"),
        bad("invalid UTF-8 in a tag key", [br#"{"metrics":[{"name":"a","value":1,"type":"gauge","tags":{"k"#.as_slice(), b"\xc3\x28", br#"":"v"}}]}"#].concat(), "invalid JSON in metrics[0].tags: invalid unicode code point"),
        bad("invalid UTF-8 in a tag value", [br#"{"metrics":[{"name":"a","value":1,"type":"gauge","tags":{"k":"v"#.as_slice(), b"\xed\xa0\x80", br#""}}]}"#].concat(), "invalid JSON in metrics[0].tags.k: invalid unicode code point"),
        bad("lone surrogate escape in a name", one(r#""a\ud800""#, "1", r#""gauge""#, ""), "invalid JSON in metrics[0].name"),
        // Duplicate keys.
        bad("duplicate name", br#"{"metrics":[{"name":"a","name":"b","value":1,"type":"gauge"}]}"#.to_vec(), "metrics[0]: duplicate field `name`"),
        bad("duplicate metrics", [br#"{"metrics":[],"metrics":"#.as_slice(), &valid, b"}"].concat(), "invalid JSON: duplicate field `metrics`"),
        // Wrong types, field by field.
        bad("body is an array", b"[]".to_vec(), "invalid JSON: invalid type: sequence, expected an object"),
        bad("body is null", b"null".to_vec(), "invalid JSON: invalid type: null, expected an object"),
        bad("metrics missing", br#"{"data":[]}"#.to_vec(), "missing field `metrics`"),
        bad("metrics not an array", br#"{"metrics":{"name":"x"}}"#.to_vec(), "metrics: invalid type: map, expected a sequence"),
        bad("metrics a string", br#"{"metrics":"cpu"}"#.to_vec(), "metrics: invalid type: string"),
        bad("metrics null", br#"{"metrics":null}"#.to_vec(), "metrics: invalid type: null"),
        bad("metric not an object", br#"{"metrics":[5]}"#.to_vec(), "metrics[0]: invalid type: integer `5`, expected a metric object"),
        bad("metric an array of its fields", br#"{"metrics":[["cpu",1,"gauge"]]}"#.to_vec(), "metrics[0]: invalid type: sequence, expected a metric object"),
        bad("name a number", second("5", "1", r#""gauge""#, ""), "metrics[1].name: invalid type: integer"),
        bad("name null", second("null", "1", r#""gauge""#, ""), "metrics[1].name: invalid type: null"),
        bad("name missing", br#"{"metrics":[{"value":1,"type":"gauge"}]}"#.to_vec(), "metrics[0]: missing field `name`"),
        bad("value a string", second(r#""x""#, r#""1""#, r#""gauge""#, ""), "metrics[1].value: invalid type: string"),
        bad("value a bool", second(r#""x""#, "true", r#""gauge""#, ""), "metrics[1].value: invalid type: boolean"),
        bad("value null", second(r#""x""#, "null", r#""gauge""#, ""), "metrics[1].value: invalid type: null"),
        bad("value an object", second(r#""x""#, "{}", r#""gauge""#, ""), "metrics[1].value: invalid type: map"),
        bad("value missing", br#"{"metrics":[{"name":"x","type":"gauge"}]}"#.to_vec(), "metrics[0]: missing field `value`"),
        bad("type a number", second(r#""x""#, "1", "5", ""), "metrics[1].type: invalid type: integer `5`, expected one of `counter`"),
        bad("type unknown", second(r#""x""#, "1", r#""meter""#, ""), "metrics[1].type: unknown variant `meter`"),
        bad("type upper case", second(r#""x""#, "1", r#""GAUGE""#, ""), "metrics[1].type: unknown variant `GAUGE`"),
        bad("type null", second(r#""x""#, "1", "null", ""), "metrics[1].type: invalid type: null"),
        bad("tags an array", second(r#""x""#, "1", r#""gauge""#, r#","tags":["a"]"#), "metrics[1].tags: invalid type: sequence, expected a map"),
        bad("tags a string", second(r#""x""#, "1", r#""gauge""#, r#","tags":"a=b""#), "metrics[1].tags: invalid type: string"),
        bad("tag value a number", second(r#""x""#, "1", r#""gauge""#, r#","tags":{"a":1}"#), "metrics[1].tags.a: invalid type: integer"),
        bad("tag value null", second(r#""x""#, "1", r#""gauge""#, r#","tags":{"a":null}"#), "metrics[1].tags.a: invalid type: null"),
        bad("timestamp a string", second(r#""x""#, "1", r#""gauge""#, r#","timestamp":"now""#), "metrics[1].timestamp: invalid type: string"),
        bad("timestamp negative", second(r#""x""#, "1", r#""gauge""#, r#","timestamp":-1"#), "metrics[1].timestamp: invalid value: integer `-1`"),
        bad("timestamp a float", second(r#""x""#, "1", r#""gauge""#, r#","timestamp":1.5"#), "metrics[1].timestamp: invalid type: floating point"),
        // Limits.
        bad("10 000 tags", one(r#""cpu""#, "1", r#""gauge""#, &format!(r#","tags":{{{}}}"#, ten_k_tags.join(","))), "metrics[0].tags: at most 64 tags, got 10000"),
        bad("tag key over 255 bytes", one(r#""cpu""#, "1", r#""gauge""#, &format!(r#","tags":{{"{}":"v"}}"#, "k".repeat(256))), "metrics[0].tags.kkkk"),
        bad("empty tag key", one(r#""cpu""#, "1", r#""gauge""#, r#","tags":{"":"v"}"#), "metrics[0].tags.: tag keys must be"),
        bad("control character in a name (escaped)", second(r#""a\u0007b""#, "1", r#""gauge""#, ""), "metrics[1].name: contains a control character"),
        bad("newline in a name", second(r#""a\nb""#, "1", r#""gauge""#, ""), "metrics[1].name: contains a control character"),
        bad("DEL in a name", second(r#""a\u007fb""#, "1", r#""gauge""#, ""), "metrics[1].name: contains a control character"),
        bad("C1 control in a name", second(r#""a\u0085b""#, "1", r#""gauge""#, ""), "metrics[1].name: contains a control character"),
        bad("raw control byte in a name", [br#"{"metrics":[{"name":"a"#.as_slice(), b"\x07", br#"b","value":1,"type":"gauge"}]}"#].concat(), "invalid JSON in metrics[0].name: control character"),
        bad("empty name", second(r#""""#, "1", r#""gauge""#, ""), "metrics[1].name: must not be empty"),
        bad("name over 255 bytes", one(&format!(r#""{}""#, "n".repeat(256)), "1", r#""gauge""#, ""), "metrics[0].name: longer than 255 bytes"),
        bad("empty batch", br#"{"metrics":[]}"#.to_vec(), "metrics: the batch is empty"),
        row("exactly 1000 metrics", post(json(), batch_of(1000)), 200, ""),
        bad("1001 metrics", batch_of(1001), "metrics: at most 1000 metrics per request, got 1001"),
        // Content-Type and Content-Encoding.
        row("Content-Type text/plain", post(with(&[("Content-Type", "text/plain")]), valid.clone()), 415, "Content-Type: expected application/json"),
        row("Content-Type form", post(with(&[("Content-Type", "application/x-www-form-urlencoded")]), valid.clone()), 415, "Content-Type: expected application/json"),
        row("Content-Type missing (taken as JSON)", post(vec![], valid.clone()), 200, ""),
        row("gzip, valid", post(gz(), zip.clone()), 200, ""),
        row("gzip header, garbage body", post(gz(), b"this is not gzip".to_vec()), 400, "body: Content-Encoding is gzip but the body is not valid gzip"),
        row("truncated gzip", post(gz(), zip[..zip.len() / 2].to_vec()), 400, "body: Content-Encoding is gzip but the body is not valid gzip"),
        row("gzip bomb past --max-body", post(gz(), gzip(&vec![b' '; 8 * MAX_BODY])), 413, "body: larger than the limit of 262144 bytes"),
        row("Content-Encoding br", post(with(&[("Content-Encoding", "br")]), valid.clone()), 415, "Content-Encoding: \"br\" is not supported"),
        // Body size and Content-Length.
        row("body over --max-body", post(json(), vec![b' '; MAX_BODY + 1]), 413, "body: larger than the limit"),
        row("Content-Length over --max-body, no body sent", raw(&[&head("POST", "Content-Length: 5000000\r\n\r\n")]), 413, "body: larger than the limit"),
        row("Content-Length 99999999999999999999", raw(&[&head("POST", "Content-Length: 99999999999999999999\r\n\r\n"), &valid]), 400, ""),
        row("Content-Length -1", raw(&[&head("POST", "Content-Length: -1\r\n\r\n"), &valid]), 400, ""),
        row("two different Content-Lengths", raw(&[&head("POST", "Content-Length: 10\r\nContent-Length: 11\r\n\r\n"), &valid]), 400, ""),
        row("Content-Length beyond the body sent", raw(&[&head("POST", &format!("Content-Length: {}\r\n\r\n", valid.len() + 100)), &valid]), 408, ""),
        // Transfer-Encoding. With Content-Length too, hyper follows RFC 9112
        // 6.3: chunked wins (the 4 bytes Content-Length claims are ignored).
        row("Content-Length and Transfer-Encoding both", raw(&[&head("POST", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"), &chunked]), 200, ""),
        row("Transfer-Encoding gzip, chunked", raw(&[&head("POST", "Transfer-Encoding: gzip, chunked\r\n\r\n"), &chunked]), 400, "Transfer-Encoding: only chunked is supported"),
        row("Transfer-Encoding chunked twice", raw(&[&head("POST", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), &chunked]), 400, "Transfer-Encoding: only chunked is supported"),
        row("Transfer-Encoding xchunked", raw(&[&head("POST", "Transfer-Encoding: xchunked\r\n\r\n"), &chunked]), 400, ""),
        row("chunk size not hex", raw(&[&head("POST", "Transfer-Encoding: chunked\r\n\r\n"), b"zz\r\n", &valid, b"\r\n0\r\n\r\n"]), 400, "body: could not be read"),
        // Header floods: hyper caps the count (100), ingest the bytes.
        row("200 headers", raw(&[&head("POST", &(0..200).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()), valid_len.as_bytes(), &valid]), 431, ""),
        row("one 100 KB header", raw(&[&head("POST", &format!("X-Big: {}\r\n", "a".repeat(100_000))), valid_len.as_bytes(), &valid]), 431, "headers: "),
        row("90 headers of 200 bytes", raw(&[&head("POST", &(0..90).map(|i| format!("X-H{i}: {}\r\n", "v".repeat(200))).collect::<String>()), valid_len.as_bytes(), &valid]), 431, "headers: "),
        // Smuggling-ish junk.
        row("header line without a colon", raw(&[&head("POST", "this is not a header\r\n"), valid_len.as_bytes(), &valid]), 400, ""),
        row("folded header line", raw(&[&head("POST", "X-A: a\r\n continued\r\n"), valid_len.as_bytes(), &valid]), 400, ""),
        row("NUL in a header value", raw(&[&head("POST", "X-A: a\0b\r\n"), valid_len.as_bytes(), &valid]), 400, ""),
        row("junk request line", raw(&[b"GARBAGE\r\n\r\n"]), 400, ""),
        row("HTTP/7.0", raw(&[b"POST /metrics HTTP/7.0\r\nHost: x\r\n", valid_len.as_bytes(), &valid]), 400, ""),
        row("a rejected request, then junk", raw(&[&head("POST", "Content-Length: 14\r\n\r\n"), br#"{"metrics":[]}"#, b"\x16\x03\x01junk\r\n\r\n"]), 400, "metrics: the batch is empty"),
        // Other methods and GET with a body: nothing is stored.
        row("GET /health with a body", raw(&[b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", valid_len.as_bytes(), &valid]), 200, ""),
        row("GET /metrics with a batch as body", raw(&[&head("GET", &valid_len), &valid]), 200, ""),
        row("unknown method", raw(&[&head("FROB", &valid_len), &valid]), 405, ""),
        row("PUT", raw(&[&head("PUT", &valid_len), &valid]), 405, ""),
        row("DELETE", raw(&[&head("DELETE", "\r\n")]), 405, ""),
        row("POST to another path", raw(&[b"POST /metrics/../admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", valid_len.as_bytes(), &valid]), 404, "no such endpoint"),
    ]
}

/// Status and body of the first answer on a fresh connection. A server that
/// answers before reading everything may reset the connection under our
/// write: that is fine as long as its answer arrived.
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    let _ = s.write_all(bytes);
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
    let head_len = text.find("\r\n\r\n").map_or(text.len(), |i| i + 4);
    Ok((status, text[head_len..].to_string()))
}

fn send(addr: SocketAddr, what: &Send) -> std::io::Result<(u16, String)> {
    match what {
        Send::Raw(bytes) => send_raw(addr, bytes),
        Send::Post(headers, body) => {
            let mut bytes = head("POST", "");
            for (k, v) in headers {
                bytes.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
            bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            bytes.extend_from_slice(body);
            send_raw(addr, &bytes)
        }
    }
}

fn valid_batch(s: &Server, seq: u64) {
    let r = s.post(&cpp_body("before-and-after", seq), &[]);
    assert_eq!(r.status, 200, "a valid batch: {r:?}");
}

fn batches_stored(s: &Server) -> u64 {
    s.get("/stats").json()["batches_processed"]
        .as_u64()
        .expect("batches_processed in /stats")
}

#[test]
fn malformed_http_and_json_get_a_clear_4xx_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let max_body = MAX_BODY.to_string();
    let mut s = Server::start(
        dir.path(),
        &[
            "--max-body",
            &max_body,
            "--request-timeout",
            REQUEST_TIMEOUT,
            "--rate-limit",
            "0",
        ],
    );
    valid_batch(&s, 0);
    let mut acknowledged = 1u64;

    let rows = rows();
    let mut failures = Vec::new();
    let mut server_errors = 0;
    for row in &rows {
        let before = batches_stored(&s);
        let (status, body) = match send(s.addr, &row.send) {
            Ok(answer) => answer,
            Err(e) => {
                failures.push(format!("{}: no answer: {e}", row.name));
                continue;
            }
        };
        if status >= 500 {
            server_errors += 1;
        }
        if status != row.status {
            failures.push(format!(
                "{}: status {status}, want {}: {body:.300}",
                row.name, row.status
            ));
            continue;
        }
        if (400..500).contains(&status) && !row.message.is_empty() {
            let message: Option<String> = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string));
            match message {
                Some(m) if m.contains(row.message) => {}
                other => failures.push(format!(
                    "{}: error {other:?} should contain {:?}",
                    row.name, row.message
                )),
            }
        }
        let stored = batches_stored(&s) - before;
        let want = u64::from(status == 200 && row.send.is_post_metrics());
        acknowledged += want;
        if stored != want {
            failures.push(format!(
                "{}: {stored} batches stored, want {want}",
                row.name
            ));
        }
        if let Ok(Some(exit)) = s.child.try_wait() {
            panic!("the server exited ({exit}) after {:?}", row.name);
        }
    }

    // The same server, still healthy, still takes a valid batch.
    valid_batch(&s, 1);
    acknowledged += 1;
    assert_eq!(s.get("/health").status, 200);
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert_eq!(server_errors, 0);

    // The log holds exactly the accepted batches, nothing from the table's rejects.
    assert_eq!(s.terminate(Duration::from_secs(15)).code(), Some(0));
    let lines = consume_all(dir.path(), "check");
    let lines: common::Lines = std::sync::Arc::new(std::sync::Mutex::new(lines));
    let batches = common::batches(&lines);
    assert_eq!(batches.len() as u64, acknowledged, "batches in the log");

    record(Figures {
        scenario: "malformed HTTP and JSON",
        checks: "each malformed request gets its documented 4xx with a message naming what and where, stores nothing, never a 5xx, hang or crash",
        acknowledged,
        lost: 0,
        duplicated: 0,
        recovery_ms: 0,
        detail: format!("{} cases: {server_errors} 5xx, 0 crashes, 0 hangs", rows.len()),
    });
}

/// One remote_write row: a series' labels (`__name__` among them), sent by
/// both protocol versions, and what the answer must be.
struct NameRow {
    name: &'static str,
    labels: Vec<(String, String)>,
    /// 204: stored as sent; 400: refused, the error containing `message`.
    status: u16,
    message: &'static str,
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("snappy compresses any input")
}

fn remote_write_v1(labels: &[(String, String)], ts: i64) -> Vec<u8> {
    use prost::Message as _;
    let series = prompb::v1::TimeSeries {
        labels: labels
            .iter()
            .map(|(name, value)| prompb::v1::Label {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        samples: vec![prompb::v1::Sample {
            value: 1.0,
            timestamp: ts,
        }],
        ..Default::default()
    };
    let request = prompb::v1::WriteRequest {
        timeseries: vec![series],
        metadata: vec![],
    };
    snappy(&request.encode_to_vec())
}

fn remote_write_v2(labels: &[(String, String)], ts: i64) -> Vec<u8> {
    use prost::Message as _;
    let mut symbols = vec![String::new()];
    let mut labels_refs = Vec::new();
    for (name, value) in labels {
        for s in [name, value] {
            labels_refs.push(symbols.len() as u32);
            symbols.push(s.clone());
        }
    }
    let series = prompb::v2::TimeSeries {
        labels_refs,
        samples: vec![prompb::v2::Sample {
            value: 2.0,
            timestamp: ts,
            start_timestamp: 0,
        }],
        ..Default::default()
    };
    let request = prompb::v2::Request {
        symbols,
        timeseries: vec![series],
    };
    snappy(&request.encode_to_vec())
}

// One line per row reads as a table.
#[rustfmt::skip]
fn name_rows() -> Vec<NameRow> {
    let row = |name, labels: &[(&str, &str)], status, message| NameRow {
        name,
        labels: labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        status,
        message,
    };
    let at_limit = format!("{}x", "é".repeat(127));
    let over = format!("{}xy", "é".repeat(127));
    let at = |labels: Vec<(String, String)>| NameRow { name: "names of 255 bytes (two-byte characters)", labels, status: 204, message: "" };
    let over_row = |labels: Vec<(String, String)>| NameRow { name: "a label name of 256 bytes", labels, status: 400, message: "over 255 bytes" };
    vec![
        row("dotted OpenTelemetry names", &[("__name__", "http.server.request.duration"), ("http.request.method", "GET"), ("service.name", "checkout")], 204, ""),
        row("non-ASCII names", &[("__name__", "température_°C"), ("städte", "Zürich"), ("日本", "東京")], 204, ""),
        row("emoji names", &[("__name__", "🔥_total"), ("🦀", "ferris")], 204, ""),
        row("a metric name of only __, a label named __", &[("__", "x"), ("__name__", "__")], 204, ""),
        row("Prometheus 3's reserved __type__ and __unit__", &[("__name__", "rpc_seconds"), ("__type__", "histogram"), ("__unit__", "seconds")], 204, ""),
        row("PromQL punctuation in names", &[("\"q\"", "v"), ("__name__", "a{b=\"c\"}"), ("a b", "v")], 204, ""),
        at(vec![("__name__".into(), at_limit.clone()), (at_limit.clone(), "v".into())]),
        // Refused: control characters cannot be stored in every store
        // (line protocol cannot escape a newline in a key) and would act on
        // a terminal printing them.
        row("newline in a metric name", &[("__name__", "http.server\nduration")], 400, "control character in metric name"),
        row("tab in a dotted label name", &[("__name__", "x"), ("service\tname", "v")], 400, "control character"),
        row("terminal escape in a label name", &[("\u{1b}[31m", "v"), ("__name__", "x")], 400, "control character"),
        row("C1 control (NEL) in a label name", &[("__name__", "x"), ("a\u{85}", "v")], 400, "control character"),
        over_row(vec![("__name__".into(), "x".into()), (over, "v".into())]),
        row("empty label name", &[("", "v"), ("__name__", "x")], 400, "invalid label name \"\": empty"),
        row("labels in UTF-16 order, not by bytes", &[("__name__", "x"), ("🦀", "1"), ("Ａ", "2")], 400, "labels not sorted"),
        row("a dotted name twice", &[("__name__", "x"), ("service.name", "a"), ("service.name", "b")], 400, "duplicate label \"service.name\""),
    ]
}

/// UTF-8 metric and label names against the real binary's remote_write
/// endpoint, 1.0 and 2.0: each row gets its documented answer, and the log
/// holds exactly the accepted rows' series, names and tags as sent.
#[test]
fn remote_write_utf8_names_get_their_documented_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &["--rate-limit", "0"]);
    let url_path = "/api/v1/write";
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let rows = name_rows();
    let mut failures = Vec::new();
    for row in &rows {
        let versions = [
            (
                "1.0",
                "application/x-protobuf",
                remote_write_v1(&row.labels, ts),
            ),
            (
                "2.0",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                remote_write_v2(&row.labels, ts),
            ),
        ];
        for (version, content_type, body) in versions {
            let r = common::request(
                s.addr,
                "POST",
                url_path,
                &[
                    ("Content-Type", content_type),
                    ("Content-Encoding", "snappy"),
                ],
                &body,
            );
            let error = if r.body.is_empty() {
                String::new()
            } else {
                r.json()["error"].as_str().unwrap_or_default().to_string()
            };
            if r.status != row.status || !error.contains(row.message) {
                failures.push(format!(
                    "{} ({version}): status {}, want {}; error {error:?} should contain {:?}",
                    row.name, r.status, row.status, row.message
                ));
            }
        }
    }
    assert_eq!(s.get("/health").status, 200);
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(s.terminate(Duration::from_secs(15)).code(), Some(0));

    // Each accepted row twice (1.0 value 1, 2.0 value 2), in order.
    let mut want = Vec::new();
    for row in rows.iter().filter(|r| r.status == 204) {
        let metric = &row.labels.iter().find(|(n, _)| n == "__name__").unwrap().1;
        let tags: serde_json::Map<String, serde_json::Value> = row
            .labels
            .iter()
            .filter(|(n, _)| n != "__name__")
            .map(|(n, v)| (n.clone(), serde_json::Value::from(v.as_str())))
            .collect();
        for value in [1.0, 2.0] {
            want.push(serde_json::json!({"name": metric, "tags": tags, "value": value}));
        }
    }
    let got: Vec<serde_json::Value> = consume_all(dir.path(), "check")
        .iter()
        .map(|l| serde_json::json!({"name": l["name"], "tags": l["tags"], "value": l["value"]}))
        .collect();
    assert_eq!(got, want);
}
