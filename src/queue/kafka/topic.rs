//! The start-up check: the brokers answer within `--connect-timeout` and the
//! topic exists (or is created with `--create-topic`). Every failure is an
//! error naming the brokers and the topic, never a hang.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use super::context::ProducerContext;
use super::health::topic_partitions;

/// What `--create-topic` asks for.
#[derive(Clone, Copy, Debug)]
pub struct CreateTopic {
    pub partitions: u32,
    /// `None`: the broker's default.
    pub replication: Option<i32>,
}

/// Waits for the cluster, creates the topic if asked to, and returns its
/// partition count.
pub async fn ensure_topic(
    producer: &FutureProducer<ProducerContext>,
    config: &ClientConfig,
    brokers: &str,
    topic: &str,
    create: Option<CreateTopic>,
    timeout: Duration,
) -> anyhow::Result<u32> {
    let started = Instant::now();
    // All topics: asking for one by name can make a broker with
    // auto.create.topics.enable create it with its default settings.
    let md = metadata(producer, None, timeout)
        .await
        .with_context(|| format!("cannot reach Kafka at {brokers} within {timeout:?}"))?;
    let exists = md
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none());
    if !exists {
        let Some(create) = create else {
            bail!(
                "topic {topic:?} does not exist on the Kafka cluster at {brokers}: create it \
                 (kafka-topics.sh --create --topic {topic} --partitions N) or start with \
                 --create-topic (it uses --partitions and --replication-factor)"
            );
        };
        create_topic(config, brokers, topic, create, timeout).await?;
    }
    // A new topic needs a moment for its leaders to be elected.
    let deadline = started + timeout.max(Duration::from_secs(1));
    loop {
        let md = metadata(producer, Some(topic), Duration::from_secs(2)).await;
        let why = match md
            .map_err(|e| e.to_string())
            .and_then(|md| topic_partitions(&md, topic))
        {
            Ok(n) => return Ok(n),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            bail!("topic {topic:?} on {brokers} is not usable after {timeout:?}: {why}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn metadata(
    producer: &FutureProducer<ProducerContext>,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<Metadata, KafkaError> {
    let producer = producer.clone();
    let topic = topic.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        use rdkafka::producer::Producer;
        producer.client().fetch_metadata(topic.as_deref(), timeout)
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

async fn create_topic(
    config: &ClientConfig,
    brokers: &str,
    topic: &str,
    create: CreateTopic,
    timeout: Duration,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        config.create().context("creating the Kafka admin client")?;
    let replication = TopicReplication::Fixed(create.replication.unwrap_or(-1));
    let new = NewTopic::new(topic, create.partitions as i32, replication);
    let opts = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .with_context(|| format!("creating topic {topic:?} on {brokers}"))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(
                topic,
                partitions = create.partitions,
                replication = create.replication.unwrap_or(-1),
                "created the Kafka topic"
            ),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name:?} on {brokers}: {code}"),
        }
    }
    Ok(())
}
