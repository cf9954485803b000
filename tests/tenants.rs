//! Tenants end to end: two clients bound to a tenant each (API keys with
//! rules) and one that names tenants with `*`, through one `serve` (every
//! protocol), read back with `consume` (stdout), and delivered by one
//! `consume --sink remote-write --tenant-header X-Scope-OrgID` (and one
//! `--sink influx`) into the scripted store, which records each request's
//! headers: every batch carries one tenant's samples and that tenant's
//! header. Refusals (a tenant a key may not use, a client without a rule,
//! a header that is no tenant id) store nothing; the per-tenant counters of
//! `/metrics` and `/stats` match what was sent; `--tenant-rate-limit` and
//! `--partition-by tenant` do what they say.
//!
//! Every sample's value says which tenant sent it: `1000 × code + n`, with
//! code 0 for no tenant, 1 acme, 2 beta, 3 gamma, so a store request can be
//! checked sample by sample against the header it came with.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::fake_store::FakeStore;
use common::sink::{remote_write_args, rw_body, Consumer, Series};
use common::{consume_all, request, Response, Server};

const KEYS: [&str; 4] = [
    "--api-key=web:web-secret",
    "--api-key=db:db-secret",
    "--api-key=ops:ops-secret",
    "--api-key=nobody:nobody-secret",
];
const RULES: [&str; 3] = ["--tenant=web=acme", "--tenant=db=beta", "--tenant=ops=*"];

fn code(tenant: Option<&str>) -> u64 {
    match tenant {
        None => 0,
        Some("acme") => 1,
        Some("beta") => 2,
        Some("gamma") => 3,
        Some(other) => panic!("no tenant {other} was sent"),
    }
}

fn tenant_of_value(v: f64) -> u64 {
    (v as u64) / 1000
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// What one client sent under one tenant: (name, value) of each sample.
struct Sent {
    samples: Vec<(String, f64)>,
}

/// Headers of a request by `key` (a secret), naming `tenant` if given.
fn headers<'a>(
    key: &'a str,
    tenant: Option<&'a str>,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("Authorization", key)];
    if let Some(t) = tenant {
        h.push(("X-Scope-OrgID", t));
    }
    h.extend_from_slice(extra);
    h
}

/// A `POST /metrics` of `cpu{host="a"}` (the series every tenant sends)
/// and `name{host="a"}`, values from `base`.
fn json(
    server: &Server,
    key: &str,
    tenant: Option<&str>,
    name: &str,
    base: f64,
) -> (Response, Sent) {
    let body = format!(
        r#"{{"metrics":[{{"name":"cpu","value":{base},"type":"gauge","tags":{{"host":"a"}}}},
            {{"name":"{name}","value":{},"type":"gauge","tags":{{"host":"a"}}}}]}}"#,
        base + 1.0
    );
    let h = headers(key, tenant, &[("Content-Type", "application/json")]);
    let r = request(server.addr, "POST", "/metrics", &h, body.as_bytes());
    let samples = vec![("cpu".into(), base), (name.into(), base + 1.0)];
    (r, Sent { samples })
}

fn remote_write(server: &Server, key: &str, tenant: Option<&str>, base: f64) -> (Response, Sent) {
    let t = now_ms();
    let series: Vec<Series> = vec![(
        "up".into(),
        vec![("job".into(), "x".into())],
        vec![(base, t - 3), (base + 1.0, t - 2), (base + 2.0, t - 1)],
    )];
    let h = headers(
        key,
        tenant,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
        ],
    );
    let r = request(server.addr, "POST", "/api/v1/write", &h, &rw_body(&series));
    let samples = (0..3).map(|i| ("up".into(), base + f64::from(i))).collect();
    (r, Sent { samples })
}

fn line_protocol(server: &Server, key: &str, tenant: Option<&str>, base: f64) -> (Response, Sent) {
    let body = format!("lp,host=a f1={base},f2={}\n", base + 1.0);
    let h = headers(key, tenant, &[]);
    let r = request(
        server.addr,
        "POST",
        "/api/v2/write?bucket=b",
        &h,
        body.as_bytes(),
    );
    let samples = vec![("lp_f1".into(), base), ("lp_f2".into(), base + 1.0)];
    (r, Sent { samples })
}

