//! The analytics endpoint of a session: a dashboard of the user's own
//! metrics, and for staff the global totals on request.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::broadcaster::{Scope, Subscribe, Unsubscribe};
use crate::auth::guard::Authenticated;
use crate::db::users::User;
use crate::state::AppState;
use crate::ws::frames::{self, ErrorCode, Ref};
use crate::ws::session::{Ctx, Endpoint, Request, Session};

pub struct Analytics {
    user_id: i32,
    global: bool,
}

#[derive(Deserialize)]
struct SubscribeRequest {
    scope: String,
}

#[derive(Serialize)]
struct Subscribed<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a Ref>,
    scope: Scope,
}

fn subscribe(session: &mut Session<Analytics>, scope: Scope) {
    let sub = Subscribe {
        user_id: session.endpoint.user_id,
        scope,
        session: session.id,
        outlet: session.outlet(),
    };
    session.state.analytics.do_send(sub);
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
                let reply = Subscribed {
                    kind: "analytics.subscribed",
                    reference,
                    scope: Scope::Global,
                };
                session.send(ctx, serde_json::to_string(&reply).expect("plain struct"));
                if !session.endpoint.global {
                    session.endpoint.global = true;
                    subscribe(session, Scope::Global);
                }
            }
        }
    }

    /// Any active user keeps their own dashboard; the totals need staff.
    fn admits(&self, user: &User) -> bool {
        !self.global || user.is_staff
    }

    fn closed(session: &mut Session<Self>) {
        session.state.analytics.do_send(Unsubscribe {
            user_id: session.endpoint.user_id,
            session: session.id,
        });
    }
}

/// `GET /ws/analytics/`: only for an authenticated, active user.
pub async fn connect(
    auth: Authenticated,
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let analytics = Analytics {
        user_id: auth.user.id,
        global: false,
    };
    Session::new(state, Some(auth), analytics).start(&req, stream)
}
