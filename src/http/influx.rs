//! InfluxDB line protocol: `POST /api/v2/write?org=&bucket=&precision=`
//! (2.x clients, Telegraf's `influxdb_v2` output) and `POST
//! /write?db=&precision=` (1.x clients, Telegraf's `influxdb` output): the
//! query string (bucket or db, precision, 1.x `u`/`p` credentials), the
//! decoder (`crate::influx`, which maps lines to metrics) and InfluxDB's
//! answers. The path is [`super::ingest`]'s. `GET|HEAD /ping` answers as
//! InfluxDB does, for the clients and proxies that check it first; `/query`
//! only what Telegraf and the 1.x clients ask before writing.
//!
//! Partial writes, as InfluxDB 1.x: the valid lines are stored, and the 400
//! says how many lines and string fields were refused and why. The answers
//! are InfluxDB's: 204 when everything was stored; errors as 2.x gives them
//! (`{"code":"invalid","message":…}`) on the 2.x route and as 1.x gives them
//! (`{"error":…}`) on the 1.x route. A 429 or 503 means nothing was stored.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, request, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::admit::{admit, record};
use super::body::{check_headers, Coding};
use super::error::{json_response, ApiError};
use super::ingest::{self, Decoded, Incoming, Ingest, Stored};
use super::state::App;
use crate::influx::{self, Precision, Refused};
use crate::telemetry::Protocol;

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
    ingest::handle(&app, &Influx(Api::V2), req).await
}

pub async fn post_v1_write(State(app): State<Arc<App>>, req: Request) -> Response {
    ingest::handle(&app, &Influx(Api::V1), req).await
}

/// A write on one of the two APIs.
struct Influx(Api);

/// What a write's query string asks for.
struct Asked {
    db: String,
    precision: Precision,
    query: Query,
}

impl Ingest for Influx {
    const PROTOCOL: Protocol = Protocol::Influx;
    const CODING: Coding = Coding::Gzip;
    type Asked = Asked;
    type Kept = ();
    type Refused = Refused;

    fn asked(&self, head: &request::Parts) -> Result<Asked, ApiError> {
        let api = self.0;
        let query = query_of(head.uri.query(), api)?;
        let db = match (&query.db, api) {
            (Some(db), _) if !db.is_empty() => db.clone(),
            (_, Api::V1) => return Err(ApiError::bad_request("database is required (?db=)")),
            (_, Api::V2) => return Err(ApiError::bad_request("bucket is required (?bucket=)")),
        };
        let precision = precision_of(&query, api)?;
        Ok(Asked {
            db,
            precision,
            query,
        })
    }

    fn credentials<'h>(&self, asked: &Asked, headers: &'h HeaderMap) -> Cow<'h, HeaderMap> {
        credentials(headers, &asked.query)
    }

    fn decode<'s>(
        &self,
        _app: &App,
        request: Incoming<'s, Asked>,
        _kept: &'s mut Option<()>,
    ) -> Result<Decoded<'s, Refused>, String> {
        let asked = request.asked;
        let decoded = influx::decode(
            request.body,
            &asked.db,
            asked.precision,
            request.received.ns(),
        );
        Ok(Decoded {
            metrics: decoded.metrics,
            refused_points: decoded.refused.points(),
            refused: decoded.refused,
        })
    }

    fn answer(
        &self,
        _head: &request::Parts,
        outcome: Result<Stored<Refused>, ApiError>,
    ) -> Response {
        let mut response = match outcome {
            Ok(stored) if stored.refused.points() == 0 => StatusCode::NO_CONTENT.into_response(),
            Ok(stored) => refusal(partial(&stored), self.0),
            Err(e) => refusal(e, self.0),
        };
        stamp(&mut response);
        response
    }
}

/// The 400 of a request stored in part, or not at all.
fn partial(stored: &Stored<Refused>) -> ApiError {
    let refused = &stored.refused;
    let head = if stored.metrics > 0 {
        "partial write"
    } else {
        "unable to parse"
    };
    ApiError::bad_request(format!(
        "{head}: {} of {} refused, {} refused; {} stored. {}",
        refused.lines_refused,
        plural(refused.lines, "line"),
        plural(refused.strings_refused, "string field"),
        plural(stored.metrics, "point"),
        ingest::first_reasons(&refused.reasons)
    ))
}

/// `/query`: only `CREATE DATABASE` is answered (with success: a database
/// is just the `db` tag here), for Telegraf's `influxdb` output and 1.x
/// clients that create their database before writing. Anything else is a
/// 400 saying this is a write-only endpoint. Admitted as every write is
/// (API key, rate limit, slot) and counted with them.
pub async fn query(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let mut response = match answer_query(&app, req).await {
        Ok(response) => response,
        Err(e) => refusal(e, Api::V1),
    };
    stamp(&mut response);
    record(&app, Protocol::Influx, started, &response);
    response
}

async fn answer_query(app: &App, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    check_headers(&parts.headers)?;
    let query = query_of(parts.uri.query(), Api::V1)?;
    let _admitted = admit(
        app,
        &credentials(&parts.headers, &query),
        parts.extensions.get(),
    )?;
    // InfluxDB reads `q` from the URL or, in a POST, from a form body.
    let mut q = query.q;
    if q.is_none() {
        if let Ok(form) = axum::body::to_bytes(body, 64 * 1024).await {
            q = query_of_form(std::str::from_utf8(&form).ok());
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
    if !create {
        return Err(ApiError::bad_request(
            "metricstream takes writes only: /query answers CREATE DATABASE and nothing else",
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        r#"{"results":[{"statement_id":0}]}"#.to_string(),
    ))
}

/// The `q` parameter of a `/query` form body.
fn query_of_form(form: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(form.unwrap_or("")).ok()?;
    pairs.into_iter().find(|(k, _)| k == "q").map(|(_, v)| v)
}

/// `/ping`: 204 with the version headers (Telegraf, Grafana and the 1.x
/// clients ask before writing).
pub async fn ping() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    stamp(&mut response);
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
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::PAYLOAD_TOO_LARGE => "request too large",
        StatusCode::TOO_MANY_REQUESTS => "too many requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported media type",
        s if s.is_server_error() => "internal error",
        _ => "invalid",
    }
}

/// The parts of the query string a write (or a 1.x `/query`) reads.
#[derive(Default, Debug)]
struct Query {
    db: Option<String>,
    precision: Option<String>,
    user: Option<String>,
    password: Option<String>,
    q: Option<String>,
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
            (Api::V1, "q") => &mut q.q,
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
fn credentials<'h>(headers: &'h HeaderMap, q: &Query) -> Cow<'h, HeaderMap> {
    if q.user.is_none() && q.password.is_none() {
        return Cow::Borrowed(headers);
    }
    let mut headers = headers.clone();
    let user = q.user.as_deref().unwrap_or("");
    let password = q.password.as_deref().unwrap_or("");
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    // Base64 and "Basic " are always a valid header value.
    if let Ok(v) = HeaderValue::from_str(&format!("Basic {encoded}")) {
        headers.append(header::AUTHORIZATION, v);
    }
    Cow::Owned(headers)
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