fn otlp(server: &Server, key: &str, tenant: Option<&str>, base: f64) -> (Response, Sent) {
    let ns = now_ms() as u128 * 1_000_000;
    let body = format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[
            {{"name":"otel.g","gauge":{{"dataPoints":[{{"asDouble":{base},"timeUnixNano":"{ns}"}}]}}}}]}}]}}]}}"#
    );
    let h = headers(key, tenant, &[("Content-Type", "application/json")]);
    let r = request(server.addr, "POST", "/v1/metrics", &h, body.as_bytes());
    (
        r,
        Sent {
            samples: vec![("otel.g".into(), base)],
        },
    )
}

fn ok(what: &str, (r, sent): (Response, Sent)) -> Sent {
    assert!((200..300).contains(&r.status), "{what}: {r:?}");
    sent
}

/// Sorted (tenant code, name, value) of what was sent.
fn expected(sent: &[(Option<&str>, Sent)]) -> Vec<(u64, String, u64)> {
    let mut v: Vec<(u64, String, u64)> = sent
        .iter()
        .flat_map(|(t, s)| {
            s.samples
                .iter()
                .map(move |(n, v)| (code(*t), n.clone(), *v as u64))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn two_tenants_reach_the_store_each_under_its_own_header() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args: Vec<&str> = KEYS.iter().chain(RULES.iter()).copied().collect();
    args.extend(["--rate-limit", "0"]);
    let server = Server::start(&data, &args);
    let (web, db, ops, nobody) = (
        "Bearer web-secret",
        "Bearer db-secret",
        "Bearer ops-secret",
        "Bearer nobody-secret",
    );

    // Bound clients, every protocol; the same series (cpu{host="a"},
    // up{job="x"}) from both tenants.
    let sent: Vec<(Option<&str>, Sent)> = vec![
        (
            Some("acme"),
            ok("web json", json(&server, web, None, "web_only", 1000.0)),
        ),
        (
            Some("acme"),
            ok("web rw", remote_write(&server, web, None, 1010.0)),
        ),
        (
            Some("acme"),
            ok("web lp", line_protocol(&server, web, None, 1020.0)),
        ),
        (
            Some("acme"),
            ok("web otlp", otlp(&server, web, None, 1030.0)),
        ),
        // Naming its own tenant is fine.
        (
            Some("acme"),
            ok(
                "web json acme",
                json(&server, web, Some("acme"), "web_named", 1040.0),
            ),
        ),
        (
            Some("beta"),
            ok("db json", json(&server, db, None, "db_only", 2000.0)),
        ),
        (
            Some("beta"),
            ok("db rw", remote_write(&server, db, None, 2010.0)),
        ),
        // `*`: any tenant by header, none without.
        (
            Some("acme"),
            ok(
                "ops acme",
                json(&server, ops, Some("acme"), "ops_acme", 1100.0),
            ),
        ),
        (
            Some("gamma"),
            ok(
                "ops gamma",
                remote_write(&server, ops, Some("gamma"), 3000.0),
            ),
        ),
        (
            None,
            ok("ops none", json(&server, ops, None, "ops_none", 10.0)),
        ),
    ];

    // Refusals, in every protocol's shape, storing nothing (values 9xxx
    // and names `refused*` must never be read back).
    let refusals: Vec<(&str, Response, u16)> = vec![
        (
            "web names beta (json)",
            json(&server, web, Some("beta"), "refused_json", 9000.0).0,
            403,
        ),
        (
            "web names beta (rw)",
            remote_write(&server, web, Some("beta"), 9010.0).0,
            403,
        ),
        (
            "web names beta (lp)",
            line_protocol(&server, web, Some("beta"), 9020.0).0,
            403,
        ),
        (
            "web names beta (otlp)",
            otlp(&server, web, Some("beta"), 9030.0).0,
            403,
        ),
        (
            "nobody has no rule",
            json(&server, nobody, Some("acme"), "refused_norule", 9040.0).0,
            403,
        ),
        (
            "several tenants",
            json(&server, ops, Some("acme|beta"), "refused_multi", 9050.0).0,
            400,
        ),
        (
            "not a tenant id",
            json(&server, ops, Some(".."), "refused_dots", 9060.0).0,
            400,
        ),
    ];
    for (what, r, status) in &refusals {
        assert_eq!(r.status, *status, "{what}: {r:?}");
    }
    let json403 = &refusals[0].1;
    assert_eq!(
        json403.json()["error"],
        "client web is bound to tenant acme: X-Scope-OrgID beta is not its tenant"
    );
    assert!(
        refusals[2].1.body.contains(r#""code":"forbidden""#),
        "{:?}",
        refusals[2].1
    );
    assert!(
        refusals[4]
            .1
            .body
            .contains("client nobody has no tenant rule"),
        "{:?}",
        refusals[4].1
    );
    assert!(
        refusals[5]
            .1
            .body
            .contains("several tenants joined with `|`"),
        "{:?}",
        refusals[5].1
    );

    // Read back with consume: every sample under its tenant, nothing refused.
    let lines = consume_all(&data, "readback");
    let mut got: Vec<(u64, String, u64)> = lines
        .iter()
        .map(|l| {
            let tenant = l
                .get("tenant")
                .map(|t| t.as_str().expect("a string tenant"));
            let value = l["value"].as_f64().expect("a number");
            assert_eq!(code(tenant), tenant_of_value(value), "{l}");
            (
                code(tenant),
                l["name"].as_str().unwrap().to_string(),
                value as u64,
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, expected(&sent));
    assert!(lines.iter().all(|l| l["value"].as_f64().unwrap() < 9000.0));

    // Per-tenant counters: requests admitted and samples stored.
    let stats = server.get("/stats").json();
    let metrics = server.get("/metrics").body;
    let mut want: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (t, s) in &sent {
        if let Some(t) = t {
            let e = want.entry(t).or_default();
            e.0 += 1;
            e.1 += s.samples.len() as u64;
        }
    }
    assert_eq!(want["acme"], (6, 12));
    for (tenant, (requests, samples)) in &want {
        let s = &stats["tenants"][tenant];
        assert_eq!(s["requests"], *requests, "{tenant}: {stats}");
        assert_eq!(s["samples_received"], *samples, "{tenant}: {stats}");
        for line in [
            format!("metricstream_tenant_requests_total{{tenant=\"{tenant}\"}} {requests}"),
            format!("metricstream_tenant_samples_received_total{{tenant=\"{tenant}\"}} {samples}"),
        ] {
            assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
        }
    }
    assert_eq!(
        stats["tenants"].as_object().unwrap().len(),
        want.len(),
        "{stats}"
    );

    // Into the scripted store, one tenant per batch and its header.
    let store = FakeStore::start(Box::new(|_| Some((204, vec![]))));
    let mut args = remote_write_args(&store.url());
    args.extend(["--tenant-header", "X-Scope-OrgID", "--exit-at-end"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut consumer = Consumer::start(&data, "to-store", &args);
    assert!(
        consumer.wait(Duration::from_secs(60)).success(),
        "{}",
        consumer.log_text()
    );
    assert!(
        !consumer.log_text().contains("mixes tenants"),
        "{}",
        consumer.log_text()
    );
    let received = store.received.lock().unwrap().clone();
    let mut delivered = Vec::new();
    let mut cpu_under = Vec::new();
    for r in &received {
        let named = r.header("x-scope-orgid");
        assert!(named.len() <= 1, "{named:?}");
        let tenant = named.first().copied();
        for p in r.decoded().points {
            let common::fake_store::What::Float { bits, .. } = p.what else {
                panic!("{p:?}");
            };
            let value = f64::from_bits(bits);
            assert_eq!(
                tenant_of_value(value),
                code(tenant),
                "a sample of another tenant in a batch sent as {tenant:?}"
            );
            let name = p.series["__name__"].clone();
            if name == "cpu" {
                cpu_under.push((tenant, p.series.clone()));
            }
            delivered.push((code(tenant), name, value as u64));
        }
    }
    delivered.sort();
    assert_eq!(delivered, expected(&sent));
    // One series name and labels, two tenants: two series, each under its
    // own header.
    cpu_under.sort();
    cpu_under.dedup();
    let under: Vec<Option<&str>> = cpu_under.iter().map(|(t, _)| *t).collect();
    assert_eq!(under, [None, Some("acme"), Some("beta")]);
    assert!(cpu_under.windows(2).all(|w| w[0].1 == w[1].1));

    // The influx sink carries the header the same way.
    let influx = FakeStore::start(Box::new(|_| Some((204, vec![]))));
    let url = format!("http://{}/write", influx.addr);
    let args = [
        "--sink",
        "influx",
        "--url",
        &url,
        "--influx-db",
        "d",
        "--linger",
        "50ms",
        "--tenant-header",
        "X-Scope-OrgID",
        "--exit-at-end",
    ];
    let mut consumer = Consumer::start(&data, "to-influx", &args);
    assert!(
        consumer.wait(Duration::from_secs(60)).success(),
        "{}",
        consumer.log_text()
    );
    let mut lines = 0;
    for r in influx.received.lock().unwrap().iter() {
        let named = r.header("x-scope-orgid");
        assert!(named.len() <= 1, "{named:?}");
        let tenant = named.first().copied();
        for line in String::from_utf8_lossy(&r.body).lines() {
            // `name,tags value=V TIMESTAMP`
            let value: f64 = line
                .split_once(" value=")
                .and_then(|(_, rest)| rest.split(' ').next())
                .and_then(|v| v.trim_end_matches(['i', 'u']).parse().ok())
                .unwrap_or_else(|| panic!("{line}"));
            assert_eq!(
                tenant_of_value(value),
                code(tenant),
                "{line} sent as {tenant:?}"
            );
            lines += 1;
        }
    }
    assert_eq!(lines, expected(&sent).len());
}

/// `--tenant-rate-limit`: a tenant over its rate gets 429 with Retry-After
/// naming the tenant; another tenant of the same client is not held back.
#[test]
fn a_tenant_over_its_rate_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--api-key=ops:ops-secret",
            "--tenant=ops=*",
            "--rate-limit",
            "0",
            "--tenant-rate-limit",
            "1",
        ],
    );
    let key = "Bearer ops-secret";
    ok("first", json(&server, key, Some("acme"), "a", 1000.0));
    let (r, _) = json(&server, key, Some("acme"), "b", 1002.0);
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.header("Retry-After").is_some(), "{r:?}");
    assert!(r.body.contains("tenant acme: over 1 requests/s"), "{r:?}");
    ok(
        "another tenant",
        json(&server, key, Some("beta"), "c", 2000.0),
    );
    let stats = server.get("/stats").json();
    assert_eq!(stats["tenants"]["acme"]["rate_limited"], 1, "{stats}");
    assert_eq!(stats["tenants"]["acme"]["samples_received"], 2, "{stats}");
    assert_eq!(stats["rate_limited_requests"], 1, "{stats}");
    // What got the 429 was not stored.
    let lines = consume_all(&server.data_dir, "g");
    assert_eq!(lines.len(), 4, "{lines:?}");
}

/// `--partition-by tenant`: a tenant's requests land in its partition,
/// whichever client sent them; no tenant: by client, as before.
#[test]
fn partition_by_tenant_keys_by_the_tenant() {
    use metricstream::queue::partitioner::partition_for;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--partition-by", "tenant", "--partitions", "8"],
    );
    // An open server: any client may name any tenant.
    for (i, client) in ["c1", "c2", "c3", "c4", "c5"].iter().enumerate() {
        let base = 1000.0 + 10.0 * i as f64;
        ok(client, remote_write(&server, client, Some("acme"), base));
        ok(
            client,
            line_protocol(&server, client, Some("beta"), 1000.0 + base),
        );
        ok(
            client,
            json(&server, client, None, "plain", 10.0 * i as f64),
        );
    }
    let lines = consume_all(&server.data_dir, "g");
    assert_eq!(lines.len(), 5 * (3 + 2 + 2));
    for l in &lines {
        let key = match l.get("tenant") {
            Some(t) => t.as_str().unwrap(),
            None => l["client_id"].as_str().unwrap(),
        };
        assert_eq!(l["partition"], partition_for(key.as_bytes(), 8), "{l}");
    }
}
