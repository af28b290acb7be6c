//! Identifiers as newtypes: an [`OrgId`] is never confused with an [`EndUserId`], nor a
//! [`ConversationId`] with a [`RunId`]. Each parses from its wire form and is valid once it exists.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Invalid, invalid};

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

/// Declares a UUID-backed id newtype: serialised, stored and documented as a plain UUID.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type, ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[schema(value_type = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7: indexes well).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(self) -> Uuid {
                self.0
            }

            /// Parses the textual form (any of the usual UUID spellings).
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                parse_uuid(raw).map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

uuid_id! {
    /// A conversation; a chat session is a conversation whose id the client chose.
    ConversationId
}

uuid_id! {
    /// One run of the agent: a turn.
    RunId
}

uuid_id! {
    /// One stored message.
    MessageId
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
    fn uuid_ids_print_and_parse_as_plain_uuids() {
        let id = ConversationId::new();
        assert_eq!(ConversationId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::json!(id.as_uuid())
        );
        assert!(RunId::parse("nope").is_err());
    }
    #[test]
    fn end_user_id_is_trimmed_and_bounded() {
        assert_eq!(EndUserId::parse(" 42 ").unwrap().as_str(), "42");
        assert!(EndUserId::parse("").is_err());
        assert!(EndUserId::parse("a\u{1}").is_err());
        assert!(EndUserId::parse(&"x".repeat(201)).is_err());
    }
}
