//! Every way the hub refuses a token or its user: one code per row of the
//! contract's refusal table. The HTTP edge turns a refusal into a response,
//! a socket into an error frame or a close.

use crate::auth::jwt::TokenError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TokenMissing,
    TokenInvalid,
    TokenExpired,
    TokenNotAccess,
    UserNotFound,
    UserInactive,
    StaffOnly,
    OriginNotAllowed,
    Unavailable,
}

/// How a refusal is answered over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unauthorized,
    Forbidden,
    Unavailable,
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Self::TokenMissing,
        Self::TokenInvalid,
        Self::TokenExpired,
        Self::TokenNotAccess,
        Self::UserNotFound,
        Self::UserInactive,
        Self::StaffOnly,
        Self::OriginNotAllowed,
        Self::Unavailable,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::TokenMissing => "token_missing",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenNotAccess => "token_not_access",
            Self::UserNotFound => "user_not_found",
            Self::UserInactive => "user_inactive",
            Self::StaffOnly => "staff_only",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::Unavailable => "unavailable",
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            Self::TokenMissing => "an access token is required",
            Self::TokenInvalid => "the token is malformed or its signature does not match",
            Self::TokenExpired => "the token has expired",
            Self::TokenNotAccess => "an access token is required, not a refresh token",
            Self::UserNotFound => "the token's user does not exist",
            Self::UserInactive => "the token's user is deactivated",
            Self::StaffOnly => "this room is for staff only",
            Self::OriginNotAllowed => "this origin may not open sockets here",
            Self::Unavailable => "the user could not be loaded; retry shortly",
        }
    }

    /// Whether the refusal is of the token or its user, which a public
    /// room may answer by admitting a guest instead (`HUB_INVALID_TOKEN`);
    /// never an origin, a staff room or an outage.
    pub fn is_of_the_token(self) -> bool {
        matches!(
            self,
            Self::TokenInvalid
                | Self::TokenExpired
                | Self::TokenNotAccess
                | Self::UserNotFound
                | Self::UserInactive
        )
    }

    pub fn status(self) -> Status {
        match self {
            Self::StaffOnly | Self::OriginNotAllowed => Status::Forbidden,
            Self::Unavailable => Status::Unavailable,
            _ => Status::Unauthorized,
        }
    }

    /// The position in [`Refusal::ALL`], for per-code counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid => Self::TokenInvalid,
            TokenError::Expired => Self::TokenExpired,
            TokenError::WrongKind => Self::TokenNotAccess,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_sits_at_its_own_index() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }

    #[test]
    fn an_outage_is_503_a_staff_room_or_origin_403_and_the_rest_401() {
        for refusal in Refusal::ALL {
            let expected = match refusal {
                Refusal::Unavailable => Status::Unavailable,
                Refusal::StaffOnly | Refusal::OriginNotAllowed => Status::Forbidden,
                _ => Status::Unauthorized,
            };
            assert_eq!(refusal.status(), expected, "{refusal:?}");
        }
    }

    #[test]
    fn every_refusal_gives_its_own_reason() {
        let details: std::collections::HashSet<&str> =
            Refusal::ALL.iter().map(|r| r.detail()).collect();
        assert_eq!(details.len(), Refusal::ALL.len());
        assert!(details.iter().all(|d| !d.is_empty()));
    }

    #[test]
    fn only_a_bad_token_or_its_user_may_turn_a_joiner_into_a_guest() {
        // An outage, an origin or a staff room is never answered by
        // admitting a guest: the joiner must hear what went wrong.
        let (token, other): (Vec<Refusal>, Vec<Refusal>) =
            Refusal::ALL.into_iter().partition(|r| r.is_of_the_token());
        assert_eq!(
            other,
            [
                Refusal::TokenMissing,
                Refusal::StaffOnly,
                Refusal::OriginNotAllowed,
                Refusal::Unavailable
            ]
        );
        assert_eq!(token.len(), 5);
    }
}
