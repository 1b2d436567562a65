//! The close codes the hub sends, as one type. Each says what a client
//! should do next, so the pages and any other client can decide from the
//! code alone (the grouping follows centrifuge's disconnect codes: a
//! "reconnect" range and a "terminal" range).

use actix_http::ws;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1000: the client closed, and the hub answers in kind.
    Normal,
    /// 1002: the client broke the WebSocket protocol.
    ProtocolError,
    /// 1007: a text message that is not UTF-8.
    InvalidData,
    /// 1008: kept sending after `rate_limited`.
    Policy,
    /// 1009: a frame or a reassembled message over the limit.
    TooLarge,
    /// 1011: something failed inside the hub.
    Internal,
    /// 1012: reconnect: the hub is restarting (drain), or the connection
    /// reached its maximum age.
    Restart,
    /// 1013: overloaded, or too slow to read its frames.
    TryAgainLater,
    /// 4001: the access token expired without `auth.refresh`.
    TokenExpired,
    /// 4003: deactivated, or lost the right to this socket.
    Forbidden,
}

/// What a client should do after a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Reconnect, with jittered exponential backoff.
    Reconnect,
    /// Get a new access token first, then reconnect.
    RefreshThenReconnect,
    /// Do not reconnect as it was: the client or its user must change.
    Stop,
}

impl CloseCode {
    pub const fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::ProtocolError => 1002,
            Self::InvalidData => 1007,
            Self::Policy => 1008,
            Self::TooLarge => 1009,
            Self::Internal => 1011,
            Self::Restart => 1012,
            Self::TryAgainLater => 1013,
            Self::TokenExpired => 4001,
            Self::Forbidden => 4003,
        }
    }

    pub const fn next(self) -> Next {
        match self {
            Self::Internal | Self::Restart | Self::TryAgainLater => Next::Reconnect,
            Self::TokenExpired => Next::RefreshThenReconnect,
            Self::Normal
            | Self::ProtocolError
            | Self::InvalidData
            | Self::Policy
            | Self::TooLarge
            | Self::Forbidden => Next::Stop,
        }
    }

    /// The close frame, with a reason short enough for any control frame
    /// (RFC 6455 allows 123 bytes).
    pub fn frame(self, reason: &str) -> ws::CloseReason {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        ws::CloseReason {
            code: ws::CloseCode::from(self.code()),
            description: Some(reason[..end].to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_contract_and_say_what_to_do() {
        assert_eq!(CloseCode::Restart.code(), 1012);
        assert_eq!(CloseCode::Restart.next(), Next::Reconnect);
        assert_eq!(CloseCode::TryAgainLater.next(), Next::Reconnect);
        assert_eq!(CloseCode::TokenExpired.code(), 4001);
        assert_eq!(CloseCode::TokenExpired.next(), Next::RefreshThenReconnect);
        assert_eq!(CloseCode::Forbidden.next(), Next::Stop);
        assert_eq!(CloseCode::Policy.next(), Next::Stop);
    }

    #[test]
    fn reasons_are_cut_to_a_control_frame_on_a_character_boundary() {
        let long = "é".repeat(100);
        let frame = CloseCode::Internal.frame(&long);
        let shown = frame.description.unwrap();
        assert!(shown.len() <= 123 && long.starts_with(&shown));
    }
}
