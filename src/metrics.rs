//! Prometheus metrics. One registry per app (no global recorder), so tests that run several
//! apps in one process each see their own numbers.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// One of the standard methods, or `OTHER` ([`method_label`]): bounded cardinality.
    pub method: &'static str,
    /// The route template (`/api/v1/admin/orgs/{org}`), never the raw path, or `unmatched`:
    /// bounded cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

/// The metric label of a request method: the standard ones by name, anything else (a client
/// may send any token as a method) folded into `OTHER`, so requests cannot mint series.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::TRACE => "TRACE",
        http::Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    /// argon2 verifications of API keys: should grow with new keys, not with requests.
    pub api_key_verifications: Counter,
    pub connections: ConnMetrics,
}

/// The connection loop's numbers (cheap clones of the registered metrics).
#[derive(Clone, Debug, Default)]
pub struct ConnMetrics {
    pub open: Gauge,
    pub refused: Counter,
    pub timed_out: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("agentd");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms … ~16 s
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to produce the response head, by method and route",
            http_duration.clone(),
        );
        let api_key_verifications = Counter::default();
        registry.register(
            "api_key_verifications",
            "argon2 verifications of API keys (cache misses)",
            api_key_verifications.clone(),
        );
        let connections = ConnMetrics::default();
        registry.register(
            "http_connections_open",
            "Client connections open now",
            connections.open.clone(),
        );
        registry.register(
            "http_connections_refused",
            "Connections answered 503 and closed because MAX_CONNECTIONS were open",
            connections.refused.clone(),
        );
        registry.register(
            "http_connections_timed_out",
            "Connections closed for sending a request head too slowly or for sitting idle",
            connections.timed_out.clone(),
        );
        Arc::new(Self {
            registry,
            http_requests,
            http_duration,
            api_key_verifications,
            connections,
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
