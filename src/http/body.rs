//! Request framing every ingest endpoint shares: header limits, the body
//! read under `--max-body`, and its coding (gzip, or remote_write's snappy)
//! undone under the same limit.

use std::io::Read;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use super::error::ApiError;
use crate::remote_write::{self, Decompress};

/// How a protocol's bodies are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// As `Content-Encoding` says: none, or gzip.
    Gzip,
    /// Snappy's block format, always (remote_write; the protocol checks the
    /// header with its others).
    Snappy,
}

/// Header bytes a request may carry. hyper alone takes up to about
/// 400 KiB of headers; no metrics client needs more than a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Request framing the body reader cannot honour: oversized headers (431),
/// and a Transfer-Encoding other than plain `chunked`. hyper accepts e.g.
/// `gzip, chunked` but only undoes the chunking, so the body would be read
/// as something it is not (400).
pub fn check_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("headers: {bytes} bytes, over the limit of {MAX_HEADER_BYTES}"),
        ));
    }
    let codings = headers.get_all(header::TRANSFER_ENCODING);
    // Two `chunked` lines would mean chunked twice: as unhonourable as gzip.
    let lines = codings.iter().count();
    for te in codings {
        if lines > 1 || !te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(ApiError::bad_request(format!(
                "Transfer-Encoding: only chunked is supported, got {:?}",
                String::from_utf8_lossy(te.as_bytes())
            )));
        }
    }
    Ok(())
}

/// Reads the body under the size limit and undoes its coding, also under
/// the limit.
pub async fn read(
    body: Body,
    headers: &HeaderMap,
    max: usize,
    coding: Coding,
) -> Result<Bytes, ApiError> {
    match coding {
        Coding::Gzip => read_body(body, headers, max).await,
        Coding::Snappy => {
            let raw = read_raw(body, headers, max).await?;
            unsnappy(&raw, max).map(Bytes::from)
        }
    }
}

/// Reads the body under the size limit and undoes gzip, also under the
/// limit (so a small gzip bomb cannot inflate past it).
pub async fn read_body(body: Body, headers: &HeaderMap, max: usize) -> Result<Bytes, ApiError> {
    let raw = read_raw(body, headers, max).await?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(raw),
        Some("gzip") | Some("x-gzip") => gunzip(&raw, max).map(Bytes::from),
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding: {other:?} is not supported (use gzip or none)"),
        )),
    }
}

/// Reads the body as sent (no decoding) under the size limit, refusing a
/// declared Content-Length over it before reading anything.
pub async fn read_raw(body: Body, headers: &HeaderMap, max: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large(max));
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(max)),
        Err(e) => Err(ApiError::bad_request(format!(
            "body: could not be read: {e}"
        ))),
    }
}

pub fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body: larger than the limit of {max} bytes"),
    )
}

/// Undoes gzip, stopping one byte past `max` so a gzip bomb costs at most
/// `max` bytes of memory: 400 if it is not gzip, 413 if it inflates past `max`.
///
/// Every member is undone: a gzip body may be several members one after
/// the other (RFC 1952; `cat a.gz b.gz`), and reading only the first would
/// store part of a body and answer 2xx. Anything after a member that is not
/// another member is a 400, and the limit counts all of them together.
pub fn gunzip(raw: &[u8], max: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(max));
    let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(max as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        ApiError::bad_request(format!(
            "body: Content-Encoding is gzip but the body is not valid gzip: {e}"
        ))
    })?;
    if out.len() > max {
        return Err(too_large(max));
    }
    Ok(out)
}

/// Undoes snappy's block format: 413 when it declares more than `max`
/// (checked before anything is allocated), 400 when it is not snappy.
fn unsnappy(raw: &[u8], max: usize) -> Result<Vec<u8>, ApiError> {
    remote_write::decompress(raw, max).map_err(|e| match e {
        Decompress::TooLarge { declared, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: snappy declares {declared} bytes uncompressed, over the limit of {max} bytes"),
        ),
        Decompress::Invalid(m) => ApiError::bad_request(format!("body: not valid snappy: {m}")),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::http::HeaderValue;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_checks_the_stream_and_the_limit() {
        assert_eq!(gunzip(&gzip(b"{}"), 100).unwrap(), b"{}");
        let e = gunzip(b"not gzip at all", 100).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("not valid gzip"), "{}", e.message);
        let whole = gzip(&[b'x'; 1000]);
        let e = gunzip(&whole[..whole.len() / 2], 10_000).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", e.message);
        // 1 MiB of spaces is about 1 KiB of gzip: stopped at the limit.
        let bomb = gzip(&vec![b' '; 1 << 20]);
        assert!(bomb.len() < 4096);
        let e = gunzip(&bomb, 64 * 1024).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(gunzip(&gzip(&[b' '; 100]), 100).unwrap().len(), 100);
    }

    #[test]
    fn gunzip_undoes_every_member_under_one_limit() {
        let two = [gzip(b"m f=1\n"), gzip(b"m f=2\n")].concat();
        assert_eq!(gunzip(&two, 100).unwrap(), b"m f=1\nm f=2\n");
        // Something after a member that is not a member: refused, not cut off.
        let e = gunzip(&[gzip(b"{}"), b"garbage".to_vec()].concat(), 100).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", e.message);
        // A second member cut short is as bad as a first one.
        let second = gzip(&[b'x'; 1000]);
        let cut = [gzip(b"{}"), second[..second.len() / 2].to_vec()].concat();
        let e = gunzip(&cut, 10_000).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", e.message);
        // Each member is under the limit, the two together are not.
        let halves = [gzip(&[b' '; 60]), gzip(&[b' '; 60])].concat();
        assert_eq!(gunzip(&halves, 120).unwrap().len(), 120);
        let e = gunzip(&halves, 100).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn oversized_headers_are_431() {
        assert!(check_headers(&headers(&[("x-a", &"a".repeat(10_000))])).is_ok());
        let e = check_headers(&headers(&[("x-a", &"a".repeat(100_000))])).unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(
            e.message.starts_with("headers: 100007 bytes"),
            "{}",
            e.message
        );
    }

    #[test]
    fn only_plain_chunked_transfer_encoding_passes() {
        assert!(check_headers(&headers(&[("transfer-encoding", "chunked")])).is_ok());
        assert!(check_headers(&headers(&[("transfer-encoding", " Chunked ")])).is_ok());
        for bad in [
            vec![("transfer-encoding", "gzip, chunked")],
            vec![
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            let e = check_headers(&headers(&bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(e.message.starts_with("Transfer-Encoding:"), "{}", e.message);
        }
    }
}
