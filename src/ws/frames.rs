//! Frame shapes shared by every endpoint: the request envelope, the error
//! frame and the wire form of a time. Endpoint-specific frames live with
//! their endpoint.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// The wire form of a time: RFC 3339, UTC, milliseconds.
pub fn wire_time(at: NaiveDateTime) -> String {
    DateTime::<Utc>::from_naive_utc_and_offset(at, Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A client's correlation id, echoed in replies: a short string or a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ref {
    Text(String),
    Number(i64),
}

const MAX_REF_CHARS: usize = 128;

/// The codes of an error frame; the connection stays open after each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    UnknownType,
    Validation,
    RateLimited,
    TooLarge,
    Forbidden,
    NotFound,
    /// A change named a record `version` or zone `serial` that has moved
    /// on since; the frame carries the current one.
    Conflict,
    /// Extension: the server could not do it now (storage failed); retry.
    Unavailable,
}

#[derive(Serialize)]
struct ErrorFrame<'a, X: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a Ref>,
    code: ErrorCode,
    detail: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extra: Option<&'a X>,
}

pub fn error(reference: Option<&Ref>, code: ErrorCode, detail: &str) -> String {
    error_frame::<()>(reference, code, detail, None)
}

/// An error frame with more fields of the endpoint's beside the code and
/// detail (`extra` must serialise as a map: the field that failed, the
/// current version of what conflicted).
pub fn error_with(
    reference: Option<&Ref>,
    code: ErrorCode,
    detail: &str,
    extra: &impl Serialize,
) -> String {
    error_frame(reference, code, detail, Some(extra))
}

fn error_frame<X: Serialize>(
    reference: Option<&Ref>,
    code: ErrorCode,
    detail: &str,
    extra: Option<&X>,
) -> String {
    serde_json::to_string(&ErrorFrame {
        kind: "error",
        reference,
        code,
        detail,
        extra,
    })
    .expect("an error frame always serialises")
}

/// The fields every request may carry; the rest is the endpoint's to read.
#[derive(Debug)]
pub struct Envelope {
    pub kind: Option<String>,
    pub reference: Option<Ref>,
}

/// The envelope as sent: `type` of any JSON type, so a request with a bad
/// `type` still has its `ref` read and echoed.
#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
    #[serde(rename = "ref")]
    reference: Option<Ref>,
}

/// A frame refused before its endpoint saw it, with the `ref` to echo when
/// one could be read.
#[derive(Debug)]
pub struct Rejected {
    pub bad: BadFrame,
    pub reference: Option<Ref>,
}

/// A frame that could not be read, with the error frame's code and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame {
    pub code: ErrorCode,
    pub detail: String,
}

impl BadFrame {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    /// Classifies a serde error: broken JSON versus JSON of the wrong shape.
    pub fn from_json(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        match err.classify() {
            Category::Data => Self::new(ErrorCode::Validation, err.to_string()),
            Category::Syntax | Category::Eof | Category::Io => {
                Self::new(ErrorCode::InvalidJson, format!("not valid JSON: {err}"))
            }
        }
    }
}

pub fn parse_envelope(text: &str) -> Result<Envelope, Rejected> {
    let reject = |bad, reference| Rejected { bad, reference };
    if !text.trim_start().starts_with('{') {
        return Err(reject(
            BadFrame::new(
                ErrorCode::InvalidJson,
                "a frame is a JSON object with a \"type\"",
            ),
            None,
        ));
    }
    let raw: RawEnvelope =
        serde_json::from_str(text).map_err(|e| reject(BadFrame::from_json(&e), None))?;
    if let Some(Ref::Text(r)) = &raw.reference
        && r.chars().count() > MAX_REF_CHARS
    {
        return Err(reject(
            BadFrame::new(
                ErrorCode::Validation,
                format!("ref is longer than {MAX_REF_CHARS} characters"),
            ),
            None,
        ));
    }
    let kind = match raw.kind {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(kind)) => Some(kind),
        Some(_) => {
            return Err(reject(
                BadFrame::new(ErrorCode::Validation, "type must be a string"),
                raw.reference,
            ));
        }
    };
    Ok(Envelope {
        kind,
        reference: raw.reference,
    })
}

/// Reads a request's own fields into `T`.
pub fn parse_body<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, BadFrame> {
    serde_json::from_str(text).map_err(|e| BadFrame::from_json(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_json_and_wrong_shapes_get_different_codes() {
        assert_eq!(
            parse_envelope("{nope").unwrap_err().bad.code,
            ErrorCode::InvalidJson
        );
        assert_eq!(
            parse_envelope("[1,2]").unwrap_err().bad.code,
            ErrorCode::InvalidJson
        );
        let bad_type = parse_envelope(r#"{"type": 5, "ref": "r9"}"#).unwrap_err();
        assert_eq!(bad_type.bad.code, ErrorCode::Validation);
        assert_eq!(bad_type.reference, Some(Ref::Text("r9".into())));
        let long = format!(r#"{{"type":"x","ref":"{}"}}"#, "r".repeat(129));
        assert_eq!(
            parse_envelope(&long).unwrap_err().bad.code,
            ErrorCode::Validation
        );
        // A ref of exactly the limit, counted in characters, is kept.
        let longest = "é".repeat(MAX_REF_CHARS);
        let at_limit = format!(r#"{{"type":"x","ref":"{longest}"}}"#);
        assert_eq!(
            parse_envelope(&at_limit).unwrap().reference,
            Some(Ref::Text(longest))
        );
        let ok = parse_envelope(r#"{"type":"chat.message","ref":7,"message":"hi"}"#).unwrap();
        assert_eq!(ok.kind.as_deref(), Some("chat.message"));
        assert_eq!(ok.reference, Some(Ref::Number(7)));
    }

    #[test]
    fn error_frames_echo_the_ref() {
        let frame = error(
            Some(&Ref::Text("r1".into())),
            ErrorCode::RateLimited,
            "slow down",
        );
        assert_eq!(
            frame,
            r#"{"type":"error","ref":"r1","code":"rate_limited","detail":"slow down"}"#
        );
        assert!(!error(None, ErrorCode::NotFound, "x").contains("ref"));
        let conflict = error_with(
            None,
            ErrorCode::Conflict,
            "moved on",
            &serde_json::json!({"serial": 7}),
        );
        assert_eq!(
            conflict,
            r#"{"type":"error","code":"conflict","detail":"moved on","serial":7}"#
        );
    }
}
