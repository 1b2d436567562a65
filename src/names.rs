//! Domain values parsed once at the edge, so the rest of the hub never sees an
//! unchecked one.

use std::fmt;
use std::sync::Arc;

/// A chat room's name: `[A-Za-z0-9_-]{1,64}`. Cheap to clone: rooms and
/// messages share one allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a room name is 1 to 64 letters, digits, '_' or '-'")]
pub struct InvalidRoomName;

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, InvalidRoomName> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(Arc::from(raw)))
        } else {
            Err(InvalidRoomName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_contract() {
        assert!(RoomName::parse("lobby").is_ok());
        assert!(RoomName::parse("a-b_C9").is_ok());
        assert!(RoomName::parse(&"x".repeat(64)).is_ok());
        for bad in ["", "a b", "ä", "a/b", "a.b", &"x".repeat(65)] {
            assert_eq!(RoomName::parse(bad), Err(InvalidRoomName), "{bad:?}");
        }
    }
}
