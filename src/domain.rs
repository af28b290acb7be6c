//! Validated domain types: a value of one of these types exists only if it is valid
//! ("parse, don't validate"). Wire DTOs are converted into them with `TryFrom`/`parse`.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;

/// Why a raw value was refused; becomes a field error at the HTTP boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

static ORG_ID_RE: LazyLock<Regex> = LazyLock::new(|| {
    #[expect(
        clippy::expect_used,
        reason = "a constant pattern, covered by unit tests"
    )]
    Regex::new(r"^[A-Za-z0-9_-]{1,100}$").expect("valid org id pattern")
});

/// An organisation (tenant) id: `^[A-Za-z0-9_-]{1,100}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if ORG_ID_RE.is_match(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid("must match ^[A-Za-z0-9_-]{1,100}$"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Parses a UUID given in any of the usual textual forms.
pub fn parse_uuid(raw: &str) -> Result<uuid::Uuid, Invalid> {
    uuid::Uuid::try_parse(raw.trim()).map_err(|_| invalid("must be a UUID"))
}

/// An end user's id as the plugin knows it (a WordPress user id, an email, a visitor cookie).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EndUserId(String);

impl EndUserId {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(invalid(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if s.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        // `session:` and `key:` name owners that are not end users (see tools and stream tokens).
        if s.starts_with("session:") || s.starts_with("key:") {
            return Err(invalid("must not start with session: or key:"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A chat message as the agent will see it: trimmed, NFC-normalised, HTML tags stripped,
/// free of NUL and other control characters (tab and newlines are kept), and between 1 and the
/// organisation's maximum number of characters (Unicode scalar values, not bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, Invalid> {
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(invalid("must not contain NUL or control characters"));
        }
        // Strip every tag but keep the text: ammonia with an empty allow-list. It escapes
        // `<`, `>` and `&` in what remains, which would change the user's words, so undo that —
        // and repeat until nothing changes, or `&lt;img onerror=…&gt;` would come out of the
        // unescaping as a live tag.
        let mut text = raw.to_owned();
        let mut settled = false;
        for _ in 0..4 {
            let cleaned = ammonia::Builder::empty()
                .clean(&text)
                .to_string()
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&nbsp;", "\u{a0}")
                .replace("&amp;", "&");
            if cleaned == text {
                settled = true;
                break;
            }
            text = cleaned;
        }
        if !settled {
            return Err(invalid("must not contain (encoded) HTML markup"));
        }
        let text: String = text.trim().nfc().collect();
        let n = text.chars().count();
        if n == 0 {
            return Err(invalid("must not be empty"));
        }
        if n > max_chars {
            return Err(invalid(format!(
                "must be at most {max_chars} characters (got {n})"
            )));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_id_accepts_the_documented_alphabet() {
        assert!(OrgId::parse("acme_shop-1").is_ok());
        assert!(OrgId::parse(&"a".repeat(100)).is_ok());
    }

    #[test]
    fn org_id_refuses_empty_long_and_foreign_characters() {
        for bad in ["", "a b", "ä", "a/b", "a.b", &"a".repeat(101)] {
            assert!(OrgId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn uuid_parser_refuses_garbage() {
        assert!(parse_uuid("0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11").is_ok());
        assert!(parse_uuid("not-a-uuid").is_err());
    }

    #[test]
    fn message_text_is_trimmed_and_normalised_to_nfc() {
        // "e" + combining acute accent becomes the single precomposed character.
        let m = MessageText::parse("  Cafe\u{301}  ", 10).unwrap();
        assert_eq!(m.as_str(), "Caf\u{e9}");
    }

    #[test]
    fn message_text_strips_tags_but_keeps_text_and_symbols() {
        let m = MessageText::parse("<b>Hi</b> <script>alert(1)</script>a < b & c", 100).unwrap();
        assert_eq!(m.as_str(), "Hi a < b & c");
    }

    #[test]
    fn message_text_strips_tags_hidden_in_entities() {
        for sneaky in [
            "&lt;img src=x onerror=alert(1)&gt;hi",
            "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;hi",
        ] {
            let m = MessageText::parse(sneaky, 200).map(|m| m.as_str().to_owned());
            assert!(
                m.as_ref().is_err() || !m.as_ref().unwrap().contains('<'),
                "{sneaky:?} → {m:?}"
            );
        }
        assert_eq!(
            MessageText::parse("1 < 2 and 3 > 2", 50).unwrap().as_str(),
            "1 < 2 and 3 > 2"
        );
    }

    #[test]
    fn message_text_refuses_nul_and_control_characters_but_keeps_newlines() {
        assert!(MessageText::parse("a\0b", 10).is_err());
        assert!(MessageText::parse("a\u{7}b", 10).is_err());
        assert_eq!(MessageText::parse("a\nb", 10).unwrap().as_str(), "a\nb");
    }

    #[test]
    fn message_text_counts_characters_not_bytes() {
        assert!(MessageText::parse(&"ü".repeat(5), 5).is_ok());
        assert!(MessageText::parse(&"ü".repeat(6), 5).is_err());
    }

    #[test]
    fn message_text_refuses_empty_after_cleaning() {
        assert!(MessageText::parse("   ", 10).is_err());
        assert!(MessageText::parse("<p> </p>", 10).is_err());
    }

    #[test]
    fn end_user_id_is_trimmed_and_bounded() {
        assert_eq!(EndUserId::parse(" 42 ").unwrap().as_str(), "42");
        assert!(EndUserId::parse("").is_err());
        assert!(EndUserId::parse("a\u{1}").is_err());
        assert!(EndUserId::parse(&"x".repeat(201)).is_err());
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
