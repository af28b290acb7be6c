//! Webhooks: the target-address policy (no SSRF into private networks) and the settings of the
//! delivery worker. Event types and payloads live in `domain::events`, persistence (the outbox)
//! in `store::webhooks`, signing in [`signing`], delivery in [`worker`]. Guide:
//! docs/webhooks.md.

pub mod signing;
pub mod worker;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub use worker::{RunStats, Worker};

use crate::config::{DEFAULT_RETRY_SCHEDULE, parse_schedule};

/// What the delivery worker needs from the settings, parsed once.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Let targets resolve to loopback/private/link-local addresses (tests, trusted networks).
    pub allow_private_networks: bool,
    /// Delay before retry 1, 2, …; after the last one a delivery is marked failed.
    pub retry_schedule: Vec<Duration>,
    /// Disable an endpoint whose deliveries have failed without a success for this long.
    pub disable_after: Duration,
    /// Total time one attempt may take (connecting included).
    pub timeout: Duration,
    /// Pause between worker passes.
    pub interval: Duration,
}

impl WebhookSettings {
    /// From the server settings; `Settings::validate` has already refused a bad schedule, so
    /// one that still fails to parse (settings built in code) means the default schedule.
    pub fn from_settings(s: &crate::config::Settings) -> Self {
        let schedule = parse_schedule(&s.webhook_retry_schedule)
            .or_else(|_| parse_schedule(DEFAULT_RETRY_SCHEDULE))
            .unwrap_or_default();
        Self {
            allow_private_networks: s.webhook_allow_private_networks,
            retry_schedule: schedule,
            disable_after: Duration::from_secs(s.webhook_disable_after_seconds),
            timeout: Duration::from_secs(s.webhook_timeout_seconds.max(1)),
            interval: Duration::from_secs(s.webhook_worker_interval_seconds.max(1)),
        }
    }
}

/// False for addresses a webhook must not reach unless private networks are allowed:
/// unspecified, loopback, private (RFC 1918, ULA), link-local (cloud metadata lives at
/// 169.254.169.254), carrier-grade NAT (Alibaba's metadata is 100.100.100.200), multicast,
/// broadcast, documentation and reserved ranges — also when wrapped in IPv6.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            let o = v6.octets();
            let embedded = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
            // Forms that carry an IPv4 address a translator or the host stack may reach:
            // IPv4-translated (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d, which also
            // covers :: and ::1) and NAT64 (64:ff9b::/96). They are as public as the IPv4
            // address they carry.
            if (s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0)
                || s[..6] == [0; 6]
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4])
            {
                return is_public_v4(embedded);
            }
            // Everything else is judged by allow-list: only global unicast (2000::/3) can be
            // public, minus the special-purpose blocks inside it. Anything not listed here
            // (unique local, link-local, site-local, multicast, the local-use NAT64 prefix
            // 64:ff9b:1::/48, discard-only 100::/64, future ranges) is refused.
            (s[0] & 0xe000) == 0x2000
                && !((s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                    || s[0] == 0x3fff // documentation (RFC 9637)
                    || s[0] == 0x2002 // 6to4: embeds an IPv4 address
                    || (s[0] == 0x2001 && s[1] < 0x0200)) // IETF protocol assignments: Teredo, ORCHID, benchmarking
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240) // reserved
}

/// Why a target URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnsafeTarget(pub String);

/// Longest accepted target URL.
pub const MAX_URL_CHARS: usize = 2048;

