//! Organisations (tenants): their settings, the requests that create and change them, and the
//! validation both share. Persistence lives in `store::orgs`; the admin API and the CLI go
//! through the same [`OrgPatch`] so both front ends accept exactly the same input.
//!
//! Which tools exist is the agent's tool registry's business: validation takes the registry's
//! names as an argument, so no list of tool names is kept here.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FieldError, Invalid, OrgId, invalid};

/// Pricing tier; sets the default request quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// 100 requests per hour.
    Free,
    /// 500 requests per hour.
    Basic,
    /// 2000 requests per hour.
    Premium,
    /// Its own `rate_limit`.
    Custom,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Basic => "basic",
            Self::Premium => "premium",
            Self::Custom => "custom",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "free" => Ok(Self::Free),
            "basic" => Ok(Self::Basic),
            "premium" => Ok(Self::Premium),
            "custom" => Ok(Self::Custom),
            _ => Err(invalid("must be one of free, basic, premium, custom")),
        }
    }

    /// The quota of a fixed tier; `None` for `custom`, which carries its own.
    pub fn fixed_quota(self) -> Option<RateLimit> {
        let per_hour = |requests| RateLimit {
            requests,
            window_seconds: 3600,
        };
        match self {
            Self::Free => Some(per_hour(100)),
            Self::Basic => Some(per_hour(500)),
            Self::Premium => Some(per_hour(2000)),
            Self::Custom => None,
        }
    }
}

/// A request quota: `requests` per `window_seconds`, replenished smoothly (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    #[schema(example = 100, minimum = 1, maximum = 1000000)]
    pub requests: u32,
    #[schema(example = 3600, minimum = 1, maximum = 86400)]
    pub window_seconds: u32,
}

impl RateLimit {
    pub fn validate(self) -> Result<Self, Invalid> {
        if !(1..=1_000_000).contains(&self.requests) {
            return Err(invalid("requests must be between 1 and 1000000"));
        }
        if !(1..=86_400).contains(&self.window_seconds) {
            return Err(invalid("window_seconds must be between 1 and 86400"));
        }
        Ok(self)
    }
}

/// Checks that `raw` is a browser origin: `scheme://host[:port]` with no path, query or fragment.
pub fn parse_origin(raw: &str) -> Result<String, Invalid> {
    let bad = || {
        invalid(format!(
            "{raw:?} is not an origin like https://shop.example.com"
        ))
    };
    let uri: http::Uri = raw.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let path_ok = matches!(uri.path(), "" | "/") && !raw.ends_with('/');
    if !scheme_ok || uri.authority().is_none() || !path_ok || uri.query().is_some() {
        return Err(bad());
    }
    Ok(raw.to_ascii_lowercase())
}

/// Checks an IANA time zone name such as `Europe/Berlin`.
pub fn parse_time_zone(raw: &str) -> Result<chrono_tz::Tz, Invalid> {
    raw.parse::<chrono_tz::Tz>().map_err(|_| {
        invalid(format!(
            "{raw:?} is not an IANA time zone such as Europe/Berlin"
        ))
    })
}

/// Model parameters; unset fields fall back to the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    #[schema(example = "gpt-4o-mini")]
    pub model: Option<String>,
    #[schema(example = 0.3, minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f32>,
    #[schema(example = 512, minimum = 1, maximum = 128000)]
    pub max_tokens: Option<u32>,
}

/// A bookable service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Stable slug: lowercase letters, digits and dashes.
    #[schema(example = "general-consultation")]
    pub id: String,
    #[schema(example = "General Consultation")]
    pub name: String,
    #[schema(example = 30, minimum = 5, maximum = 1440)]
    pub duration_minutes: u32,
    /// Price in minor units (cents), so no rounding ever happens.
    #[serde(default)]
    #[schema(example = 5000)]
    pub price_cents: u64,
    /// ISO 4217 currency code.
    #[serde(default = "default_currency")]
    #[schema(example = "USD")]
    pub currency: String,
}

fn default_currency() -> String {
    "USD".to_owned()
}

/// One opening interval, local time in the organisation's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpeningHours {
    #[schema(example = "09:00")]
    pub open: String,
    #[schema(example = "17:00")]
    pub close: String,
}

/// Opening hours per weekday; a day with no intervals is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BusinessHours {
    pub mon: Vec<OpeningHours>,
    pub tue: Vec<OpeningHours>,
    pub wed: Vec<OpeningHours>,
    pub thu: Vec<OpeningHours>,
    pub fri: Vec<OpeningHours>,
    pub sat: Vec<OpeningHours>,
    pub sun: Vec<OpeningHours>,
}

