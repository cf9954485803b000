//! InfluxDB line protocol: `POST /api/v2/write?org=&bucket=&precision=`
//! (2.x clients, Telegraf's `influxdb_v2` output) and `POST
//! /write?db=&precision=` (1.x clients, Telegraf's `influxdb` output), top
//! to bottom: query (bucket or db, precision, 1.x `u`/`p` credentials) →
//! admission → body (gzip, limit after decompression) → parse each line →
//! metrics → queue → ack. `GET|HEAD /ping` answers as InfluxDB does, for
//! the clients and proxies that check it first.
//!
//! Partial writes, as InfluxDB 1.x: the valid lines are stored, and the 400
//! says how many lines and string fields were refused and why. The answers
//! are InfluxDB's: 204 when everything was stored; errors as 2.x gives them
//! (`{"code":"invalid","message":…}`) on the 2.x route and as 1.x gives them
//! (`{"error":…}`) on the 1.x route. A 429 or 503 means nothing was stored.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::admit::{admit, record};
use super::body::{check_headers, read_body};
use super::error::{json_response, ApiError};
use super::parts::{count_refused, Parts};
use super::state::App;
use crate::influx::{self, Precision};
use crate::telemetry::Protocol;

/// Reasons quoted in a 400, at most.
const REASONS_SHOWN: usize = 5;

const VERSION: HeaderName = HeaderName::from_static("x-influxdb-version");
const BUILD: HeaderName = HeaderName::from_static("x-influxdb-build");

/// Which InfluxDB API a request came in on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Api {
    /// `/write`: `db`, precision n/ns/u/us/ms/s/m/h, `u`/`p`, `{"error":…}`.
    V1,
    /// `/api/v2/write`: `bucket`, precision ns/us/ms/s, `{"code","message"}`.
    V2,
}

pub async fn post_v2_write(State(app): State<Arc<App>>, req: Request) -> Response {
    answer(&app, req, Api::V2).await
}

pub async fn post_v1_write(State(app): State<Arc<App>>, req: Request) -> Response {
    answer(&app, req, Api::V1).await
}

/// `/query`: only `CREATE DATABASE` is answered (with success: a database
/// is just the `db` tag here), for Telegraf's `influxdb` output and 1.x
/// clients that create their database before writing. Anything else is a
/// 400 saying this is a write-only endpoint.
pub async fn query(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // InfluxDB reads `q` from the URL or, in a POST, from a form body.
    let mut q = query_of_query(parts.uri.query());
    if q.is_none() {
        if let Ok(form) = axum::body::to_bytes(body, 64 * 1024).await {
            q = query_of_query(std::str::from_utf8(&form).ok());
        }
    }
    let create = q
        .as_deref()
        .map(|q| {
            q.trim_start()
                .to_ascii_uppercase()
                .starts_with("CREATE DATABASE")
        })
        .unwrap_or(false);
    let mut response = if create {
        json_response(
            StatusCode::OK,
            r#"{"results":[{"statement_id":0}]}"#.to_string(),
        )
    } else {
        refusal(
            ApiError::bad_request(
                "metricstream takes writes only: /query answers CREATE DATABASE and nothing else",
            ),
            Api::V1,
        )
    };
    stamp(&mut response);
    response
}

/// The `q` parameter of a `/query` URL.
fn query_of_query(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or("")).ok()?;
    pairs.into_iter().find(|(k, _)| k == "q").map(|(_, v)| v)
}

/// `/ping`: 204 with the version headers (Telegraf, Grafana and the 1.x
/// clients ask before writing).
pub async fn ping() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    stamp(&mut response);
    response
}

async fn answer(app: &App, req: Request, api: Api) -> Response {
    let started = Instant::now();
    let mut response = match write(app, req, api).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refusal(e, api),
    };
    stamp(&mut response);
    record(app, Protocol::Influx, started, &response);
    response
}

fn stamp(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(VERSION, HeaderValue::from_static("1.8-metricstream"));
    h.insert(BUILD, HeaderValue::from_static("OSS"));
}

/// The refusal in the shape the route's clients parse.
fn refusal(e: ApiError, api: Api) -> Response {
    let body = match api {
        Api::V1 => serde_json::json!({ "error": e.message }),
        Api::V2 => serde_json::json!({ "code": v2_code(e.status), "message": e.message }),
    };
    let mut response = json_response(e.status, body.to_string());
    let h = response.headers_mut();
    if let Some(secs) = e.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if api == Api::V1 {
        // 1.x repeats the message in a header; some clients read only that.
        let short: String = e.message.chars().take(200).collect();
        if let Ok(v) = HeaderValue::from_str(&short.replace(['\r', '\n'], " ")) {
            h.insert(HeaderName::from_static("x-influxdb-error"), v);
        }
    }
    response
}

