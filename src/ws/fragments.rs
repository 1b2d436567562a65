//! Reassembly of fragmented messages. actix-web-actors hands continuation
//! frames over one by one; the session gathers them here, within the same
//! byte limit as a whole frame, and sees only complete messages.

use actix_http::ws::Item;
use bytes::{Bytes, BytesMut};

/// A complete message.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary,
}

/// Why a fragment ended the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentError {
    /// A continuation with no message begun, or a new message begun inside
    /// another (RFC 6455 §5.4 forbids interleaving).
    OutOfOrder,
    /// The message grew past the limit.
    TooLarge,
    /// A text message that is not UTF-8.
    NotUtf8,
}

pub struct Reassembly {
    max_bytes: usize,
    current: Option<(bool, BytesMut)>,
}

impl Reassembly {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            current: None,
        }
    }

    /// Takes one fragment; a complete message once the last one is in.
    pub fn push(&mut self, item: Item) -> Result<Option<Message>, FragmentError> {
        let (first, last, chunk): (Option<bool>, bool, Bytes) = match item {
            Item::FirstText(b) => (Some(true), false, b),
            Item::FirstBinary(b) => (Some(false), false, b),
            Item::Continue(b) => (None, false, b),
            Item::Last(b) => (None, true, b),
        };
        match (first, &self.current) {
            (Some(_), Some(_)) | (None, None) => return Err(FragmentError::OutOfOrder),
            (Some(text), None) => self.current = Some((text, BytesMut::new())),
            (None, Some(_)) => {}
        }
        let Some((text, buf)) = self.current.as_mut() else {
            return Err(FragmentError::OutOfOrder);
        };
        if buf.len() + chunk.len() > self.max_bytes {
            return Err(FragmentError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
        if !last {
            return Ok(None);
        }
        let text = *text;
        let bytes = std::mem::take(buf);
        self.current = None;
        if !text {
            return Ok(Some(Message::Binary));
        }
        String::from_utf8(bytes.to_vec())
            .map(|s| Some(Message::Text(s)))
            .map_err(|_| FragmentError::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn fragments_make_one_message_in_order() {
        let mut r = Reassembly::new(100);
        assert_eq!(r.push(Item::FirstText(b("{\"a\":"))), Ok(None));
        assert_eq!(r.push(Item::Continue(b("1"))), Ok(None));
        assert_eq!(
            r.push(Item::Last(b("}"))),
            Ok(Some(Message::Text("{\"a\":1}".into())))
        );
        assert_eq!(r.push(Item::FirstBinary(b("x"))), Ok(None));
        assert_eq!(r.push(Item::Last(b("y"))), Ok(Some(Message::Binary)));
    }

    #[test]
    fn a_message_of_exactly_the_limit_passes_and_every_byte_past_it_counts() {
        // Exactly the limit, over fragments: whole.
        let mut r = Reassembly::new(4);
        r.push(Item::FirstText(b("ab"))).unwrap();
        assert_eq!(
            r.push(Item::Last(b("cd"))),
            Ok(Some(Message::Text("abcd".into())))
        );
        // Bytes add up across fragments, an empty first one included.
        let mut r = Reassembly::new(4);
        r.push(Item::FirstText(b(""))).unwrap();
        assert_eq!(r.push(Item::Last(b("abcde"))), Err(FragmentError::TooLarge));
        let mut r = Reassembly::new(4);
        r.push(Item::FirstText(b("a"))).unwrap();
        assert_eq!(r.push(Item::Last(b("bcde"))), Err(FragmentError::TooLarge));
    }

    #[test]
    fn out_of_order_oversized_and_broken_utf8_are_errors() {
        let mut r = Reassembly::new(4);
        assert_eq!(
            r.push(Item::Continue(b("x"))),
            Err(FragmentError::OutOfOrder)
        );
        let mut r = Reassembly::new(4);
        r.push(Item::FirstText(b("ab"))).unwrap();
        assert_eq!(
            r.push(Item::FirstText(b("c"))),
            Err(FragmentError::OutOfOrder)
        );
        let mut r = Reassembly::new(4);
        r.push(Item::FirstText(b("abc"))).unwrap();
        assert_eq!(r.push(Item::Last(b("de"))), Err(FragmentError::TooLarge));
        let mut r = Reassembly::new(4);
        r.push(Item::FirstText(Bytes::from_static(&[0xc3])))
            .unwrap();
        assert_eq!(
            r.push(Item::Last(Bytes::from_static(&[0x28]))),
            Err(FragmentError::NotUtf8)
        );
    }
}
