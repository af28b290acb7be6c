//! Agents of the mailbox (issue 12): the [`AgentHandle`] an agent is addressed by in its
//! organisation.

use std::fmt;

use serde::Serialize;

use super::{Invalid, invalid};

/// An agent's handle: 1–64 characters of `a-z`, `0-9`, `.`, `_` and `-`, unique in its
/// organisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AgentHandle(String);

impl AgentHandle {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid(
                "must be 1 to 64 characters of a-z, 0-9, '.', '_' and '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A display name or description: trimmed, 1..=`max` characters (0 allowed when `may_be_empty`).
pub fn agent_text(raw: &str, max: usize, may_be_empty: bool) -> Result<String, Invalid> {
    let s = raw.trim();
    if s.is_empty() && !may_be_empty {
        return Err(invalid("must not be empty"));
    }
    if s.chars().count() > max {
        return Err(invalid(format!("must be at most {max} characters")));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_lower_case_words_with_dots_dashes_and_underscores() {
        for ok in ["a", "billing-bot", "team.planner_2", &"x".repeat(64)] {
            assert_eq!(AgentHandle::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "Billing",
            "with space",
            "é",
            "a/b",
            "a@b",
            &"x".repeat(65),
        ] {
            assert!(AgentHandle::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn agent_text_is_trimmed_and_bounded() {
        assert_eq!(agent_text("  Bot ", 10, false).unwrap(), "Bot");
        assert!(agent_text("  ", 10, false).is_err());
        assert_eq!(agent_text("", 10, true).unwrap(), "");
        assert!(agent_text("abcdefghijk", 10, true).is_err());
    }
}
