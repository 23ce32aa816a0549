//! A closed-loop HTTP load generator over loopback: a fixed number of
//! connections, each sending its next request as soon as the previous answer
//! has been read, for a fixed time. Fixed durations (not request counts) keep
//! the whole harness inside its time budget on any machine.
use crate::stats::Samples;
use anyhow::{Context, bail};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub connections: usize,
    /// Untimed, to open connections and warm caches.
    pub warmup: Duration,
    pub duration: Duration,
}

#[derive(Debug)]
pub struct Outcome {
    pub requests: usize,
    pub elapsed: Duration,
    pub latencies: Samples,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// GETs `urls` round-robin (each connection starts at its own offset), with
/// `bearer` as the credential when given; every answer must be 200.
pub async fn get(
    load: Load,
    urls: Arc<Vec<String>>,
    bearer: Option<&str>,
) -> anyhow::Result<Outcome> {
    anyhow::ensure!(!urls.is_empty(), "nothing to request");
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = bearer {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.connections)
        .default_headers(headers)
        .build()?;
    phase(&client, load.connections, load.warmup, &urls).await?;
    let started = Instant::now();
    let latencies = phase(&client, load.connections, load.duration, &urls).await?;
    let elapsed = started.elapsed();
    Ok(Outcome {
        requests: latencies.len(),
        elapsed,
        latencies,
    })
}

async fn phase(
    client: &reqwest::Client,
    connections: usize,
    duration: Duration,
    urls: &Arc<Vec<String>>,
) -> anyhow::Result<Samples> {
    let deadline = Instant::now() + duration;
    let workers = (0..connections).map(|worker| {
        let client = client.clone();
        let urls = urls.clone();
        tokio::spawn(async move {
            let mut samples = Samples::with_capacity(64 * 1024);
            let mut next = worker * urls.len() / connections.max(1);
            while Instant::now() < deadline {
                let url = &urls[next % urls.len()];
                next += 1;
                let sent = Instant::now();
                let response = client.get(url).send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                samples.record(sent.elapsed());
                if status != reqwest::StatusCode::OK {
                    bail!(
                        "GET {url} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
            }
            Ok(samples)
        })
    });
    let mut all = Samples::default();
    for worker in futures_util::future::join_all(workers).await {
        all.extend(worker.context("load worker panicked")??);
    }
    Ok(all)
}
