//! The chat endpoint of a session: joins its room when opened, forwards what
//! its member says, leaves when closed.

use std::sync::Arc;

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::messages::{Join, Leave, Say, Who};
use super::room::ChatServer;
use crate::auth::guard::{ChatAccess, query_param};
use crate::db::users::User;
use crate::http::error::ApiError;
use crate::names::RoomName;
use crate::state::AppState;
use crate::ws::frames::{self, ErrorCode};
use crate::ws::session::{Ctx, Endpoint, Request, Session};

pub struct Chat {
    room: RoomName,
    staff_room: bool,
    since: Option<i64>,
    who: Arc<Who>,
    addr: Option<Addr<ChatServer>>,
}

#[derive(Deserialize)]
struct ChatMessage {
    message: String,
}

impl Endpoint for Chat {
    const NAME: &'static str = "chat";

    fn opened(session: &mut Session<Self>, ctx: &mut Ctx<Self>) {
        let join = Join {
            room: session.endpoint.room.clone(),
            session: session.id,
            outlet: session.outlet(),
            who: session.endpoint.who.clone(),
            since: session.endpoint.since,
        };
        // Nothing the client sends is handled before the join is done.
        ctx.wait(
            session.state.rooms.send(join).into_actor(session).map(
                |joined, act, ctx| match joined {
                    Ok(addr) => act.endpoint.addr = Some(addr),
                    Err(_) => Session::close(ctx, 1011, "the room is unavailable"),
                },
            ),
        );
    }

    fn request(session: &mut Session<Self>, request: Request<'_>, ctx: &mut Ctx<Self>) {
        let reference = request.reference.as_ref();
        match request.kind {
            // The bare `{"message": ...}` of the Django Channels tutorial is a chat message too.
            Some("chat.message") | None => {}
            Some(other) => {
                let detail = format!("unknown type '{other}'");
                return session.send_error(ctx, reference, ErrorCode::UnknownType, &detail);
            }
        }
        let message = match frames::parse_body::<ChatMessage>(request.text) {
            Ok(m) => m.message,
            Err(bad) => return session.reject(ctx, reference, &bad),
        };
        let max = session.state.settings.limits.max_chat_chars;
        if message.trim().is_empty() {
            return session.send_error(ctx, reference, ErrorCode::Validation, "message is empty");
        }
        if message.chars().count() > max {
            let detail = format!("a message is at most {max} characters");
            return session.send_error(ctx, reference, ErrorCode::TooLarge, &detail);
        }
        let Some(room) = &session.endpoint.addr else {
            return;
        };
        let say = Say {
            session: session.id,
            reference: request.reference.clone(),
            text: message,
        };
        if room.try_send(say).is_err() {
            session.send_error(
                ctx,
                reference,
                ErrorCode::RateLimited,
                "the room is busy; send it again shortly",
            );
        }
    }

    fn admits(&self, user: &User) -> bool {
        !self.staff_room || user.is_staff
    }

    fn closed(session: &mut Session<Self>) {
        session.state.rooms.do_send(Leave {
            room: session.endpoint.room.clone(),
            session: session.id,
        });
    }
}

fn guest_name() -> String {
    format!("guest-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// `GET /ws/chat/{room}/`: the guard has run (as the `ChatAccess` extractor)
/// before this body, so a refused client never gets a socket.
pub async fn connect(
    access: ChatAccess,
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let since = match query_param(&req, "since") {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .map_err(|_| ApiError::validation("since must be a message id"))?,
        ),
    };
    let who = match &access.user {
        Some(auth) => Who {
            id: Some(auth.user.id),
            username: auth.user.username.clone(),
            is_staff: auth.user.is_staff,
        },
        None => Who {
            id: None,
            username: guest_name(),
            is_staff: false,
        },
    };
    let chat = Chat {
        room: access.room,
        staff_room: access.staff_room,
        since,
        who: Arc::new(who),
        addr: None,
    };
    Session::new(state, access.user, chat).start(&req, stream)
}