impl BusinessHours {
    /// 09:00–17:00 on the days `open` says, closed on the others.
    fn nine_to_five(open: impl Fn(usize) -> bool) -> Self {
        let day = |i| {
            if open(i) {
                vec![OpeningHours {
                    open: "09:00".into(),
                    close: "17:00".into(),
                }]
            } else {
                Vec::new()
            }
        };
        Self {
            mon: day(0),
            tue: day(1),
            wed: day(2),
            thu: day(3),
            fri: day(4),
            sat: day(5),
            sun: day(6),
        }
    }

    /// Monday to Friday, 09:00–17:00.
    pub fn office_hours() -> Self {
        Self::nine_to_five(|day| day < 5)
    }

    /// Every day, 09:00–17:00: the demo clinic, so a first try works on a weekend too.
    pub fn every_day() -> Self {
        Self::nine_to_five(|_| true)
    }

    fn days(&self) -> [(&'static str, &Vec<OpeningHours>); 7] {
        [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ]
    }
}

/// What a turn does when another turn of the same conversation is running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TurnPolicy {
    /// Wait for it (bounded by TURN_QUEUE_TIMEOUT_SECONDS), then run.
    #[default]
    Enqueue,
    /// Refuse at once with 409 `TURN_IN_PROGRESS`.
    Reject,
}

/// How numeric dates such as `5/12` are read: day first (5 December, most of the world) or
/// month first (12 May, the United States).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DateOrder {
    DayFirst,
    MonthFirst,
}

/// Everything about an organisation's agent that an operator can set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgSettings {
    /// Instructions prepended to every conversation.
    #[schema(example = "You are the friendly assistant of Acme Dental.")]
    pub system_prompt: String,
    pub model: ModelSettings,
    /// Tool names the agent may call (the tool registry's names; see docs/agent.md).
    pub enabled_tools: Vec<String>,
    pub services: Vec<Service>,
    pub business_hours: BusinessHours,
    /// IANA time zone of the business hours and of dates the agent understands.
    #[schema(example = "Europe/Berlin")]
    pub time_zone: String,
    /// Browser origins allowed to call the API with this organisation's tokens (CORS).
    #[schema(example = json!(["https://shop.example.com"]))]
    pub allowed_origins: Vec<String>,
    /// Sessions idle longer than this are erased.
    #[schema(example = 172800)]
    pub session_ttl_seconds: u64,
    /// Longest accepted chat message, in characters.
    #[schema(example = 2000)]
    pub max_message_chars: u32,
    /// Concurrent turns on one conversation: `enqueue` (default) or `reject`.
    #[serde(default)]
    pub turn_policy: TurnPolicy,
    /// How the agent reads numeric dates such as `5/12`: `day_first` or `month_first`.
    /// Unset (null), a date that reads differently both ways is asked about.
    #[serde(default)]
    pub date_order: Option<DateOrder>,
}

impl OrgSettings {
    /// The time zone (validated on every write; UTC should a stored one ever fail to parse).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC)
    }
}

impl Default for OrgSettings {
    fn default() -> Self {
        Self {
            system_prompt:
                "You are a helpful assistant for this business. Be concise and friendly.".to_owned(),
            model: ModelSettings::default(),
            // Filled with every registered tool when an organisation is created.
            enabled_tools: Vec::new(),
            services: Vec::new(),
            business_hours: BusinessHours::office_hours(),
            time_zone: "UTC".to_owned(),
            allowed_origins: Vec::new(),
            session_ttl_seconds: 48 * 3600,
            max_message_chars: 2000,
            turn_policy: TurnPolicy::Enqueue,
            date_order: None,
        }
    }
}

/// An organisation as stored and as the admin API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Org {
    #[schema(value_type = String, example = "acme")]
    pub id: OrgId,
    #[schema(example = "Acme Dental")]
    pub name: String,
    /// A deactivated organisation's keys and tokens get 403 `ORG_INACTIVE`.
    pub active: bool,
    pub tier: Tier,
    /// The quota in force: the tier's, or the custom one.
    pub rate_limit: RateLimit,
    #[serde(flatten)]
    pub settings: OrgSettings,
    /// Increases by one on every change; send it back (or the ETag as `If-Match`) to update.
    #[schema(example = 1)]
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Org {
    /// The strong ETag of this version.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }

    /// The settable content of this organisation.
    pub fn draft(&self) -> OrgDraft {
        OrgDraft {
            name: self.name.clone(),
            active: self.active,
            tier: self.tier,
            rate_limit: self.rate_limit,
            settings: self.settings.clone(),
        }
    }
}

