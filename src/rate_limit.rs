//! Per-organisation request quotas with a per-end-user share, using governor's GCRA.
//!
//! Each organisation has one lock-free limiter for its whole quota plus a keyed limiter for its
//! end users, each of whom may use `end_user_share` of the quota on their own: one busy visitor
//! cannot starve a whole shop. The limiter remembers the quota it was built for; when an org's
//! tier changes, the next request sees the new quota (via the org cache) and rebuilds it, so a
//! change takes effect without a restart. Rebuilding starts the new quota full.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota};

use crate::domain::{OrgId, RateLimit};

type DirectLimiter =
    governor::RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
type KeyedLimiter = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// The outcome of one check, ready to become `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Requests per window of the quota that bound this request.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// Seconds until the quota is whole again.
    pub reset_seconds: u64,
    /// `Some(seconds)` when the request is refused.
    pub retry_after: Option<u64>,
}

struct Bucket {
    quota: RateLimit,
    /// Time to earn back one request.
    period: Duration,
}

impl Bucket {
    fn new(quota: RateLimit) -> (Self, Quota) {
        let requests = NonZeroU32::new(quota.requests).unwrap_or(NonZeroU32::MIN);
        let period = (Duration::from_secs(u64::from(quota.window_seconds)) / requests.get())
            .max(Duration::from_nanos(1));
        let gq = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(requests))
            .allow_burst(requests);
        (Self { quota, period }, gq)
    }

    fn decide(
        &self,
        result: Result<StateSnapshot, NotUntil<<DefaultClock as Clock>::Instant>>,
        clock: &DefaultClock,
    ) -> Decision {
        let limit = self.quota.requests;
        match result {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    limit,
                    remaining,
                    reset_seconds: ceil_secs(self.period * (limit - remaining.min(limit))),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(clock.now());
                Decision {
                    limit,
                    remaining: 0,
                    reset_seconds: ceil_secs(wait + self.period * limit.saturating_sub(1)),
                    retry_after: Some(ceil_secs(wait).max(1)),
                }
            }
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

struct OrgLimiter {
    org: Bucket,
    org_limiter: DirectLimiter,
    user: Bucket,
    user_limiter: KeyedLimiter,
}

impl OrgLimiter {
    fn new(quota: RateLimit, share: f64) -> Self {
        let (org, org_quota) = Bucket::new(quota);
        let user_requests =
            ((f64::from(quota.requests) * share).ceil() as u32).clamp(1, quota.requests);
        let (user, user_quota) = Bucket::new(RateLimit {
            requests: user_requests,
            window_seconds: quota.window_seconds,
        });
        Self {
            org,
            org_limiter: governor::RateLimiter::direct(org_quota).with_middleware(),
            user,
            user_limiter: governor::RateLimiter::keyed(user_quota).with_middleware(),
        }
    }
}

/// All organisations' limiters; cheap to clone.
#[derive(Clone)]
pub struct OrgRateLimiter {
    orgs: moka::sync::Cache<OrgId, Arc<OrgLimiter>>,
    end_user_share: f64,
    clock: DefaultClock,
}

impl OrgRateLimiter {
    /// `end_user_share` in (0, 1]: the fraction of the org's quota one end user may use.
    pub fn new(end_user_share: f64) -> Self {
        Self {
            // Idle orgs are dropped after a day; their quota would be whole again by then.
            orgs: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(86_400))
                .build(),
            end_user_share: end_user_share.clamp(0.001, 1.0),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of `org` (and of `end_user`, when the caller is one) against its quota.
    pub fn check(&self, org: &OrgId, quota: RateLimit, end_user: Option<&str>) -> Decision {
        let limiter = match self.orgs.get(org) {
            Some(l) if l.org.quota == quota => l,
            _ => {
                let l = Arc::new(OrgLimiter::new(quota, self.end_user_share));
                self.orgs.insert(org.clone(), Arc::clone(&l));
                l
            }
        };
        // The end user's share first, so a refused user does not spend the org's quota.
        let user = end_user.map(|u| {
            limiter
                .user
                .decide(limiter.user_limiter.check_key(&u.to_owned()), &self.clock)
        });
        if let Some(d) = user.filter(|d| d.retry_after.is_some()) {
            return d;
        }
        let org_decision = limiter.org.decide(limiter.org_limiter.check(), &self.clock);
        match user {
            Some(u)
                if u.remaining < org_decision.remaining && org_decision.retry_after.is_none() =>
            {
                u
            }
            _ => org_decision,
        }
    }

    /// Forgets end users whose share is whole again; call now and then to bound memory.
    pub fn housekeeping(&self) {
        for (_, l) in self.orgs.iter() {
            l.user_limiter.retain_recent();
            l.user_limiter.shrink_to_fit();
        }
    }
}

/// What an agent of the mailbox is charged for (issue 12.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAction {
    /// A message, reply, group message or broadcast.
    Send,
    /// A message or contact search.
    Search,
}

struct KeyedBucket {
    bucket: Bucket,
    limiter: KeyedLimiter,
}

impl KeyedBucket {
    fn new(per_minute: u32) -> Self {
        let (bucket, quota) = Bucket::new(RateLimit {
            requests: per_minute.max(1),
            window_seconds: 60,
        });
        Self {
            bucket,
            limiter: governor::RateLimiter::keyed(quota).with_middleware(),
        }
    }
}

/// The mailbox's token buckets per agent (issue 12.6): sends and searches a minute per agent
/// handle, inside the organisation's own quota (which the auth layer charges first).
#[derive(Clone)]
pub struct AgentRateLimiter {
    sends: Arc<KeyedBucket>,
    searches: Arc<KeyedBucket>,
    clock: DefaultClock,
}

impl AgentRateLimiter {
    pub fn new(sends_per_minute: u32, searches_per_minute: u32) -> Self {
        Self {
            sends: Arc::new(KeyedBucket::new(sends_per_minute)),
            searches: Arc::new(KeyedBucket::new(searches_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one `action` of agent `handle` of `org`.
    pub fn check(&self, org: &OrgId, handle: &str, action: AgentAction) -> Decision {
        let b = match action {
            AgentAction::Send => &self.sends,
            AgentAction::Search => &self.searches,
        };
        let key = format!("{org}\u{0}{handle}");
        b.bucket.decide(b.limiter.check_key(&key), &self.clock)
    }

    /// Forgets agents whose buckets are whole again.
    pub fn housekeeping(&self) {
        for b in [&self.sends, &self.searches] {
            b.limiter.retain_recent();
            b.limiter.shrink_to_fit();
        }
    }
}

/// Failed authentications per client address. Within the allowance failures cost nothing
/// more; past it, the address gets `429` for every credential it presents — right or wrong,
/// API key, token or admin token — until the allowance refills, so guessing is slow whatever
/// is guessed.
#[derive(Clone)]
pub struct AuthFailureLimiter {
    limiter: Arc<
        governor::RateLimiter<
            std::net::IpAddr,
            DefaultKeyedStateStore<std::net::IpAddr>,
            DefaultClock,
        >,
    >,
    /// Addresses past their allowance, until when.
    blocked: moka::sync::Cache<std::net::IpAddr, std::time::Instant>,
}

impl AuthFailureLimiter {
    /// `per_minute` failures a minute, all at once if need be.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: Arc::new(governor::RateLimiter::keyed(Quota::per_minute(per_minute))),
            blocked: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    /// Seconds `ip` must wait before presenting a credential again, if it is blocked.
    pub fn blocked(&self, ip: std::net::IpAddr) -> Option<u64> {
        let until = self.blocked.get(&ip)?;
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            self.blocked.invalidate(&ip);
            None
        } else {
            Some(ceil_secs(left).max(1))
        }
    }

    /// Counts a failed authentication from `ip`; the seconds to wait when that was one too
    /// many.
    pub fn failed(&self, ip: std::net::IpAddr) -> Option<u64> {
        match self.limiter.check_key(&ip) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                self.blocked.insert(ip, std::time::Instant::now() + wait);
                Some(ceil_secs(wait).max(1))
            }
        }
    }

    /// Forgets addresses whose allowance is whole again.
    pub fn housekeeping(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_allowance_block_the_address() {
        let l = AuthFailureLimiter::new(3);
        let ip: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        let other: std::net::IpAddr = "203.0.113.8".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.failed(ip), None);
        }
        assert_eq!(l.blocked(ip), None);
        let wait = l.failed(ip).unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(l.blocked(ip).is_some());
        assert_eq!(l.blocked(other), None);
    }

    fn org(id: &str) -> OrgId {
        OrgId::parse(id).unwrap()
    }

    const THREE_PER_HOUR: RateLimit = RateLimit {
        requests: 3,
        window_seconds: 3600,
    };

    #[test]
    fn counts_down_then_refuses_with_retry_after() {
        let rl = OrgRateLimiter::new(1.0);
        let a = org("a");
        let remaining: Vec<u32> = (0..3)
            .map(|_| rl.check(&a, THREE_PER_HOUR, None).remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = rl.check(&a, THREE_PER_HOUR, None);
        assert_eq!(refused.remaining, 0);
        // One request comes back every 20 minutes.
        let retry = refused.retry_after.unwrap();
        assert!((1..=1200).contains(&retry), "{retry}");
    }

    #[test]
    fn orgs_do_not_share_quota() {
        let rl = OrgRateLimiter::new(1.0);
        for _ in 0..3 {
            rl.check(&org("a"), THREE_PER_HOUR, None);
        }
        assert!(
            rl.check(&org("a"), THREE_PER_HOUR, None)
                .retry_after
                .is_some()
        );
        assert!(
            rl.check(&org("b"), THREE_PER_HOUR, None)
                .retry_after
                .is_none()
        );
    }

    #[test]
    fn one_end_user_cannot_use_the_whole_org_quota() {
        let rl = OrgRateLimiter::new(0.5);
        let q = RateLimit {
            requests: 4,
            window_seconds: 3600,
        };
        let a = org("a");
        assert!(rl.check(&a, q, Some("alice")).retry_after.is_none());
        assert!(rl.check(&a, q, Some("alice")).retry_after.is_none());
        assert!(rl.check(&a, q, Some("alice")).retry_after.is_some());
        assert!(rl.check(&a, q, Some("bob")).retry_after.is_none());
    }

    #[test]
    fn a_new_quota_takes_effect_at_once() {
        let rl = OrgRateLimiter::new(1.0);
        let a = org("a");
        for _ in 0..3 {
            rl.check(&a, THREE_PER_HOUR, None);
        }
        let bigger = RateLimit {
            requests: 10,
            window_seconds: 3600,
        };
        let d = rl.check(&a, bigger, None);
        assert_eq!((d.limit, d.remaining, d.retry_after), (10, 9, None));
    }
}
