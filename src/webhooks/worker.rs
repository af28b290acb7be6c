//! The delivery worker: claims due deliveries from the outbox with a lease, signs and POSTs
//! them, and records each attempt (retry with jittered backoff, give up, or disable the
//! endpoint). `run_once` does one pass and is what the tests drive; `run` loops until shutdown.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::signing::SigningSecret;
use super::{WebhookSettings, check_target, is_public};
use crate::domain::events::WebhookEvent;
use crate::store::webhooks::{AttemptResult, DeliveryAttempt, DueDelivery, Outcome};
use crate::store::{Store, StoreError};

/// Deliveries claimed per batch, and batches per pass: bounds one pass's memory and work.
const BATCH: i64 = 50;
const MAX_BATCHES: usize = 20;
/// Requests in flight at once per worker.
const CONCURRENCY: usize = 8;
/// Longest error text kept in the log.
const MAX_ERROR_CHARS: usize = 500;
/// Delivered or failed events are kept this long for the delivery log, then purged.
const RETENTION_DAYS: i64 = 30;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
    /// Endpoints disabled during the pass.
    pub disabled: usize,
}

impl RunStats {
    pub fn attempts(&self) -> usize {
        self.delivered + self.retrying + self.failed
    }
}

/// Sends webhook deliveries; cheap to clone (shares one HTTP client).
#[derive(Clone)]
pub struct Worker {
    store: Store,
    client: reqwest::Client,
    settings: Arc<WebhookSettings>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

/// Resolves host names for the webhook client and refuses answers with non-public addresses,
/// so the address connected to is the address checked (no DNS-rebinding window).
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| !is_public(a.ip())) {
                return Err("the target resolves to a non-public address".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

impl Worker {
    pub fn new(store: Store, settings: WebhookSettings) -> Self {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .timeout(settings.timeout)
            // A redirect could lead anywhere (an internal address included): the endpoint
            // must answer itself.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, bypassing the address check.
            .no_proxy()
            .user_agent(concat!("agentd-webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private_networks {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        let client = builder.build().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "webhook HTTP client with custom settings failed; using defaults");
            reqwest::Client::new()
        });
        Self {
            store,
            client,
            settings: Arc::new(settings),
        }
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// How long a claimed batch stays ours: every wave of `CONCURRENCY` attempts may take the
    /// attempt timeout plus the address check, so the last one finishes (and records itself)
    /// before anyone else may take its row; plus a margin.
    pub fn lease(&self) -> Duration {
        let batch = usize::try_from(BATCH).unwrap_or(usize::MAX);
        let waves = u32::try_from(batch.div_ceil(CONCURRENCY)).unwrap_or(u32::MAX);
        (self.settings.timeout + Duration::from_secs(5)) * waves + Duration::from_secs(30)
    }

    /// Delivers everything due now.
    pub async fn run_once(&self) -> Result<RunStats, StoreError> {
        self.run_once_at(crate::domain::now()).await
    }

    /// Delivers everything due at `now` — tests pass a later time instead of sleeping until a
    /// retry is due. Scheduling, leases and the disable rule all use `now`; the signature's
    /// timestamp is always the real clock (receivers check it against theirs).
    pub async fn run_once_at(&self, now: DateTime<Utc>) -> Result<RunStats, StoreError> {
        let mut stats = RunStats::default();
        for _ in 0..MAX_BATCHES {
            // Each batch's lease runs from when it is claimed (earlier batches took time).
            let lease_until = now.max(crate::domain::now()) + to_chrono(self.lease());
            let due = self.store.claim_deliveries(now, lease_until, BATCH).await?;
            let claimed = due.len();
            let results: Vec<_> = futures_util::stream::iter(due)
                .map(|d| self.attempt(d, now))
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            for r in results {
                let (line, disabled) = match r {
                    Ok(done) => done,
                    // Our lease ran out and another worker owns the row now: its attempt counts.
                    Err(StoreError::Conflict(_)) => continue,
                    Err(e) => return Err(e),
                };
                match line.outcome.as_str() {
                    "delivered" => stats.delivered += 1,
                    "retry_scheduled" => stats.retrying += 1,
                    _ => stats.failed += 1,
                }
                stats.disabled += usize::from(disabled);
            }
            if i64::try_from(claimed).unwrap_or(0) < BATCH {
                break;
            }
        }
        Ok(stats)
    }

    /// Sends one leased delivery and records the attempt.
    pub async fn attempt(
        &self,
        due: DueDelivery,
        now: DateTime<Utc>,
    ) -> Result<(DeliveryAttempt, bool), StoreError> {
        let started = Instant::now();
        let sent = self.send(&due).await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, error) = match sent {
            Ok(status) if status.is_success() => (Some(i32::from(status.as_u16())), None),
            Ok(status) => (
                Some(i32::from(status.as_u16())),
                Some(if status.is_redirection() {
                    format!("HTTP {status}: redirects are not followed")
                } else {
                    format!("HTTP {status}")
                }),
            ),
            Err(e) => (None, Some(truncate(&e))),
        };
        let attempt_no = usize::try_from(due.attempts).unwrap_or(0) + 1;
        let (outcome, next_retry_at) = if error.is_none() {
            (Outcome::Delivered, None)
        } else if let Some(delay) = self.settings.retry_schedule.get(attempt_no - 1) {
            (
                Outcome::RetryScheduled,
                Some(now + to_chrono(jittered(*delay))),
            )
        } else {
            (Outcome::Failed, None)
        };
        if let Some(e) = &error {
            tracing::info!(webhook = %due.webhook_id, event = %due.event_id, attempt = attempt_no, error = %e,
                "webhook delivery attempt failed");
        }
        let result = AttemptResult {
            outcome,
            status_code,
            latency_ms,
            error,
            next_retry_at,
        };
        let (line, disabled) = self
            .store
            .finish_delivery(&due, &result, now, self.settings.disable_after)
            .await?;
        if disabled {
            tracing::warn!(webhook = %due.webhook_id, org = %due.org_id,
                "webhook endpoint disabled after failing continuously");
        }
        Ok((line, disabled))
    }

    /// POSTs the signed event; the status, or why there was none.
    async fn send(&self, due: &DueDelivery) -> Result<reqwest::StatusCode, String> {
        // Checked again at delivery time: the URL was checked at registration, but DNS can
        // change since (the client's resolver checks host names; this catches IP literals).
        let url = check_target(&due.url, self.settings.allow_private_networks)
            .await
            .map_err(|e| format!("target refused: {e}"))?;
        if !self.settings.allow_private_networks {
            if let Some(ip) = url.host_str().and_then(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .ok()
            }) {
                if !is_public(ip) {
                    return Err("target refused: non-public address".to_owned());
                }
            }
        }
        let secret = SigningSecret::parse(&due.secret)
            .map_err(|_| "the endpoint's secret is unreadable".to_owned())?;
        let event = WebhookEvent {
            id: due.event_id,
            kind: due.event_type.clone(),
            created_at: due.event_created_at,
            org_id: due.org_id.clone(),
            data: due.data.0.clone(),
        };
        let body = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        let msg_id = due.event_id.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = secret.sign(&msg_id, timestamp, &body);
        let res = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e, self.settings.timeout))?;
        Ok(res.status())
    }

    /// Passes every `interval` until `shutdown`; purges old events about once an hour.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge: Option<Instant> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            // A pass in flight finishes its attempts (bounded by the timeout) even when
            // shutdown starts: its leases would otherwise delay those deliveries.
            match self.run_once().await {
                Ok(s) if s.attempts() > 0 => tracing::debug!(?s, "webhook pass"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::cause_chain(&e), "webhook pass failed");
                }
            }
            if last_purge.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                last_purge = Some(Instant::now());
                let before = crate::domain::now() - chrono::Duration::days(RETENTION_DAYS);
                if let Err(e) = self.store.purge_webhook_events(before, 1000).await {
                    tracing::warn!(error = %crate::telemetry::cause_chain(&e), "webhook purge failed");
                }
            }
        }
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// `delay` ±20 %, so endpoints that failed together do not all retry in the same instant.
fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(rand::thread_rng().gen_range(0.8..=1.2))
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("timed out after {} s", timeout.as_secs())
    } else if e.is_connect() {
        format!("connection failed: {}", crate::telemetry::cause_chain(e))
    } else {
        crate::telemetry::cause_chain(e)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(100));
            assert!(
                d >= Duration::from_secs(80) && d <= Duration::from_secs(120),
                "{d:?}"
            );
        }
    }
}
