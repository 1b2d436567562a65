//! The chat endpoint of a session: joins its room when opened, forwards what
//! its member says, tells the room when its user changes, leaves when closed.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::frames::Who;
use super::guests::GuestName;
use super::presence::{guest_person, user_person};
use super::room::{ChatServer, Join, Leave, PresenceFrames, Reshow, Say};
use super::rooms::Rooms;
use crate::auth::guest_key;
use crate::auth::jwt::TokenCodec;
use crate::auth::refusal::Refusal;
use crate::db::users::User;
use crate::names::RoomName;
use crate::text;
use crate::ws::close::CloseCode;
use crate::ws::frames::{self, ErrorCode};
use crate::ws::session::{Ctx, Endpoint, Request, Session};

pub struct Chat {
    rooms: Rooms,
    room: RoomName,
    staff_room: bool,
    asked: Asked,
    who: Arc<Who>,
    /// The person the member is among the nodes.
    person: String,
    /// A guest's id and name, held (unique) for as long as the socket lives.
    guest: Option<GuestName>,
    /// Why the token the client sent did not count, told first.
    downgraded: Option<Refusal>,
    addr: Option<Addr<ChatServer>>,
}

/// What the client asked for in the socket's query.
pub struct Asked {
    /// Only the messages after this id (`?since=`).
    pub since: Option<i64>,
    pub presence: PresenceFrames,
    /// A `chat.identity` frame first (`?identity=1`).
    pub identity: bool,
}

impl Chat {
    /// A member of `room`: a signed-in user, or a guest.
    pub fn new(
        rooms: Rooms,
        room: RoomName,
        staff_room: bool,
        asked: Asked,
        member: Result<&User, GuestName>,
        downgraded: Option<Refusal>,
    ) -> Self {
        let (who, person, guest) = match member {
            Ok(user) => (who(user), user_person(user.id), None),
            Err(guest) => {
                let who = Who {
                    id: None,
                    username: guest.as_str().to_owned(),
                    is_staff: false,
                };
                (who, guest_person(&guest.identity().id), Some(guest))
            }
        };
        Self {
            rooms,
            room,
            staff_room,
            asked,
            who: Arc::new(who),
            person,
            guest,
            downgraded,
            addr: None,
        }
    }

    /// Who the member is, and for a guest the key that brings the name
    /// back on the next socket.
    fn identity(&self, codec: &TokenCodec) -> String {
        let mut frame = json!({"type": "chat.identity", "user": &*self.who});
        if let Some(guest) = &self.guest {
            frame["guest_key"] = guest_key::mint(codec, guest.identity()).into();
        }
        frame.to_string()
    }
}

fn who(user: &User) -> Who {
    Who {
        id: Some(user.id),
        username: user.username.clone(),
        is_staff: user.is_staff,
    }
}

#[derive(Deserialize)]
struct ChatMessage {
    message: String,
}

impl Endpoint for Chat {
    const NAME: &'static str = "chat";

    fn opened(session: &mut Session<Self>, ctx: &mut Ctx<Self>) {
        if let Some(refusal) = session.endpoint.downgraded {
            // Before anything else: a client that can refresh its token
            // does so and comes back signed in; one that cannot chats on.
            let frame = json!({
                "type": "auth.guest",
                "code": refusal.code(),
                "detail": refusal.detail(),
                "username": session.endpoint.who.username,
            });
            session.send(ctx, frame.to_string());
        }
        let chat = &session.endpoint;
        if chat.asked.identity {
            session.send(ctx, chat.identity(&session.state.tokens));
        }
        let join = Join {
            room: chat.room.clone(),
            session: session.id,
            outlet: session.outlet(),
            who: chat.who.clone(),
            person: chat.person.clone(),
            since: chat.asked.since,
            presence: chat.asked.presence,
        };
        // Nothing the client sends is handled before the join is done.
        ctx.wait(
            chat.rooms
                .join(join)
                .into_actor(session)
                .map(|joined, act, ctx| match joined {
                    Ok(addr) => act.endpoint.addr = Some(addr),
                    Err(_) => Session::close(ctx, CloseCode::Internal, "the room is unavailable"),
                }),
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
        if let Err(bad) = text::check(&message) {
            let detail = format!("message: {bad}");
            return session.send_error(ctx, reference, ErrorCode::Validation, &detail);
        }
        let Some(room) = &session.endpoint.addr else {
            return;
        };
        // The person's own budget, whichever of their sockets says it.
        if !session.slot.chat(Instant::now()) {
            let caps = &session.state.settings.caps;
            let detail = format!(
                "at most {} messages per second, {} at once, per person over all their sockets (per address for guests); this one was not sent",
                caps.person_rate_per_sec, caps.person_rate_burst
            );
            return session.send_error(ctx, reference, ErrorCode::RateLimited, &detail);
        }
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

    fn user_changed(session: &mut Session<Self>, _: &User, _: &mut Ctx<Self>) {
        let (Some(user), Some(room)) = (&session.user, &session.endpoint.addr) else {
            return;
        };
        let who = Arc::new(who(user));
        session.endpoint.who = who.clone();
        room.do_send(Reshow {
            session: session.id,
            who,
        });
    }

    fn closed(session: &mut Session<Self>) {
        match &session.endpoint.addr {
            // Straight to the room, behind everything this session said.
            Some(room) => room.do_send(Leave {
                session: session.id,
            }),
            None => session
                .endpoint
                .rooms
                .leave_unjoined(session.endpoint.room.clone(), session.id),
        }
    }
}
