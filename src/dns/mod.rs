//! DNS panels at `/ws/dns/`: customers manage the records of their zones,
//! staff of every zone. The rules ([`validate`]), the transactions that
//! keep a zone consistent ([`zone`]), master files for export and import
//! ([`master`]), the socket's endpoint ([`socket`]) and
//! the [`broadcaster::DnsBroadcaster`] that pushes changes to every panel
//! that may see the zone, in each zone's order ([`order`]).

pub mod broadcaster;
pub mod master;
pub mod notify;
pub mod order;
pub mod primary;
pub mod socket;
pub mod validate;
pub mod zone;