/// The validated content of a new or changed organisation, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgDraft {
    pub name: String,
    pub active: bool,
    pub tier: Tier,
    pub rate_limit: RateLimit,
    pub settings: OrgSettings,
}

// The create and update bodies share every settable field; one macro keeps the two
// `deny_unknown_fields` structs (and so their OpenAPI schemas) from drifting apart.
macro_rules! org_body {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Display name.
            #[schema(example = "Acme Dental")]
            pub name: Option<String>,
            pub active: Option<bool>,
            pub tier: Option<Tier>,
            /// Required with tier `custom`, refused otherwise.
            pub rate_limit: Option<RateLimit>,
            pub system_prompt: Option<String>,
            pub model: Option<ModelSettings>,
            pub enabled_tools: Option<Vec<String>>,
            pub services: Option<Vec<Service>>,
            pub business_hours: Option<BusinessHours>,
            #[schema(example = "Europe/Berlin")]
            pub time_zone: Option<String>,
            pub allowed_origins: Option<Vec<String>>,
            #[schema(minimum = 60, maximum = 2592000)]
            pub session_ttl_seconds: Option<u64>,
            #[schema(minimum = 1, maximum = 32000)]
            pub max_message_chars: Option<u32>,
            pub turn_policy: Option<TurnPolicy>,
            /// `day_first` or `month_first`; unset, ambiguous numeric dates are asked about.
            pub date_order: Option<DateOrder>,
        }

        impl $name {
            /// The settable fields, detached from the request's own (`id`, `version`).
            pub fn patch(&self) -> OrgPatch {
                OrgPatch {
                    name: self.name.clone(),
                    active: self.active,
                    tier: self.tier,
                    rate_limit: self.rate_limit,
                    system_prompt: self.system_prompt.clone(),
                    model: self.model.clone(),
                    enabled_tools: self.enabled_tools.clone(),
                    services: self.services.clone(),
                    business_hours: self.business_hours.clone(),
                    time_zone: self.time_zone.clone(),
                    allowed_origins: self.allowed_origins.clone(),
                    session_ttl_seconds: self.session_ttl_seconds,
                    max_message_chars: self.max_message_chars,
                    turn_policy: self.turn_policy,
                    date_order: self.date_order,
                }
            }
        }
    };
}

org_body! {
    /// Body of `POST /api/v1/admin/orgs`. Unset fields take their defaults.
    NewOrg {
        /// `^[A-Za-z0-9_-]{1,100}$`; chosen by you, never changes.
        #[schema(example = "acme")]
        id: String,
    }
}

org_body! {
    /// Body of `PATCH /api/v1/admin/orgs/{org}`. Only the fields present change.
    UpdateOrg {
        /// Optimistic concurrency: the version you read. Mismatch → 412 (or use `If-Match`).
        version: Option<i64>,
    }
}

/// Fields to set on an organisation; `None` keeps the current (or default) value.
#[derive(Debug, Clone, Default)]
pub struct OrgPatch {
    pub name: Option<String>,
    pub active: Option<bool>,
    pub tier: Option<Tier>,
    pub rate_limit: Option<RateLimit>,
    pub system_prompt: Option<String>,
    pub model: Option<ModelSettings>,
    pub enabled_tools: Option<Vec<String>>,
    pub services: Option<Vec<Service>>,
    pub business_hours: Option<BusinessHours>,
    pub time_zone: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub session_ttl_seconds: Option<u64>,
    pub max_message_chars: Option<u32>,
    pub turn_policy: Option<TurnPolicy>,
    pub date_order: Option<DateOrder>,
}

impl OrgPatch {
    /// A new organisation's draft: defaults (every tool of `known_tools` enabled) overlaid with
    /// this patch, then validated whole.
    pub fn into_new_draft(
        self,
        id: &str,
        known_tools: &[&str],
    ) -> Result<(OrgId, OrgDraft), Vec<FieldError>> {
        let org_id = OrgId::parse(id);
        let fallback_name = id.to_owned();
        let base = OrgDraft {
            name: fallback_name,
            active: true,
            tier: Tier::Free,
            rate_limit: Tier::Free.fixed_quota().unwrap_or(RateLimit {
                requests: 100,
                window_seconds: 3600,
            }),
            settings: OrgSettings {
                enabled_tools: known_tools.iter().map(|t| (*t).to_owned()).collect(),
                ..OrgSettings::default()
            },
        };
        let draft = self.apply(base, None, known_tools);
        match (org_id, draft) {
            (Ok(id), Ok(draft)) => Ok((id, draft)),
            (id, draft) => {
                let mut errors = Vec::new();
                if let Err(e) = id {
                    errors.push(FieldError::new("id", e.0));
                }
                if let Err(mut e) = draft {
                    errors.append(&mut e);
                }
                Err(errors)
            }
        }
    }

