//! The cluster's messages over NATS: wake-ups between hosts (core NATS, at
//! most once: a lost one costs a poll interval), and every source's numbered
//! events on a JetStream stream (at least once, deduplicated by message id).
use super::ClusterConfig;
use async_nats::jetstream;
use bytes::Bytes;
use std::time::Duration;

/// How long JetStream remembers a message id: a republish after a crash
/// within this window is dropped as a duplicate.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long the events stream keeps an event.
const EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// One event for the events stream.
pub struct Published {
    /// Subject suffix after `events.`: `<source>.<event type>`.
    pub subject: String,
    /// `Nats-Msg-Id`: `<source>:<sequence>`.
    pub id: String,
    /// The event as JSON.
    pub payload: Vec<u8>,
}

/// The cluster's NATS connection; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    config: ClusterConfig,
}

impl Bus {
    /// Connects, and creates the events stream if it is missing.
    pub(super) async fn connect(config: &ClusterConfig) -> Result<Bus, String> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("mercato {}", config.name))
            .connection_timeout(Duration::from_secs(5))
            .connect(config.nats_url.as_str())
            .await
            .map_err(|e| format!("connecting to NATS at {}: {e}", config.nats_url))?;
        let js = jetstream::new(client.clone());
        js.get_or_create_stream(jetstream::stream::Config {
            name: config.events_stream(),
            subjects: vec![config.subject("events.>")],
            duplicate_window: DUPLICATE_WINDOW,
            max_age: EVENTS_MAX_AGE,
            ..Default::default()
        })
        .await
        .map_err(|e| {
            format!(
                "creating the JetStream stream {} (is JetStream enabled on {}?): {e}",
                config.events_stream(),
                config.nats_url
            )
        })?;
        Ok(Bus {
            client,
            js,
            config: config.clone(),
        })
    }

    /// Tells every host that `plugin`'s `topic` moved to `value` (best
    /// effort: the receivers also poll).
    pub async fn notify(&self, topic: &str, plugin: &str, value: u64) {
        let subject = self.config.subject(&format!("{topic}.{plugin}"));
        if let Err(e) = self
            .client
            .publish(subject, Bytes::from(value.to_string()))
            .await
        {
            tracing::debug!(error = %e, topic, plugin, "a cluster wake-up was not sent");
        }
    }

    /// Every host's notifications of `topic`, as (plugin, value).
    pub async fn notifications(
        &self,
        topic: &str,
    ) -> Result<impl futures_util::Stream<Item = (String, u64)> + use<>, String> {
        use futures_util::StreamExt;
        let prefix = self.config.subject(&format!("{topic}."));
        let subscriber = self
            .client
            .subscribe(format!("{prefix}*"))
            .await
            .map_err(|e| format!("subscribing to {prefix}*: {e}"))?;
        Ok(subscriber.filter_map(move |message| {
            let plugin = message.subject.strip_prefix(&prefix).map(str::to_owned);
            let value = std::str::from_utf8(&message.payload)
                .ok()
                .and_then(|v| v.parse().ok());
            std::future::ready(plugin.zip(value))
        }))
    }

    /// Publishes `events` to the events stream and waits until JetStream has
    /// stored each (or dropped it as a duplicate).
    pub async fn publish(&self, events: Vec<Published>) -> Result<(), String> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let subject = self.config.subject(&format!("events.{}", event.subject));
            let publish = jetstream::context::Publish::build()
                .message_id(event.id)
                .payload(Bytes::from(event.payload));
            acks.push(
                self.js
                    .send_publish(subject, publish)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        for ack in acks {
            ack.await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A NATS subject token from an event type: dots separate tokens, and
/// wildcards and spaces are not allowed in one.
pub fn subject_token(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '*' | '>' | ' ' | '\t' | '\r' | '\n' => '_',
            c => c,
        })
        .collect()
}