/// InfluxDB 2.x's error codes, by status.
fn v2_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::PAYLOAD_TOO_LARGE => "request too large",
        StatusCode::TOO_MANY_REQUESTS => "too many requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported media type",
        s if s.is_server_error() => "internal error",
        _ => "invalid",
    }
}

/// The parts of the query string a write reads.
#[derive(Default, Debug)]
struct Query {
    db: Option<String>,
    precision: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

fn query_of(query: Option<&str>, api: Api) -> Result<Query, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))?;
    let mut q = Query::default();
    for (key, value) in pairs {
        let slot = match (api, key.as_str()) {
            (Api::V1, "db") | (Api::V2, "bucket") => &mut q.db,
            (_, "precision") => &mut q.precision,
            (Api::V1, "u") => &mut q.user,
            (Api::V1, "p") => &mut q.password,
            // org, orgID, rp, consistency: accepted, not used.
            _ => continue,
        };
        if slot.is_some() {
            return Err(ApiError::bad_request(format!(
                "query string: {key} given more than once"
            )));
        }
        *slot = Some(value);
    }
    Ok(q)
}

fn precision_of(q: &Query, api: Api) -> Result<Precision, ApiError> {
    let Some(text) = q.precision.as_deref().filter(|p| !p.is_empty()) else {
        return Ok(Precision::Nanoseconds);
    };
    let p = Precision::parse(text).map_err(|e| ApiError::bad_request(format!("precision: {e}")))?;
    let v2_takes = ["ns", "us", "ms", "s"];
    if api == Api::V2 && !v2_takes.contains(&text) {
        return Err(ApiError::bad_request(format!(
            "precision: {text:?} is not one of ns, us, ms, s"
        )));
    }
    Ok(p)
}

/// 1.x's `?u=&p=` as the Basic header it stands for, so the keys are
/// checked in one place. Sent beside an `Authorization` header it makes two,
/// which `admit` refuses (which one counts would be a guess).
fn credentials(headers: &HeaderMap, q: &Query) -> HeaderMap {
    let mut headers = headers.clone();
    if q.user.is_some() || q.password.is_some() {
        let user = q.user.as_deref().unwrap_or("");
        let password = q.password.as_deref().unwrap_or("");
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        if let Ok(v) = HeaderValue::from_str(&format!("Basic {encoded}")) {
            headers.append(header::AUTHORIZATION, v);
        }
    }
    headers
}

async fn write(app: &App, req: Request, api: Api) -> Result<(), ApiError> {
    let (parts, body) = req.into_parts();
    check_headers(&parts.headers)?;
    let q = query_of(parts.uri.query(), api)?;
    let headers = if api == Api::V1 {
        credentials(&parts.headers, &q)
    } else {
        parts.headers.clone()
    };
    let admitted = admit(app, &headers)?;
    let db = match (&q.db, api) {
        (Some(db), _) if !db.is_empty() => db.as_str(),
        (_, Api::V1) => return Err(ApiError::bad_request("database is required (?db=)")),
        (_, Api::V2) => return Err(ApiError::bad_request("bucket is required (?bucket=)")),
    };
    let precision = precision_of(&q, api)?;

    let body = read_body(body, &parts.headers, app.max_body).await?;
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let decoded = influx::decode(&body, db, precision, now_ns);

    let mut parts = Parts::new(app, &admitted.client);
    for m in decoded.metrics {
        let labels = m.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
        let name = m.name.clone();
        parts.series(&name, labels).push(m);
    }
    let stored = parts.store(app, Protocol::Influx).await?;

    let refused = &decoded.refused;
    if refused.points() == 0 {
        return Ok(());
    }
    count_refused(app, Protocol::Influx, refused.points());
    let head = if stored > 0 {
        "partial write"
    } else {
        "unable to parse"
    };
    let reasons: Vec<&str> = refused
        .reasons
        .iter()
        .take(REASONS_SHOWN)
        .map(String::as_str)
        .collect();
    Err(ApiError::bad_request(format!(
        "{head}: {} of {} refused, {} refused; {} stored. {}",
        refused.lines_refused,
        plural(refused.lines, "line"),
        plural(refused.strings_refused, "string field"),
        plural(stored, "point"),
        reasons.join("; ")
    )))
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
