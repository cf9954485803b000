//! librdkafka settings: metricstream's defaults, then the user's `-X`
//! properties on top (they win, like kcat's `-X`).
//!
//! Why each producer default is what it is (measured figures in docs/kafka.md):
//! - `acks=all`: a durable 200 means every in-sync replica has the batch.
//! - `enable.idempotence=true`: librdkafka's internal retries can neither
//!   duplicate nor reorder a batch within a partition.
//! - `partitioner=murmur2_random`: the Java client's partitioner, the same
//!   function the embedded log uses, so a client id lands in the same partition
//!   number on both backends.
//! - `compression.type=lz4`: our JSON batches are repetitive (about 10x
//!   smaller for a 100-message batch) and lz4 is the cheapest codec.
//! - `linger.ms=2`: see [`DEFAULT_LINGER_MS`].
//! - `queue.buffering.max.messages=20000`, `queue.buffering.max.kbytes=65536`:
//!   at most 20 000 batches (about 9 MiB of C++-sized ones) or 64 MiB wait in
//!   the producer (librdkafka: 100 000 and 1 GiB); past it, the bounded wait
//!   and then a 503. A short queue keeps a batch's wait in it far below the
//!   delivery timeout and the accepted-mode 200 rate close to what the
//!   brokers take (measured: a 100 000 queue only hid a backlog of several
//!   seconds that shutdown then had to flush).
//! - `message.timeout.ms` = `--delivery-timeout` (10 s): how long a durable
//!   request may wait for the brokers before its 503.
//! - `reconnect.backoff.max.ms=1000`: notice a returning broker within a
//!   second (librdkafka's default backs off up to 10 s).
//! - `statistics.interval.ms=1000`: the in-flight and retry figures of `/metrics`.

use std::time::Duration;

use rdkafka::ClientConfig;

/// One librdkafka property, `KEY=VALUE` (`-X`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaProperty {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for KafkaProperty {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(KafkaProperty {
                key: k.trim().to_string(),
                value: v.to_string(),
            }),
            _ => Err(format!(
                "{s:?}: expected KEY=VALUE (a librdkafka property, e.g. linger.ms=5)"
            )),
        }
    }
}

/// Linger: how long librdkafka waits to fill a batch. 2 ms was the best
/// measured trade: 0 ms sends a request per message and the broker becomes
/// the bottleneck sooner; 5 ms and more add to the durable latency without
/// more throughput on a local broker (docs/kafka.md).
pub const DEFAULT_LINGER_MS: u32 = 2;

/// The producer defaults, before `-X`.
pub fn producer_defaults(delivery_timeout: Duration) -> Vec<(&'static str, String)> {
    vec![
        ("client.id", "metricstream".into()),
        ("acks", "all".into()),
        ("enable.idempotence", "true".into()),
        ("partitioner", "murmur2_random".into()),
        ("compression.type", "lz4".into()),
        ("linger.ms", DEFAULT_LINGER_MS.to_string()),
        ("queue.buffering.max.messages", "20000".into()),
        ("queue.buffering.max.kbytes", "65536".into()),
        (
            "message.timeout.ms",
            delivery_timeout.as_millis().max(1).to_string(),
        ),
        ("reconnect.backoff.max.ms", "1000".into()),
        ("statistics.interval.ms", "1000".into()),
    ]
}

/// The consumer defaults, before `-X`. Offsets are committed by hand after
/// the lines are written (at-least-once).
pub fn consumer_defaults(group: &str, from_beginning: bool) -> Vec<(&'static str, String)> {
    vec![
        ("client.id", "metricstream-consume".into()),
        ("group.id", group.into()),
        ("enable.auto.commit", "false".into()),
        ("enable.auto.offset.store", "false".into()),
        (
            "auto.offset.reset",
            if from_beginning { "earliest" } else { "latest" }.into(),
        ),
        ("enable.partition.eof", "true".into()),
        // A dead member's partitions move on after 10 s, not the default 45 s.
        ("session.timeout.ms", "10000".into()),
        ("reconnect.backoff.max.ms", "1000".into()),
    ]
}

/// `bootstrap.servers`, the defaults, then every `-X` property in order.
pub fn client_config(
    brokers: &str,
    defaults: &[(&'static str, String)],
    overrides: &[KafkaProperty],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (k, v) in defaults {
        config.set(*k, v);
    }
    for p in overrides {
        config.set(&p.key, &p.value);
    }
    config
}

/// A property value as it may appear in a log line: secrets hidden.
pub fn redact<'a>(key: &str, value: &'a str) -> &'a str {
    let k = key.to_ascii_lowercase();
    let secret = ["password", "secret", "jaas", "token", "key.pem", "ssl.key"]
        .iter()
        .any(|s| k.contains(s));
    if secret {
        "***"
    } else {
        value
    }
}

/// The effective settings as one log-friendly string, secrets hidden.
pub fn describe(config: &ClientConfig) -> String {
    config
        .config_map()
        .into_iter()
        .map(|(k, v)| format!("{k}={}", redact(k, v)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_secrets_are_hidden() {
        let x = |k: &str, v: &str| KafkaProperty {
            key: k.into(),
            value: v.into(),
        };
        let c = client_config(
            "a:1,b:2",
            &producer_defaults(Duration::from_secs(7)),
            &[x("linger.ms", "20"), x("sasl.password", "hunter2")],
        );
        assert_eq!(c.get("bootstrap.servers"), Some("a:1,b:2"));
        assert_eq!(c.get("linger.ms"), Some("20"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("message.timeout.ms"), Some("7000"));
        let text = describe(&c);
        assert!(text.contains("sasl.password=***"), "{text}");
        assert!(!text.contains("hunter2"));
        assert!(text.contains("linger.ms=20"));
    }
}