    /// The organisation as it will be after this patch, validated whole.
    pub fn apply_to(self, org: &Org, known_tools: &[&str]) -> Result<OrgDraft, Vec<FieldError>> {
        self.apply(org.draft(), Some(org.tier), known_tools)
    }

    fn apply(
        self,
        mut d: OrgDraft,
        old_tier: Option<Tier>,
        known_tools: &[&str],
    ) -> Result<OrgDraft, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err = |field: &str, msg: String| errors.push(FieldError::new(field, msg));

        if let Some(name) = self.name {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                err("name", "must be 1 to 200 characters".into());
            }
            d.name = name.to_owned();
        }
        if let Some(active) = self.active {
            d.active = active;
        }
        let tier = self.tier.unwrap_or(d.tier);
        match (tier.fixed_quota(), self.rate_limit) {
            (Some(_), Some(_)) => err(
                "rate_limit",
                format!(
                    "only tier custom takes a rate_limit; tier {} has a fixed quota",
                    tier.as_str()
                ),
            ),
            (Some(q), None) => d.rate_limit = q,
            (None, Some(rl)) => match rl.validate() {
                Ok(rl) => d.rate_limit = rl,
                Err(e) => err("rate_limit", e.0),
            },
            // Staying on custom keeps the quota it has; switching to custom needs one.
            (None, None) if old_tier != Some(Tier::Custom) => {
                err("rate_limit", "required with tier custom".into());
            }
            (None, None) => {}
        }
        d.tier = tier;

        let s = &mut d.settings;
        if let Some(p) = self.system_prompt {
            if p.chars().count() > 20_000 {
                err("system_prompt", "must be at most 20000 characters".into());
            }
            s.system_prompt = p;
        }
        if let Some(m) = self.model {
            if let Some(name) = &m.model {
                if name.trim().is_empty() || name.len() > 200 {
                    err("model.model", "must be 1 to 200 characters".into());
                }
            }
            if let Some(t) = m.temperature {
                if !(0.0..=2.0).contains(&t) {
                    err("model.temperature", "must be between 0 and 2".into());
                }
            }
            if let Some(t) = m.max_tokens {
                if !(1..=128_000).contains(&t) {
                    err("model.max_tokens", "must be between 1 and 128000".into());
                }
            }
            s.model = m;
        }
        if let Some(tools) = self.enabled_tools {
            let mut seen = HashSet::new();
            for (i, t) in tools.iter().enumerate() {
                if !known_tools.contains(&t.as_str()) {
                    err(
                        &format!("enabled_tools[{i}]"),
                        format!(
                            "unknown tool {t:?}; known tools: {}",
                            known_tools.join(", ")
                        ),
                    );
                } else if !seen.insert(t) {
                    err(
                        &format!("enabled_tools[{i}]"),
                        format!("{t:?} is listed twice"),
                    );
                }
            }
            s.enabled_tools = tools;
        }
        if let Some(services) = self.services {
            validate_services(&services, &mut err);
            s.services = services;
        }
        if let Some(hours) = self.business_hours {
            validate_hours(&hours, &mut err);
            s.business_hours = hours;
        }
        if let Some(tz) = self.time_zone {
            if let Err(e) = parse_time_zone(&tz) {
                err("time_zone", e.0);
            }
            s.time_zone = tz;
        }
        if let Some(origins) = self.allowed_origins {
            if origins.len() > 50 {
                err("allowed_origins", "at most 50 origins".into());
            }
            let mut clean = Vec::with_capacity(origins.len());
            for (i, o) in origins.iter().enumerate() {
                match parse_origin(o) {
                    Ok(o) => clean.push(o),
                    Err(e) => err(&format!("allowed_origins[{i}]"), e.0),
                }
            }
            s.allowed_origins = clean;
        }
        if let Some(ttl) = self.session_ttl_seconds {
            if !(60..=2_592_000).contains(&ttl) {
                err(
                    "session_ttl_seconds",
                    "must be between 60 and 2592000 (30 days)".into(),
                );
            }
            s.session_ttl_seconds = ttl;
        }
        if let Some(max) = self.max_message_chars {
            if !(1..=32_000).contains(&max) {
                err("max_message_chars", "must be between 1 and 32000".into());
            }
            s.max_message_chars = max;
        }
        if let Some(p) = self.turn_policy {
            s.turn_policy = p;
        }
        if let Some(order) = self.date_order {
            s.date_order = Some(order);
        }
        if errors.is_empty() {
            Ok(d)
        } else {
            Err(errors)
        }
    }
}

