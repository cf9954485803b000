//! Raw librdkafka producer throughput: the ceiling for `serve --queue kafka`.
//!
//! Produces C++-sized messages (the normalized batch metricstream would
//! send for the C++ load test's request, about 400 bytes, keyed by one of 20
//! client ids) as fast as librdkafka takes them, with metricstream's
//! producer defaults (acks=all, idempotence, lz4, murmur2, linger), and
//! prints messages/s once every delivery report is in.
//!
//! Usage:
//!   cargo run --release --example kafka_producer_ceiling -- BROKERS [TOPIC] [MESSAGES] [KEY=VALUE…]
//! e.g. `… -- 127.0.0.1:9092 metrics 200000 linger.ms=5`. The topic must exist.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use metricstream::queue::kafka::config::{client_config, describe, producer_defaults};
use metricstream::queue::kafka::KafkaProperty;

#[derive(Default)]
struct Counts {
    delivered: AtomicU64,
    failed: AtomicU64,
}

struct Ctx(Arc<Counts>);

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The value metricstream produces for one C++ load-test request.
fn message(client: &str, seq: u64) -> anyhow::Result<Vec<u8>> {
    let body = format!(
        r#"{{"metrics":[
            {{"name":"cpu_usage","value":42.123456,"type":"gauge","tags":{{"host":"{client}","region":"us-west","seq":"{seq}"}}}},
            {{"name":"memory_usage","value":4000000000,"type":"gauge","tags":{{"host":"{client}"}}}},
            {{"name":"requests_total","value":17,"type":"counter","tags":{{"service":"api","host":"{client}"}}}}]}}"#
    );
    let mut metrics =
        metricstream::batch::decode(body.as_bytes()).map_err(|e| anyhow::anyhow!(e.0))?;
    // As `serve` stores it on Kafka by default: one standalone compact record.
    let mut records = metricstream::record::records(
        metricstream::record::Format::Compact,
        client,
        1_732_646_400_000,
        &mut metrics,
        metricstream::queue::DEFAULT_MAX_RECORD_BYTES,
    )?;
    let record = records.pop().ok_or_else(|| anyhow::anyhow!("no record"))?;
    Ok(record.into_bytes()?)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let brokers = args.first().ok_or_else(|| {
        anyhow::anyhow!("usage: kafka_producer_ceiling BROKERS [TOPIC] [MESSAGES] [KEY=VALUE…]")
    })?;
    let topic = args.get(1).map_or("metrics", String::as_str);
    let total: u64 = args.get(2).map_or(Ok(200_000), |n| n.parse())?;
    let overrides: Vec<KafkaProperty> = args
        .iter()
        .skip(3)
        .map(|a| a.parse().map_err(|e: String| anyhow::anyhow!(e)))
        .collect::<anyhow::Result<_>>()?;
    let mut config = client_config(
        brokers,
        &producer_defaults(Duration::from_secs(30)),
        &overrides,
    );
    config.set("statistics.interval.ms", "0");
    let counts = Arc::new(Counts::default());
    let producer: ThreadedProducer<Ctx> = config.create_with_context(Ctx(counts.clone()))?;

    let clients: Vec<String> = (0..20).map(|c| format!("load_client_{c}")).collect();
    let values: Vec<Vec<u8>> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| message(c, i as u64))
        .collect::<anyhow::Result<_>>()?;
    let size = values[0].len();
    // Warm up: metadata, producer id, connections.
    producer
        .send(BaseRecord::to(topic).key(&clients[0]).payload(&values[0]))
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30))?;
    let warm = counts.delivered.load(Ordering::Relaxed);

    let start = Instant::now();
    for i in 0..total {
        let c = (i % 20) as usize;
        let mut record = BaseRecord::to(topic).key(&clients[c]).payload(&values[c]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    let enqueued = start.elapsed();
    producer.flush(Duration::from_secs(120))?;
    let elapsed = start.elapsed();
    let delivered = counts.delivered.load(Ordering::Relaxed) - warm;
    let failed = counts.failed.load(Ordering::Relaxed);
    let rate = delivered as f64 / elapsed.as_secs_f64();
    println!("settings: {}", describe(&config));
    println!(
        "messages: {delivered} delivered, {failed} failed, {size} bytes each; \
         enqueued in {:.2}s, all acknowledged after {:.2}s",
        enqueued.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "throughput: {rate:.0} messages/s ({:.1} MB/s of values)",
        rate * size as f64 / 1e6
    );
    if failed > 0 {
        anyhow::bail!("{failed} messages failed");
    }
    Ok(())
}
