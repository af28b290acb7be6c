//! Validated free text. Every string the API accepts (JSON bodies, query parameters, path
//! segments) passes [`check_text`] at the edge, so both database backends store exactly the
//! same thing (PostgreSQL refuses NUL in text; SQLite would keep it). A [`MessageText`] is what
//! the agent reads: cleaned once more.

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use super::{Invalid, invalid};

/// Whether `c` is refused in text: NUL and the other control characters (C0, DEL and C1),
/// except tab, line feed and carriage return.
pub fn is_refused_char(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\r' | '\t')
}

/// The rule every accepted string follows: no NUL and no control characters other than tab,
/// line feed and carriage return.
pub fn check_text(raw: &str) -> Result<(), Invalid> {
    match raw.chars().find(|&c| is_refused_char(c)) {
        None => Ok(()),
        Some('\0') => Err(invalid("must not contain NUL characters")),
        Some(c) => Err(invalid(format!(
            "must not contain control characters (found U+{:04X})",
            u32::from(c)
        ))),
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
        check_text(raw)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn text_rule_refuses_c0_del_and_c1_controls_only() {
        for bad in ["\0", "a\u{1}", "\u{1b}[31m", "\u{7f}", "\u{85}", "\u{9f}"] {
            assert!(check_text(bad).is_err(), "{bad:?}");
        }
        for good in [
            "",
            "tab\there",
            "line\r\nbreak",
            "caf\u{e9}",
            "\u{a0}",
            "\u{200b}",
            "😀",
        ] {
            assert!(check_text(good).is_ok(), "{good:?}");
        }
        assert_eq!(
            check_text("a\0").unwrap_err().0,
            "must not contain NUL characters"
        );
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
}
