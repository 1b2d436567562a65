//! Dashboards at `/ws/analytics/`: the socket's endpoint ([`socket`]), the
//! [`broadcaster::AnalyticsBroadcaster`] that coalesces changes into at most
//! one update per interval per dashboard, and the [`series`] of the last hour
//! a snapshot carries. The ingest API that feeds it is an HTTP handler
//! (`http::ingest`).

pub mod broadcaster;
pub mod series;
pub mod socket;

/// Metrics in one snapshot, at most; a dashboard is not a data export.
pub const SNAPSHOT_LIMIT: i64 = 1000;
