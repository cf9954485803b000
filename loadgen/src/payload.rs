//! Request bodies shaped exactly like the C++ load test's, pre-generated so
//! that building JSON never sits on the hot path.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context as _;
use bytes::Bytes;
use flate2::write::GzEncoder;
use rand::Rng;

/// Hosts the C++ generator picked from.
pub const HOSTS: [&str; 5] = ["web1", "web2", "db1", "db2", "cache1"];
/// Regions the C++ generator picked from.
pub const REGIONS: [&str; 4] = ["us-west", "us-east", "eu-west", "ap-south"];

/// Bodies per run: enough variety that the server sees changing values,
/// few enough to stay in cache.
pub const DEFAULT_POOL_SIZE: usize = 256;
/// Memory budget for the pool when bodies are large (many metrics per request).
const POOL_BYTE_BUDGET: usize = 32 * 1024 * 1024;
/// Rough size of one metric in the JSON, to size the pool against the budget.
const APPROX_METRIC_BYTES: usize = 120;

/// One request body with `metrics` metrics, all sharing one host and region.
/// With 3 metrics this is byte-for-byte the C++ shape; otherwise the three
/// kinds repeat in order.
pub fn generate_body<R: Rng + ?Sized>(rng: &mut R, metrics: usize) -> String {
    let host = HOSTS[rng.random_range(0..HOSTS.len())];
    let region = REGIONS[rng.random_range(0..REGIONS.len())];
    let mut body = String::with_capacity(16 + metrics * APPROX_METRIC_BYTES);
    body.push_str(r#"{"metrics":["#);
    for i in 0..metrics {
        if i > 0 {
            body.push(',');
        }
        // Writing into a String cannot fail; the Result is a fmt::Write formality.
        let _ = match i % 3 {
            // `{:.6}` matches C++ std::to_string(double).
            0 => write!(
                body,
                r#"{{"name":"cpu_usage","value":{:.6},"type":"gauge","tags":{{"host":"{host}","region":"{region}"}}}}"#,
                rng.random_range(10.0..90.0_f64)
            ),
            1 => write!(
                body,
                r#"{{"name":"memory_usage","value":{},"type":"gauge","tags":{{"host":"{host}"}}}}"#,
                rng.random_range(1_000_000..=8_000_000_000_u64)
            ),
            _ => write!(
                body,
                r#"{{"name":"requests_total","value":{},"type":"counter","tags":{{"service":"api","host":"{host}"}}}}"#,
                rng.random_range(1..=1000_u32)
            ),
        };
    }
    body.push_str("]}");
    body
}

/// How many bodies to pre-generate for `metrics` metrics per request.
pub fn pool_size(metrics: usize) -> usize {
    (POOL_BYTE_BUDGET / (metrics.max(1) * APPROX_METRIC_BYTES)).clamp(8, DEFAULT_POOL_SIZE)
}

/// Pre-built bodies; handing one out is a refcount bump, not a copy.
#[derive(Debug, Clone)]
pub struct BodyPool {
    bodies: Vec<Bytes>,
}

impl BodyPool {
    /// `size` bodies of `metrics` metrics each, gzip-compressed if asked.
    pub fn generate(size: usize, metrics: usize, gzip: bool) -> anyhow::Result<Self> {
        let mut rng = rand::rng();
        let bodies = (0..size.max(1))
            .map(|_| {
                let json = generate_body(&mut rng, metrics);
                if gzip {
                    gzip_bytes(json.as_bytes()).map(Bytes::from)
                } else {
                    Ok(Bytes::from(json))
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { bodies })
    }

    /// Body number `i`, wrapping around the pool.
    pub fn get(&self, i: u64) -> Bytes {
        // The pool is never empty (generate makes at least one body).
        let index = (i % self.bodies.len() as u64) as usize;
        self.bodies[index].clone()
    }

    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }
}

fn gzip_bytes(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).context("gzip request body")?;
    encoder.finish().context("gzip request body")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::io::Read as _;

    fn metrics_of(body: &str) -> Vec<Value> {
        let value: Value = serde_json::from_str(body).expect("body is valid JSON");
        let object = value.as_object().expect("top level is an object");
        assert_eq!(object.len(), 1, "only the `metrics` key");
        object["metrics"]
            .as_array()
            .expect("metrics is an array")
            .clone()
    }

    #[test]
    fn three_metrics_match_the_cpp_shape() {
        let mut rng = rand::rng();
        for _ in 0..200 {
            let body = generate_body(&mut rng, 3);
            let metrics = metrics_of(&body);
            assert_eq!(metrics.len(), 3);

            let cpu = &metrics[0];
            assert_eq!(cpu["name"], "cpu_usage");
            assert_eq!(cpu["type"], "gauge");
            let value = cpu["value"].as_f64().unwrap();
            assert!((10.0..90.0).contains(&value), "{value}");
            let host = cpu["tags"]["host"].as_str().unwrap();
            assert!(HOSTS.contains(&host));
            assert!(REGIONS.contains(&cpu["tags"]["region"].as_str().unwrap()));
            assert_eq!(cpu["tags"].as_object().unwrap().len(), 2);
            // Six decimals, like std::to_string(double).
            let printed = body.split(r#""value":"#).nth(1).unwrap();
            let printed = printed.split(',').next().unwrap();
            assert_eq!(
                printed.split('.').nth(1).map(str::len),
                Some(6),
                "{printed}"
            );

            let mem = &metrics[1];
            assert_eq!(mem["name"], "memory_usage");
            assert_eq!(mem["type"], "gauge");
            let value = mem["value"].as_u64().expect("integer");
            assert!((1_000_000..=8_000_000_000).contains(&value));
            assert_eq!(mem["tags"], serde_json::json!({ "host": host }));

            let req = &metrics[2];
            assert_eq!(req["name"], "requests_total");
            assert_eq!(req["type"], "counter");
            let value = req["value"].as_u64().expect("integer");
            assert!((1..=1000).contains(&value));
            assert_eq!(
                req["tags"],
                serde_json::json!({ "service": "api", "host": host })
            );
        }
    }

    #[test]
    fn k_metrics_cycle_the_three_kinds() {
        let mut rng = rand::rng();
        for k in [1, 2, 4, 7, 100] {
            let metrics = metrics_of(&generate_body(&mut rng, k));
            assert_eq!(metrics.len(), k);
            let expected = ["cpu_usage", "memory_usage", "requests_total"];
            for (i, metric) in metrics.iter().enumerate() {
                assert_eq!(metric["name"], expected[i % 3]);
            }
        }
    }

    #[test]
    fn values_vary_between_bodies() {
        let pool = BodyPool::generate(32, 3, false).unwrap();
        let distinct: std::collections::HashSet<_> = (0..32).map(|i| pool.get(i)).collect();
        assert!(distinct.len() > 1);
        assert_eq!(pool.get(0), pool.get(32), "index wraps around");
    }

    #[test]
    fn gzip_pool_decompresses_to_json() {
        let pool = BodyPool::generate(4, 3, true).unwrap();
        let mut json = String::new();
        flate2::read::GzDecoder::new(&pool.get(1)[..])
            .read_to_string(&mut json)
            .unwrap();
        assert_eq!(metrics_of(&json).len(), 3);
    }

    #[test]
    fn pool_size_shrinks_for_huge_bodies() {
        assert_eq!(pool_size(3), DEFAULT_POOL_SIZE);
        assert_eq!(pool_size(100_000), 8);
        assert!(pool_size(2_000) < DEFAULT_POOL_SIZE);
    }
}
