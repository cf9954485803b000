//! What one request came to, and how transport errors are sorted into kinds.

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// Why a request did not count as a success. Each kind is reported separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// The server answered with a status other than 200.
    Status(u16),
    /// 200, but the body lacked `"success":true`.
    BadBody,
    /// TCP connect failed (refused, unreachable, …).
    ConnectError,
    /// https: the TLS handshake failed, or the server refused the
    /// connection at the TLS layer (e.g. our certificate).
    Tls,
    /// No complete answer within `--timeout`.
    Timeout,
    /// The server closed or reset the connection before a full response.
    Reset,
    /// The response was not valid HTTP.
    ProtocolError,
    /// Any other I/O failure.
    IoError,
    /// Open loop only: the slot's send time came and went past the end of
    /// the run because the client was still stuck on earlier requests.
    NotSent,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Status(code) => write!(f, "status_{code}"),
            FailureKind::BadBody => f.write_str("bad_body"),
            FailureKind::ConnectError => f.write_str("connect_error"),
            FailureKind::Tls => f.write_str("tls_error"),
            FailureKind::Timeout => f.write_str("timeout"),
            FailureKind::Reset => f.write_str("reset"),
            FailureKind::ProtocolError => f.write_str("protocol_error"),
            FailureKind::IoError => f.write_str("io_error"),
            FailureKind::NotSent => f.write_str("not_sent"),
        }
    }
}

/// The result of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(FailureKind),
}

/// Success is status 200 *and* an acknowledging body; anything else is a
/// failure of some kind, never silently a success.
pub fn judge_response(status: u16, body: &[u8]) -> Outcome {
    if status != 200 {
        Outcome::Failure(FailureKind::Status(status))
    } else if body_says_success(body) {
        Outcome::Success
    } else {
        Outcome::Failure(FailureKind::BadBody)
    }
}

/// Whether the body contains `"success":true` (whitespace around the colon
/// tolerated, so a pretty-printing server is not marked as failing).
pub fn body_says_success(body: &[u8]) -> bool {
    const KEY: &[u8] = b"\"success\"";
    let mut rest = body;
    while let Some(at) = find(rest, KEY) {
        let after = skip_spaces(&rest[at + KEY.len()..]);
        if let Some(after_colon) = after.strip_prefix(b":") {
            if skip_spaces(after_colon).starts_with(b"true") {
                return true;
            }
        }
        rest = &rest[at + KEY.len()..];
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn skip_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Sorts a hyper error (from sending or from reading the body) into a kind.
pub fn classify_hyper(error: &hyper::Error) -> FailureKind {
    if error.is_timeout() {
        return FailureKind::Timeout;
    }
    // Closed before the response finished, or closed before we could even
    // write: either way the server hung up on us.
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        return FailureKind::Reset;
    }
    if let Some(io_error) = find_io_error(error) {
        return classify_io(io_error);
    }
    // Every parse error, a bad status line or an oversized head included
    // (`is_parse_too_large` exists only with hyper's server feature).
    if error.is_parse() {
        return FailureKind::ProtocolError;
    }
    FailureKind::IoError
}

/// Sorts a socket error (from connect or write) into a kind.
pub fn classify_io(error: &io::Error) -> FailureKind {
    // tokio-rustls reports TLS failures as io errors holding rustls' error.
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
    {
        return FailureKind::Tls;
    }
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => FailureKind::Reset,
        io::ErrorKind::TimedOut => FailureKind::Timeout,
        _ => FailureKind::IoError,
    }
}

fn find_io_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(err) = current {
        if let Some(io_error) = err.downcast_ref::<io::Error>() {
            return Some(io_error);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_needs_200_and_ack() {
        let ok = br#"{"success":true,"metrics_processed":3}"#;
        assert_eq!(judge_response(200, ok), Outcome::Success);
        assert_eq!(
            judge_response(200, br#"{"success": true}"#),
            Outcome::Success
        );
        assert_eq!(
            judge_response(503, ok),
            Outcome::Failure(FailureKind::Status(503))
        );
        for body in [
            &br#"{"success":false}"#[..],
            b"",
            b"OK",
            br#"{"success":"true"}"#,
            br#"{"success"}"#,
        ] {
            assert_eq!(
                judge_response(200, body),
                Outcome::Failure(FailureKind::BadBody),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // A later key can still carry the acknowledgement.
        assert!(body_says_success(br#"{"x":"\"success\"","success":true}"#));
    }

    #[test]
    fn kind_names() {
        assert_eq!(FailureKind::Status(503).to_string(), "status_503");
        assert_eq!(FailureKind::ConnectError.to_string(), "connect_error");
        assert_eq!(FailureKind::Timeout.to_string(), "timeout");
        assert_eq!(FailureKind::Reset.to_string(), "reset");
        assert_eq!(FailureKind::IoError.to_string(), "io_error");
        assert_eq!(FailureKind::BadBody.to_string(), "bad_body");
        assert_eq!(FailureKind::NotSent.to_string(), "not_sent");
        assert_eq!(FailureKind::Tls.to_string(), "tls_error");
    }

    #[test]
    fn io_kinds() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(classify_io(&reset), FailureKind::Reset);
        let pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(classify_io(&pipe), FailureKind::Reset);
        let other = io::Error::other("boom");
        assert_eq!(classify_io(&other), FailureKind::IoError);
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        );
        assert_eq!(classify_io(&alert), FailureKind::Tls);
    }
}
