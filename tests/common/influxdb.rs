//! A real InfluxDB 1.6 (Debian package `influxdb`, installed by
//! scripts/deps.sh) for the influx sink tests: its own temp dir for meta,
//! data and WAL, free loopback ports, reporting and the internal monitor
//! off; writes of raw bodies, and readers of what it holds through
//! `/query` (points, every field value, series keys).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::broker::free_port;
use super::{request, wait_for, Response};

fn binary() -> PathBuf {
    let path = std::env::var_os("METRICSTREAM_INFLUXD")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("influxd"))
                    .find(|p| p.exists())
            })
        });
    path.unwrap_or_else(|| {
        panic!(
            "the influx sink tests need influxd 1.6 (Debian package influxdb): run \
             ./scripts/test.sh (its scripts/deps.sh installs it) or `apt-get install influxdb`, \
             or set METRICSTREAM_INFLUXD"
        )
    })
}

pub struct InfluxDb {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Points by series (measurement and tags): time in ms → value as JSON.
pub type Points = BTreeMap<(String, BTreeMap<String, String>), BTreeMap<i64, serde_json::Value>>;

impl InfluxDb {
    /// Starts influxd and creates database `db`.
    pub fn start(database: &str) -> InfluxDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let rpc = format!("127.0.0.1:{}", free_port());
        let d = dir.path().display();
        let config = format!(
            "reporting-disabled = true\nbind-address = \"{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  enabled = true\n  bind-address = \"{addr}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n"
        );
        let path = dir.path().join("influxdb.conf");
        std::fs::write(&path, config).expect("write the config");
        let mut child = Command::new(binary())
            .arg("run")
            .arg("-config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start influxd");
        wait_for("influxd /ping", Duration::from_secs(30), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("influxd exited at start: {status}");
            }
            request(addr, "GET", "/ping", &[], b"").status == 204
        });
        let db = InfluxDb {
            child,
            addr,
            _dir: dir,
        };
        db.create_database(database);
        db
    }

    pub fn create_database(&self, database: &str) {
        let q = format!("CREATE DATABASE \"{}\"", db_arg(database));
        let r = request(
            self.addr,
            "POST",
            &format!("/query?q={}", encode(&q)),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "CREATE DATABASE: {r:?}");
    }

    /// `POST /write?db=…` (precision ns) of `body` as it is.
    pub fn write(&self, db: &str, body: &[u8]) -> Response {
        let path = format!("/write?db={}", encode(db));
        let r = request(self.addr, "POST", &path, &[], body);
        assert!(r.status != 0, "InfluxDB did not answer a write");
        r
    }

    /// The JSON answer to InfluxQL `q` in `db`, times in ns; a query
    /// error fails the test.
    pub fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let r = request(
            self.addr,
            "GET",
            &format!("/query?db={}&epoch=ns&q={}", encode(db), encode(q)),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "{q}: {r:?}");
        let j = r.json();
        assert!(j["results"][0].get("error").is_none(), "{q}: {j}");
        j
    }

    /// `SHOW SERIES`: each series key as InfluxDB keeps it (escaped).
    pub fn series_keys(&self, db: &str) -> Vec<String> {
        let j = self.query(db, "SHOW SERIES");
        let mut keys: Vec<String> = j["results"][0]["series"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
            .filter_map(|row| row[0].as_str().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    /// Every field value of every point in `db` (`SELECT * … GROUP BY *`,
    /// times in ns). One query per measurement: across measurements a
    /// field of one named like a tag of another would read as that tag.
    pub fn fields(&self, db: &str) -> Vec<FieldPoint> {
        let j = self.query(db, "SHOW MEASUREMENTS");
        let names: Vec<String> = j["results"][0]["series"][0]["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| row[0].as_str().map(str::to_string))
            .collect();
        let mut out = Vec::new();
        for name in names {
            let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
            let j = self.query(db, &format!("SELECT * FROM \"{quoted}\" GROUP BY *"));
            out.extend(field_points(&j));
        }
        out.sort_by_key(|p| format!("{p:?}"));
        out
    }

    pub fn write_url(&self) -> String {
        format!("http://{}/write", self.addr)
    }

    /// Every point of every measurement in `db` (`SELECT * … GROUP BY *`,
    /// times in ms).
    pub fn points(&self, db: &str) -> Points {
        let q = encode("SELECT * FROM /.*/ GROUP BY *");
        let r = request(
            self.addr,
            "GET",
            &format!("/query?db={}&epoch=ms&q={q}", encode(db)),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "query: {r:?}");
        let j = r.json();
        let mut out = Points::new();
        let result = &j["results"][0];
        assert!(result.get("error").is_none(), "query: {j}");
        for s in result["series"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().expect("a name").to_string();
            let tags = non_empty_tags(&s["tags"]);
            let columns = columns(s);
            let vi = columns
                .iter()
                .position(|c| *c == "value")
                .expect("a value column");
            let points = out.entry((name, tags)).or_default();
            for row in s["values"].as_array().expect("values") {
                if !row[vi].is_null() {
                    points.insert(row[0].as_i64().expect("a time"), row[vi].clone());
                }
            }
        }
        out
    }
}

/// The field values of a `SELECT * … GROUP BY *` answer.
fn field_points(j: &serde_json::Value) -> Vec<FieldPoint> {
    let mut out = Vec::new();
    for s in j["results"][0]["series"].as_array().into_iter().flatten() {
        let measurement = s["name"].as_str().expect("a name").to_string();
        let tags = non_empty_tags(&s["tags"]);
        let columns = columns(s);
        for row in s["values"].as_array().expect("values") {
            let time = row[0].as_i64().expect("a time");
            for (i, field) in columns.iter().enumerate().skip(1) {
                if !row[i].is_null() {
                    out.push(FieldPoint {
                        measurement: measurement.clone(),
                        tags: tags.clone(),
                        field: field.to_string(),
                        value: row[i].clone(),
                        time,
                    });
                }
            }
        }
    }
    out
}

/// One field value of one point, as `/query` reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPoint {
    pub measurement: String,
    pub tags: BTreeMap<String, String>,
    pub field: String,
    pub value: serde_json::Value,
    /// ns since the epoch.
    pub time: i64,
}

/// A `/query` series' column names.
fn columns(series: &serde_json::Value) -> Vec<&str> {
    series["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().unwrap_or_default())
        .collect()
}

/// A `GROUP BY *` series' tags: a tag key the series lacks comes back as "".
fn non_empty_tags(tags: &serde_json::Value) -> BTreeMap<String, String> {
    tags.as_object()
        .map(|t| {
            t.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .filter(|(_, v)| !v.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn db_arg(db: &str) -> String {
    db.replace('"', "")
}

impl Drop for InfluxDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
