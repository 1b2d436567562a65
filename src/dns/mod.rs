//! DNS panels at `/ws/dns/`: customers manage the records of their zones,
//! staff of every zone. The rules a record follows ([`validate`]).

pub mod validate;
