//! The analytics endpoint of a session: a dashboard of the user's own
//! metrics, and for staff the global totals on request.

use actix::Addr;
use serde::{Deserialize, Serialize};

use super::broadcaster::{AnalyticsBroadcaster, EndGlobal, Scope, Subscribe, Unsubscribe};
use crate::db::users::User;
use crate::ws::frames::{self, ErrorCode, Ref};
use crate::ws::session::{Ctx, Endpoint, Request, Session};

pub struct Analytics {
    broadcaster: Addr<AnalyticsBroadcaster>,
    user_id: i32,
    global: bool,
}

impl Analytics {
    pub fn new(broadcaster: Addr<AnalyticsBroadcaster>, user_id: i32) -> Self {
        Self {
            broadcaster,
            user_id,
            global: false,
        }
    }
}

#[derive(Deserialize)]
struct SubscribeRequest {
    scope: String,
}

/// `analytics.subscribed` and `analytics.unsubscribed`.
#[derive(Serialize)]
struct ScopeFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a Ref>,
    scope: Scope,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

fn subscribe(session: &mut Session<Analytics>, scope: Scope) {
    let sub = Subscribe {
        user_id: session.endpoint.user_id,
        scope,
        session: session.id,
        outlet: session.outlet(),
    };
    session.endpoint.broadcaster.do_send(sub);
}

impl Endpoint for Analytics {
    const NAME: &'static str = "analytics";

    fn opened(session: &mut Session<Self>, _: &mut Ctx<Self>) {
        subscribe(session, Scope::Own);
    }

    fn request(session: &mut Session<Self>, request: Request<'_>, ctx: &mut Ctx<Self>) {
        let reference = request.reference.as_ref();
        if request.kind != Some("analytics.subscribe") {
            let detail = format!("unknown type '{}'", request.kind.unwrap_or("(none)"));
            return session.send_error(ctx, reference, ErrorCode::UnknownType, &detail);
        }
        match frames::parse_body::<SubscribeRequest>(request.text) {
            Err(bad) => session.reject(ctx, reference, &bad),
            Ok(req) if req.scope != "global" => {
                session.send_error(
                    ctx,
                    reference,
                    ErrorCode::Validation,
                    "scope must be \"global\"",
                );
            }
            Ok(_) if !session.user.as_ref().is_some_and(|u| u.is_staff) => {
                session.send_error(
                    ctx,
                    reference,
                    ErrorCode::Forbidden,
                    "global totals are for staff only",
                );
            }
            Ok(_) => {
                let reply = ScopeFrame {
                    kind: "analytics.subscribed",
                    reference,
                    scope: Scope::Global,
                    reason: None,
                };
                session.send(ctx, serde_json::to_string(&reply).expect("plain struct"));
                if !session.endpoint.global {
                    session.endpoint.global = true;
                    subscribe(session, Scope::Global);
                }
            }
        }
    }

    /// Any active user keeps their own dashboard.
    fn admits(&self, _: &User) -> bool {
        true
    }

    /// A user who is no longer staff loses the totals, not the socket.
    fn user_changed(session: &mut Session<Self>, _: &User, ctx: &mut Ctx<Self>) {
        let staff = session.user.as_ref().is_some_and(|u| u.is_staff);
        if staff || !session.endpoint.global {
            return;
        }
        session.endpoint.global = false;
        session.endpoint.broadcaster.do_send(EndGlobal {
            session: session.id,
        });
        let ended = ScopeFrame {
            kind: "analytics.unsubscribed",
            reference: None,
            scope: Scope::Global,
            reason: Some("global totals are for staff only"),
        };
        session.send(ctx, serde_json::to_string(&ended).expect("plain struct"));
    }

    fn closed(session: &mut Session<Self>) {
        session.endpoint.broadcaster.do_send(Unsubscribe {
            user_id: session.endpoint.user_id,
            session: session.id,
        });
    }
}
