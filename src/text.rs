//! Text that people typed and the hub stores or shows to others: chat
//! messages, user names, and every other stored string. One rule for every
//! backend: PostgreSQL refuses NUL in text while SQLite keeps it, so the hub
//! refuses control characters at the edge instead of letting the two differ.
//! It also refuses the explicit bidirectional embeddings, overrides and
//! isolates: one of them in a name or a message reorders what follows it on
//! screen ("abc\u{202E}gpj.exe" shows as "abcexe.jpg"), so a reader sees
//! other text than was sent. Right-to-left scripts need none of them.

/// A control character where text may not hold one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("control character U+{:04X} at character {index} is not allowed (of the controls, only tab and newline are)", u32::from(*found))]
pub struct ControlChar {
    pub found: char,
    /// Position in characters, counted from 0.
    pub index: usize,
}

/// Refuses C0 control characters (U+0000 to U+001F) other than tab and
/// newline, DEL (U+007F), and the bidirectional embeddings and overrides
/// (U+202A to U+202E) and isolates (U+2066 to U+2069).
pub fn check(text: &str) -> Result<(), ControlChar> {
    let refused = |c: char| {
        (c.is_ascii_control() && !matches!(c, '\t' | '\n'))
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    match text.chars().enumerate().find(|(_, c)| refused(*c)) {
        Some((index, found)) => Err(ControlChar { found, index }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_and_newline_pass_and_other_controls_are_refused() {
        assert_eq!(check("hello\tworld\nand more ✓"), Ok(()));
        assert_eq!(
            check("a\u{0}b"),
            Err(ControlChar {
                found: '\0',
                index: 1
            })
        );
        for bad in ["\r", "\u{1b}[2J", "x\u{7f}", "\u{1f}"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bidirectional_overrides_are_refused_and_right_to_left_text_passes() {
        for bad in [
            "abc\u{202E}gpj.exe",
            "\u{202A}x",
            "\u{202D}",
            "a\u{2066}b\u{2069}",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        // Hebrew and Arabic, and the marks they may use, are text.
        assert_eq!(check("שלום עולם \u{200F}مرحبا\u{200E}"), Ok(()));
        assert_eq!(
            check("ab\u{2069}"),
            Err(ControlChar {
                found: '\u{2069}',
                index: 2
            })
        );
        let err = check("ab\u{0}").unwrap_err().to_string();
        assert!(err.contains("U+0000"), "{err}");
    }
}