static SLUG_RE: LazyLock<Regex> = LazyLock::new(|| {
    #[expect(
        clippy::expect_used,
        reason = "a constant pattern, covered by unit tests"
    )]
    Regex::new(r"^[a-z0-9][a-z0-9-]{0,63}$").expect("valid slug pattern")
});

fn validate_services(services: &[Service], err: &mut impl FnMut(&str, String)) {
    if services.len() > 200 {
        err("services", "at most 200 services".into());
    }
    let mut ids = HashSet::new();
    for (i, svc) in services.iter().enumerate() {
        let at = |f: &str| format!("services[{i}].{f}");
        if !SLUG_RE.is_match(&svc.id) {
            err(
                &at("id"),
                "must be a slug: lowercase letters, digits, dashes (max 64)".into(),
            );
        } else if !ids.insert(svc.id.as_str()) {
            err(&at("id"), format!("{:?} is used twice", svc.id));
        }
        if svc.name.trim().is_empty() || svc.name.chars().count() > 200 {
            err(&at("name"), "must be 1 to 200 characters".into());
        }
        if !(5..=1440).contains(&svc.duration_minutes) {
            err(&at("duration_minutes"), "must be between 5 and 1440".into());
        }
        if svc.currency.len() != 3 || !svc.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            err(
                &at("currency"),
                "must be an ISO 4217 code such as USD".into(),
            );
        }
    }
}

fn parse_hhmm(raw: &str) -> Result<NaiveTime, Invalid> {
    if raw.len() != 5 {
        return Err(Invalid("must be HH:MM (24-hour)".into()));
    }
    NaiveTime::parse_from_str(raw, "%H:%M").map_err(|_| Invalid("must be HH:MM (24-hour)".into()))
}

fn validate_hours(hours: &BusinessHours, err: &mut impl FnMut(&str, String)) {
    for (day, intervals) in hours.days() {
        let mut parsed = Vec::new();
        for (i, iv) in intervals.iter().enumerate() {
            let at = |f: &str| format!("business_hours.{day}[{i}].{f}");
            match (parse_hhmm(&iv.open), parse_hhmm(&iv.close)) {
                (Ok(o), Ok(c)) if o < c => parsed.push((o, c)),
                (Ok(_), Ok(_)) => err(&at("close"), "must be later than open".into()),
                (o, c) => {
                    if let Err(e) = o {
                        err(&at("open"), e.0);
                    }
                    if let Err(e) = c {
                        err(&at("close"), e.0);
                    }
                }
            }
        }
        parsed.sort();
        if parsed.windows(2).any(|w| w[1].0 < w[0].1) {
            err(&format!("business_hours.{day}"), "intervals overlap".into());
        }
    }
}

/// The services the first-run `demo` organisation offers.
pub fn demo_services() -> Vec<Service> {
    let svc = |id: &str, name: &str, minutes, cents| Service {
        id: id.to_owned(),
        name: name.to_owned(),
        duration_minutes: minutes,
        price_cents: cents,
        currency: default_currency(),
    };
    vec![
        svc("general-consultation", "General Consultation", 30, 5000),
        svc("follow-up", "Follow-up Visit", 15, 2500),
        svc("extended-session", "Extended Session", 60, 9000),
    ]
}

