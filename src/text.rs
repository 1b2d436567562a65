//! Text that people typed and the hub stores or shows to others: chat
//! messages, user names, and every other stored string. One rule for every
//! backend: PostgreSQL refuses NUL in text while SQLite keeps it, so the hub
//! refuses control characters at the edge instead of letting the two differ.

/// A control character where text may not hold one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("control character U+{:04X} at character {index} is not allowed (only tab and newline are)", u32::from(*found))]
pub struct ControlChar {
    pub found: char,
    /// Position in characters, counted from 0.
    pub index: usize,
}

/// Refuses C0 control characters (U+0000 to U+001F) other than tab and
/// newline, and DEL (U+007F).
pub fn check(text: &str) -> Result<(), ControlChar> {
    match text
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_ascii_control() && !matches!(c, '\t' | '\n'))
    {
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
        let err = check("ab\u{0}").unwrap_err().to_string();
        assert!(err.contains("U+0000"), "{err}");
    }
}
