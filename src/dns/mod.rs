//! DNS panels at `/ws/dns/`: customers manage the records of their zones,
//! staff of every zone. The rules a record follows ([`validate`]) and the
//! transactions that keep a zone consistent ([`zone`]).

pub mod validate;
pub mod zone;