/// An organisation for unit tests: `test`, the demo services, open every day 09:00–17:00 in
/// Berlin, no tools enabled (tests enable what they use).
#[cfg(test)]
pub fn test_org() -> Org {
    let now = chrono::Utc::now();
    Org {
        id: OrgId::parse("test").unwrap(),
        name: "Test".to_owned(),
        active: true,
        tier: Tier::Free,
        rate_limit: RateLimit {
            requests: 100,
            window_seconds: 3600,
        },
        settings: OrgSettings {
            services: demo_services(),
            business_hours: BusinessHours::every_day(),
            time_zone: "Europe/Berlin".to_owned(),
            ..OrgSettings::default()
        },
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOLS: &[&str] = &["list_things", "do_thing"];

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_new_org_gets_defaults() {
        let (id, d) = OrgPatch::default().into_new_draft("acme", TOOLS).unwrap();
        assert_eq!(id.as_str(), "acme");
        assert_eq!(d.name, "acme");
        assert_eq!(d.tier, Tier::Free);
        assert_eq!(d.rate_limit.requests, 100);
        assert_eq!(d.settings.max_message_chars, 2000);
        assert_eq!(d.settings.session_ttl_seconds, 172_800);
        assert_eq!(d.settings.enabled_tools, TOOLS);
    }

    #[test]
    fn custom_tier_requires_a_rate_limit_and_fixed_tiers_refuse_one() {
        let p = OrgPatch {
            tier: Some(Tier::Custom),
            ..Default::default()
        };
        assert_eq!(
            fields(&p.into_new_draft("a", TOOLS).unwrap_err()),
            ["rate_limit"]
        );
        let p = OrgPatch {
            tier: Some(Tier::Basic),
            rate_limit: Some(RateLimit {
                requests: 1,
                window_seconds: 1,
            }),
            ..Default::default()
        };
        assert_eq!(
            fields(&p.into_new_draft("a", TOOLS).unwrap_err()),
            ["rate_limit"]
        );
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let p = OrgPatch {
            name: Some(" ".into()),
            time_zone: Some("Nowhere/City".into()),
            enabled_tools: Some(vec!["launch_rockets".into()]),
            allowed_origins: Some(vec!["https://ok.example".into(), "not an origin".into()]),
            max_message_chars: Some(0),
            ..Default::default()
        };
        let errs = p.into_new_draft("bad id", TOOLS).unwrap_err();
        assert_eq!(
            fields(&errs),
            [
                "id",
                "name",
                "enabled_tools[0]",
                "time_zone",
                "allowed_origins[1]",
                "max_message_chars"
            ]
        );
    }

    #[test]
    fn business_hours_must_be_ordered_and_disjoint() {
        let iv = |o: &str, c: &str| OpeningHours {
            open: o.into(),
            close: c.into(),
        };
        let hours = BusinessHours {
            mon: vec![iv("09:00", "12:00"), iv("11:00", "13:00")],
            tue: vec![iv("17:00", "09:00")],
            wed: vec![iv("9am", "17:00")],
            ..Default::default()
        };
        let p = OrgPatch {
            business_hours: Some(hours),
            ..Default::default()
        };
        assert_eq!(
            fields(&p.into_new_draft("a", TOOLS).unwrap_err()),
            [
                "business_hours.mon",
                "business_hours.tue[0].close",
                "business_hours.wed[0].open"
            ]
        );
    }

    #[test]
    fn services_need_unique_slugs_and_sane_durations() {
        let mut s = demo_services();
        s[1].id = s[0].id.clone();
        s[2].duration_minutes = 0;
        let p = OrgPatch {
            services: Some(s),
            ..Default::default()
        };
        assert_eq!(
            fields(&p.into_new_draft("a", TOOLS).unwrap_err()),
            ["services[1].id", "services[2].duration_minutes"]
        );
    }

    #[test]
    fn demo_services_are_valid() {
        let p = OrgPatch {
            services: Some(demo_services()),
            ..Default::default()
        };
        assert!(p.into_new_draft("demo", TOOLS).is_ok());
    }

    #[test]
    fn origins_must_have_no_path() {
        assert_eq!(
            parse_origin("https://Shop.example.com").unwrap(),
            "https://shop.example.com"
        );
        assert!(parse_origin("http://localhost:3000").is_ok());
        for bad in [
            "shop.example.com",
            "https://a.com/path",
            "https://a.com/",
            "ftp://a.com",
            "*",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad:?} accepted");
        }
    }
    #[test]
    fn tiers_have_the_documented_quotas() {
        assert_eq!(Tier::Free.fixed_quota().unwrap().requests, 100);
        assert_eq!(Tier::Basic.fixed_quota().unwrap().requests, 500);
        assert_eq!(Tier::Premium.fixed_quota().unwrap().requests, 2000);
        assert!(Tier::Custom.fixed_quota().is_none());
    }
    #[test]
    fn time_zones_are_iana_names() {
        assert!(parse_time_zone("Europe/Berlin").is_ok());
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }
}