/// Parses a target URL and checks its scheme and (unless `allow_private`) that every address
/// it resolves to is public. Runs at registration and again before every delivery, since DNS
/// answers can change; the worker's resolver also checks the addresses it connects to.
pub async fn check_target(raw: &str, allow_private: bool) -> Result<reqwest::Url, UnsafeTarget> {
    let refuse = |m: &str| Err(UnsafeTarget(m.to_owned()));
    if raw.chars().count() > MAX_URL_CHARS {
        return refuse("must be at most 2048 characters");
    }
    let Ok(url) = reqwest::Url::parse(raw.trim()) else {
        return refuse("must be an absolute http or https URL");
    };
    if !matches!(url.scheme(), "http" | "https") {
        return refuse("must use https or http");
    }
    let Some(host) = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
    else {
        return refuse("must have a host");
    };
    if allow_private {
        return Ok(url);
    }
    let private = "resolves to a loopback, private, link-local or metadata address; \
                   such targets are refused (operators may set WEBHOOK_ALLOW_PRIVATE_NETWORKS=true)";
    // The URL parser has already normalised IP literals (`0x7f.1` is 127.0.0.1).
    if let Ok(ip) = host.parse::<IpAddr>() {
        return if is_public(ip) {
            Ok(url)
        } else {
            refuse(private)
        };
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await;
    let addrs: Vec<_> = match lookup {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => return refuse("host name does not resolve"),
    };
    if addrs.is_empty() {
        refuse("host name does not resolve")
    } else if addrs.iter().any(|a| !is_public(a.ip())) {
        refuse(private)
    } else {
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every address form that reaches a private, loopback, link-local or metadata target is
    /// refused; the IPv4 embeddings of public addresses stay usable.
    #[test]
    fn private_and_metadata_addresses_are_not_public() {
        let table: &[(&str, bool, &str)] = &[
            ("127.0.0.1", false, "loopback"),
            ("10.0.0.1", false, "private"),
            ("172.16.5.4", false, "private"),
            ("192.168.1.1", false, "private"),
            ("169.254.169.254", false, "link-local metadata"),
            ("100.100.100.200", false, "carrier-grade NAT metadata"),
            ("0.0.0.0", false, "unspecified"),
            ("255.255.255.255", false, "broadcast"),
            ("240.0.0.1", false, "reserved"),
            ("::1", false, "loopback"),
            ("::", false, "unspecified"),
            ("fe80::1", false, "link-local"),
            ("fec0::1", false, "site-local"),
            ("fd00:ec2::254", false, "unique local metadata"),
            ("ff02::1", false, "multicast"),
            ("::ffff:127.0.0.1", false, "IPv4-mapped loopback"),
            ("::ffff:169.254.169.254", false, "IPv4-mapped metadata"),
            ("::ffff:0:7f00:1", false, "IPv4-translated loopback"),
            ("::ffff:0:a9fe:a9fe", false, "IPv4-translated metadata"),
            ("::ffff:0:a00:1", false, "IPv4-translated private"),
            ("::7f00:1", false, "IPv4-compatible loopback"),
            ("::a9fe:a9fe", false, "IPv4-compatible metadata"),
            ("64:ff9b::a00:1", false, "NAT64 private"),
            ("64:ff9b::7f00:1", false, "NAT64 loopback"),
            ("64:ff9b::a9fe:a9fe", false, "NAT64 metadata"),
            ("64:ff9b:1::a9fe:a9fe", false, "local-use NAT64"),
            ("2002:7f00:1::", false, "6to4"),
            ("2001:0:4136:e378::1", false, "Teredo"),
            ("2001:db8::1", false, "documentation"),
            ("3fff::1", false, "documentation"),
            ("100::1", false, "discard-only"),
            ("4000::1", false, "not global unicast"),
            ("93.184.216.34", true, "public IPv4"),
            ("1.1.1.1", true, "public IPv4"),
            ("2606:4700:4700::1111", true, "public IPv6"),
            ("::ffff:93.184.216.34", true, "IPv4-mapped public"),
            ("::ffff:0:5db8:d822", true, "IPv4-translated public"),
            ("64:ff9b::5db8:d822", true, "NAT64 public"),
        ];
        for (ip, public, why) in table {
            assert_eq!(is_public(ip.parse().unwrap()), *public, "{ip} ({why})");
        }
    }

    #[tokio::test]
    async fn targets_are_checked_for_scheme_and_address() {
        assert!(check_target("http://127.0.0.1/hook", false).await.is_err());
        assert!(check_target("http://0x7f.1/hook", false).await.is_err());
        assert!(check_target("http://[::1]:8080/", false).await.is_err());
        assert!(check_target("http://localhost/", false).await.is_err());
        assert!(check_target("ftp://93.184.216.34/", false).await.is_err());
        assert!(check_target("not a url", false).await.is_err());
        assert!(
            check_target("https://93.184.216.34/hook", false)
                .await
                .is_ok()
        );
        assert!(check_target("http://127.0.0.1/hook", true).await.is_ok());
    }

    #[test]
    fn schedules_parse_humantime_lists() {
        let s = parse_schedule("5s, 5m,30m,2h,5h,10h,10h").unwrap();
        assert_eq!(s.len(), 7);
        assert_eq!(s[1], Duration::from_secs(300));
        assert_eq!(parse_schedule("10ms").unwrap(), [Duration::from_millis(10)]);
        assert!(parse_schedule("soon").is_err());
        assert!(parse_schedule("").unwrap().is_empty());
    }
}
