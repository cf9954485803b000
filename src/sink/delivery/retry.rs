//! What a store's answer to one request means: the retry policy, a pure
//! function from the [`Answer`] to a [`Decision`], so every rule is in one
//! table (the tests below) and the sending loop has no status logic. A
//! store with rules of its own overrides `Sink::classify`: remote_write
//! refuses the 500 Prometheus answers to an invalid native histogram
//! (`sink::store::remote_write`).
//!
//! | answer | decision |
//! |---|---|
//! | 2xx | accept |
//! | 5xx, 408, 429 | retry, not sooner than `Retry-After` |
//! | connection refused or reset, no answer within the timeout | retry |
//! | 401, 403, 404, 405 | retry as a configuration error (credentials, `--url`), logged as an error at every attempt rather than dead-lettering everything |
//! | any other status (400, 413, 422, 3xx, …) | refuse: the batch can never succeed as it is |
//!
//! Retrying has no end (the store may be down for an hour, the place in
//! the queue is kept meanwhile); how long to wait is [`super::backoff`]'s.

use std::fmt;
use std::time::Duration;

/// What came back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A status and the start of the body.
    Status {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    /// Nothing could be sent: the store did not get this request.
    Unreachable(String),
    /// Sent (maybe partly) with no answer: the store may have it.
    NoAnswer(String),
}

impl Answer {
    /// Whether the store may hold the request although it did not say so:
    /// a later refusal of these samples as already stored is then believed.
    pub fn may_be_stored(&self) -> bool {
        matches!(self, Answer::NoAnswer(_))
    }

    /// The outcome label of `metricstream_consume_requests_total`: the
    /// status code, `unreachable` or `no_answer`.
    pub fn outcome(&self) -> String {
        match self {
            Answer::Status { status, .. } => status.to_string(),
            Answer::Unreachable(_) => "unreachable".to_string(),
            Answer::NoAnswer(_) => "no_answer".to_string(),
        }
    }
}

/// `401 (bad token)` for a status; the error itself otherwise.
impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Status { status, body, .. } => write!(f, "{status} ({body})"),
            Answer::Unreachable(e) | Answer::NoAnswer(e) => f.write_str(e),
        }
    }
}

/// What to do with the batch after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The store has the whole batch.
    Accept,
    /// Send the same batch again, so the place in the partition is kept.
    Retry {
        /// The store's `Retry-After`: wait at least this long.
        after: Option<Duration>,
        /// For the logs and the last-error metric: `503 overloaded`,
        /// `connect to 127.0.0.1:9: Connection refused`.
        why: String,
        /// Our configuration is wrong (credentials, `--url`), not the data.
        config_error: bool,
    },
    /// The batch can never succeed as it is: split it, down to the samples
    /// the store refuses alone.
    Refuse { status: u16, reason: String },
}

/// The policy every store follows unless it says otherwise (see the
/// module's table).
pub fn classify(answer: &Answer) -> Decision {
    match answer {
        Answer::Status {
            status: 200..=299, ..
        } => Decision::Accept,
        Answer::Status {
            status,
            retry_after,
            body,
        } => {
            let config_error = matches!(status, 401 | 403 | 404 | 405);
            let transient = *status >= 500 || matches!(status, 408 | 429);
            if config_error || transient {
                Decision::Retry {
                    after: *retry_after,
                    why: format!("{status} {body}"),
                    config_error,
                }
            } else {
                Decision::Refuse {
                    status: *status,
                    reason: body.clone(),
                }
            }
        }
        Answer::Unreachable(e) | Answer::NoAnswer(e) => Decision::Retry {
            after: None,
            why: e.clone(),
            config_error: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, retry_after: Option<u64>) -> Answer {
        Answer::Status {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: "why".to_string(),
        }
    }

    fn retry(after: Option<u64>, why: &str, config_error: bool) -> Decision {
        Decision::Retry {
            after: after.map(Duration::from_secs),
            why: why.to_string(),
            config_error,
        }
    }

    fn refuse(status: u16) -> Decision {
        Decision::Refuse {
            status,
            reason: "why".to_string(),
        }
    }

    #[test]
    fn every_status_class_and_answer_kind() {
        let table = [
            // 1xx never ends an exchange; should one arrive, it is no 2xx.
            (status(100, None), refuse(100)),
            (status(200, None), Decision::Accept),
            (status(204, Some(5)), Decision::Accept),
            (status(299, None), Decision::Accept),
            // Redirects are not followed: a --url to fix, but refused as today.
            (status(301, None), refuse(301)),
            (status(399, None), refuse(399)),
            (status(400, None), refuse(400)),
            (status(401, None), retry(None, "401 why", true)),
            (status(402, None), refuse(402)),
            (status(403, None), retry(None, "403 why", true)),
            (status(404, None), retry(None, "404 why", true)),
            (status(405, Some(2)), retry(Some(2), "405 why", true)),
            (status(406, None), refuse(406)),
            (status(408, None), retry(None, "408 why", false)),
            (status(409, None), refuse(409)),
            (status(413, None), refuse(413)),
            (status(422, None), refuse(422)),
            (status(429, None), retry(None, "429 why", false)),
            (status(429, Some(3)), retry(Some(3), "429 why", false)),
            (status(499, None), refuse(499)),
            (status(500, None), retry(None, "500 why", false)),
            (status(503, Some(7)), retry(Some(7), "503 why", false)),
            (status(599, None), retry(None, "599 why", false)),
            (
                Answer::Unreachable("refused".into()),
                retry(None, "refused", false),
            ),
            (
                Answer::NoAnswer("timed out".into()),
                retry(None, "timed out", false),
            ),
        ];
        for (answer, decision) in table {
            assert_eq!(classify(&answer), decision, "{answer:?}");
        }
    }

    #[test]
    fn only_an_unanswered_request_may_be_stored() {
        assert!(Answer::NoAnswer("reset".into()).may_be_stored());
        assert!(!Answer::Unreachable("refused".into()).may_be_stored());
        assert!(!status(500, None).may_be_stored());
        assert!(!status(204, None).may_be_stored());
    }

    #[test]
    fn outcomes_and_display() {
        assert_eq!(status(503, None).outcome(), "503");
        assert_eq!(Answer::Unreachable("x".into()).outcome(), "unreachable");
        assert_eq!(Answer::NoAnswer("x".into()).outcome(), "no_answer");
        assert_eq!(status(401, None).to_string(), "401 (why)");
        assert_eq!(Answer::NoAnswer("reset".into()).to_string(), "reset");
    }
}
