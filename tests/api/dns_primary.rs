//! The hidden primary (`HUB_DNS_LISTEN`): what a secondary nameserver asks,
//! over real UDP and TCP, answered from the zones the panel edits. The
//! client side is NLnet Labs' `domain`, a DNS library of its own.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use domain::base::iana::{Class, Opcode, Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name, ParsedName, Serial, Ttl};
use domain::rdata::tsig::Time48;
use domain::rdata::{AllRecordData, Soa};
use domain::tsig::{Algorithm, ClientSequence, ClientTransaction, Key, ServerTransaction};
use domain::zonefile::inplace::{Entry, Zonefile};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::dns::{create, create_zone, ok, panel, records};
use crate::helpers::{Backend, Client, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_secondary_reads_the_soa_over_udp_and_tcp_and_transfers_what_the_panel_exports,
    a_zone_too_big_for_one_message_is_split_with_the_soa_first_and_last,
    a_change_moves_the_serial_and_an_ixfr_gets_the_soa_alone_when_current_and_the_difference_when_behind,
    an_ixfr_from_any_serial_served_leads_exactly_to_the_zone_as_it_is,
    an_ixfr_from_a_serial_never_served_gets_the_whole_zone,
    differences_larger_than_the_zone_are_sent_as_the_zone,
    what_a_primary_does_not_serve_is_refused_and_counted,
    an_address_not_allowed_is_refused_whatever_it_asks,
    a_zone_without_name_servers_is_served_with_the_defaults_and_the_soa_settings,
    a_transfer_while_the_zone_changes_pairs_each_serial_with_its_own_records,
    each_new_serial_is_notified_and_sent_again_until_the_secondary_answers,
    with_keys_a_transfer_must_be_signed_and_each_message_of_it_is,
    a_signed_notify_is_answered_only_by_a_signature_of_the_same_key,
    the_catalog_lists_every_zone_and_each_zone_made_or_deleted_moves_it_and_is_notified,
);

/// What a reply needs to arrive in, however busy the machine.
const WAIT: Duration = Duration::from_secs(10);

async fn primary(backend: Backend, settings: &[(&str, &str)]) -> (TestApp, SocketAddr) {
    let mut all = vec![("HUB_DNS_LISTEN", "127.0.0.1:0")];
    all.extend_from_slice(settings);
    let app = TestApp::spawn_with(backend, &all).await;
    let dns = app.dns.expect("HUB_DNS_LISTEN was set");
    (app, dns)
}

fn name(text: &str) -> Name<Vec<u8>> {
    Name::from_str(text).unwrap()
}

pub(crate) fn query(zone: &str, rtype: Rtype) -> Vec<u8> {
    let mut question = MessageBuilder::new_vec().question();
    question.header_mut().set_id(0x4242);
    question.push((name(zone), rtype)).unwrap();
    question.finish()
}

/// An IXFR from a secondary that holds `held`: its SOA in the authority
/// section (RFC 1995, 3).
fn ixfr(zone: &str, held: u32) -> Vec<u8> {
    let mut question = MessageBuilder::new_vec().question();
    question.push((name(zone), Rtype::IXFR)).unwrap();
    let mut authority = question.authority();
    let soa = Soa::new(
        name(zone),
        name(zone),
        Serial(held),
        Ttl::from_secs(1),
        Ttl::from_secs(1),
        Ttl::from_secs(1),
        Ttl::from_secs(1),
    );
    authority.push((name(zone), Class::IN, 0, soa)).unwrap();
    authority.finish()
}

async fn over_udp(dns: SocketAddr, query: &[u8]) -> Option<Message<Vec<u8>>> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(query, dns).await.unwrap();
    let mut buf = vec![0; 65_535];
    let (len, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    buf.truncate(len);
    Some(Message::from_octets(buf).unwrap())
}

/// The messages that answer `query` over one TCP connection: one, or for a
/// transfer every message up to the one that ends with the SOA again.
pub(crate) async fn over_tcp(dns: SocketAddr, query: &[u8]) -> Vec<Message<Vec<u8>>> {
    let mut stream = tokio::net::TcpStream::connect(dns).await.unwrap();
    let len = u16::try_from(query.len()).unwrap();
    stream.write_all(&len.to_be_bytes()).await.unwrap();
    stream.write_all(query).await.unwrap();
    let transfer = Message::from_octets(query.to_vec())
        .unwrap()
        .sole_question()
        .is_ok_and(|q| matches!(q.qtype(), Rtype::AXFR | Rtype::IXFR));
    let mut messages = Vec::new();
    let mut serials = Vec::new();
    loop {
        let mut len = [0; 2];
        tokio::time::timeout(WAIT, stream.read_exact(&mut len))
            .await
            .expect("the primary answers")
            .unwrap();
        let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.unwrap();
        let message = Message::from_octets(buf).unwrap();
        serials.extend(answers(&message).iter().filter_map(Shown::soa_serial));
        let rcode = message.header().rcode();
        messages.push(message);
        // A transfer ends at an SOA of the serial it began with, an even
        // one: the second of a whole zone; of differences, the one after
        // each step's old and new SOA. An IXFR answered with the SOA
        // alone, or an error, is one message.
        let ended =
            serials.len() % 2 == 0 && serials.len() >= 2 && serials.first() == serials.last();
        if !transfer
            || rcode != Rcode::NOERROR
            || ended
            || (serials.len() == 1 && messages[0].header_counts().ancount() == 1)
        {
            return messages;
        }
    }
}

/// The `/metrics` series that counts queries answered with `answer`.
pub(crate) fn answered(answer: &str) -> String {
    format!("hub_dns_queries_total{{answer=\"{answer}\"}}")
}

/// A record in presentation form, as `domain` writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Shown(pub(crate) String);

impl Shown {
    fn starts_with_soa(&self) -> bool {
        self.0.split_whitespace().nth(3) == Some("SOA")
    }

    fn soa_serial(&self) -> Option<u32> {
        self.starts_with_soa()
            .then(|| self.0.split_whitespace().nth(6).unwrap().parse().unwrap())
    }
}

/// The zone a secondary holding `held` (a whole transfer, SOA first and
/// last) holds after the IXFR answer `ixfr`: each step's old SOA must be
/// the one held, each record removed must be there, each added must not.
fn apply_ixfr(held: &[Shown], ixfr: &[Shown]) -> Vec<Shown> {
    let mut zone: std::collections::BTreeSet<Shown> =
        held[1..held.len() - 1].iter().cloned().collect();
    let mut soa = held[0].clone();
    let (last, steps) = ixfr.split_last().unwrap();
    assert_eq!(ixfr[0], *last, "begins and ends with the new SOA");
    assert!(
        steps.len() >= 3 && steps[1].starts_with_soa(),
        "differences: {ixfr:#?}"
    );
    // Each step: its old SOA, the records it removes, its new SOA, the
    // records it adds.
    let mut removing = false;
    for record in &steps[1..] {
        if record.starts_with_soa() {
            if removing {
                soa = record.clone();
            } else {
                assert_eq!(*record, soa, "a step from the SOA held");
            }
            removing = !removing;
        } else if removing {
            assert!(zone.remove(record), "{record:?} removed, not held");
        } else {
            assert!(zone.insert(record.clone()), "{record:?} added twice");
        }
    }
    assert!(!removing, "the last step has its new SOA");
    assert_eq!(soa, *last, "ends at the new SOA");
    let mut whole = vec![soa.clone()];
    whole.extend(zone);
    whole.push(soa);
    whole
}

/// A transfer's records in an order to compare: SOA first and last.
fn sorted(mut transfer: Vec<Shown>) -> Vec<Shown> {
    transfer[1..].sort();
    let soa = transfer.remove(0);
    transfer.retain(|r| *r != soa);
    transfer.insert(0, soa.clone());
    transfer.push(soa);
    transfer
}

fn answers(message: &Message<Vec<u8>>) -> Vec<Shown> {
    message
        .answer()
        .unwrap()
        .limit_to::<AllRecordData<_, ParsedName<_>>>()
        .map(|r| Shown(r.unwrap().to_string()))
        .collect()
}

/// Every record of a transfer, in order, over all its messages.
pub(crate) fn transferred(messages: &[Message<Vec<u8>>]) -> Vec<Shown> {
    messages.iter().flat_map(answers).collect()
}

/// The records of a master file, read by `domain`, in presentation form.
fn read_master(text: &str) -> Vec<Shown> {
    let mut reader = Zonefile::new();
    reader.extend_from_slice(text.as_bytes());
    reader
        .map(|entry| match entry.unwrap() {
            Entry::Record(record) => Shown(record.to_string()),
            _ => panic!("the export holds records only:\n{text}"),
        })
        .collect()
}

async fn export(tab: &mut Client, zone: &str) -> (i64, String) {
    let reply = ok(tab, json!({"type": "dns.export", "zone": zone})).await;
    (
        reply["zone"]["serial"].as_i64().unwrap(),
        reply["text"].as_str().unwrap().to_owned(),
    )
}

/// The serial of the one SOA a message answers with.
fn serial_of(message: &Message<Vec<u8>>) -> u32 {
    let soa = message
        .answer()
        .unwrap()
        .limit_to::<Soa<ParsedName<_>>>()
        .next()
        .expect("an SOA")
        .unwrap();
    soa.data().serial().into_int()
}

async fn zone_with_records(app: &TestApp, zone: &str) -> Client {
    let alice = app.create_user("alice", false);
    let mut tab = panel(app, alice).await;
    create_zone(&mut tab, zone).await;
    for record in [
        json!({"name": "@", "type": "NS", "content": "ns1.hoster.example.", "ttl": 3600}),
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
        json!({"name": "@", "type": "MX", "content": "mail.example.com.", "priority": 10, "ttl": 300}),
        json!({"name": "@", "type": "TXT", "content": "v=spf1 -all", "ttl": 300}),
        json!({"name": "_sip._tcp", "type": "SRV", "content": "sip.example.com.", "priority": 1, "weight": 5, "port": 5060, "ttl": 300}),
    ] {
        create(&mut tab, zone, record).await;
    }
    tab
}

async fn a_secondary_reads_the_soa_over_udp_and_tcp_and_transfers_what_the_panel_exports(
    backend: Backend,
) {
    let (app, dns) = primary(backend, &[]).await;
    let mut tab = zone_with_records(&app, "example.com").await;
    let (serial, text) = export(&mut tab, "example.com").await;
    let exported = read_master(&text);

    let by_udp = over_udp(dns, &query("example.com", Rtype::SOA))
        .await
        .unwrap();
    let by_tcp = over_tcp(dns, &query("example.com", Rtype::SOA)).await;
    for soa in [&by_udp, &by_tcp[0]] {
        assert_eq!(soa.header().rcode(), Rcode::NOERROR);
        assert!(soa.header().aa(), "authoritative");
        assert_eq!(soa.header().id(), 0x4242, "the query's id");
        assert_eq!(answers(soa), vec![exported[0].clone()], "the export's SOA");
        assert_eq!(i64::from(serial_of(soa)), serial);
    }

    let axfr = transferred(&over_tcp(dns, &query("example.com", Rtype::AXFR)).await);
    assert_eq!(axfr.first(), Some(&exported[0]), "{axfr:#?}");
    assert_eq!(axfr.last(), Some(&exported[0]), "{axfr:#?}");
    let mut middle = axfr[1..axfr.len() - 1].to_vec();
    let mut records = exported[1..].to_vec();
    middle.sort();
    records.sort();
    assert_eq!(middle, records, "every record the panel exports, once");
    assert_eq!(records.len(), 5);
}

async fn a_zone_too_big_for_one_message_is_split_with_the_soa_first_and_last(backend: Backend) {
    let (app, dns) = primary(backend, &[("HUB_DNS_MAX_RECORDS", "5000")]).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    let mut serial = create_zone(&mut tab, "example.com").await["serial"].clone();
    for batch in 0..5 {
        let changes: Vec<Value> = (0..300)
            .map(|i| {
                json!({"op": "create", "record": {"name": format!("host-{batch}-{i}"), "type": "TXT",
                    "content": format!("{:0>100}", batch * 300 + i), "ttl": 300}})
            })
            .collect();
        let reply = ok(
            &mut tab,
            json!({"type": "dns.batch", "zone": "example.com", "serial": serial, "changes": changes}),
        )
        .await;
        serial = reply["serial"].clone();
    }

    let messages = over_tcp(dns, &query("example.com", Rtype::AXFR)).await;
    assert!(
        messages.len() >= 8,
        "1,500 records of 100 bytes in {} messages",
        messages.len()
    );
    for message in &messages {
        assert_eq!(message.header().rcode(), Rcode::NOERROR);
        assert!(
            message.as_slice().len() <= 20_480 + 512,
            "{}",
            message.as_slice().len()
        );
    }
    let records = transferred(&messages);
    assert_eq!(records.len(), 1500 + 2, "every record and the SOA twice");
    assert!(records[0].starts_with_soa() && records[1501].starts_with_soa());
    assert_eq!(records[0], records[1501]);
    assert_eq!(
        records.iter().filter(|r| r.starts_with_soa()).count(),
        2,
        "no SOA in between"
    );
}

async fn a_change_moves_the_serial_and_an_ixfr_gets_the_soa_alone_when_current_and_the_difference_when_behind(
    backend: Backend,
) {
    let (app, dns) = primary(backend, &[]).await;
    let mut tab = zone_with_records(&app, "example.com").await;
    let before = serial_of(
        &over_udp(dns, &query("example.com", Rtype::SOA))
            .await
            .unwrap(),
    );
    create(
        &mut tab,
        "example.com",
        json!({"name": "new", "type": "A", "content": "192.0.2.9", "ttl": 300}),
    )
    .await;
    let after = serial_of(
        &over_udp(dns, &query("example.com", Rtype::SOA))
            .await
            .unwrap(),
    );
    assert!(Serial(after) > Serial(before), "{before} -> {after}");

    // Current: the SOA alone, in one message.
    let current = over_tcp(dns, &ixfr("example.com", after)).await;
    assert_eq!(current.len(), 1);
    assert_eq!(answers(&current[0]).len(), 1);
    assert_eq!(serial_of(&current[0]), after);
    // Behind: the differences (RFC 1995, 4): the new SOA, the old SOA
    // and nothing removed, the new SOA and the record added, the new SOA.
    let behind = transferred(&over_tcp(dns, &ixfr("example.com", before)).await);
    let serials: Vec<_> = behind.iter().map(Shown::soa_serial).collect();
    assert_eq!(
        serials,
        [Some(after), Some(before), Some(after), None, Some(after)],
        "{behind:#?}"
    );
    assert!(behind[3].0.contains("192.0.2.9"), "{behind:#?}");
    // Over UDP, where a zone does not fit: the SOA, to ask again over TCP.
    let by_udp = over_udp(dns, &ixfr("example.com", before)).await.unwrap();
    assert_eq!(answers(&by_udp).len(), 1);
    assert_eq!(serial_of(&by_udp), after);
}

/// Records made, changed in content and in TTL, deleted, and the zone's
/// own name servers deleted (so that the defaults are served in their
/// place), one change at a time and in batches: from the zone as served at
/// each serial, the IXFR's differences lead to exactly the zone served now.
async fn an_ixfr_from_any_serial_served_leads_exactly_to_the_zone_as_it_is(backend: Backend) {
    let (app, dns) = primary(backend, &[("HUB_DNS_DEFAULT_NS", "ns1.default.example.")]).await;
    let mut tab = zone_with_records(&app, "example.com").await;
    let whole = || async { transferred(&over_tcp(dns, &query("example.com", Rtype::AXFR)).await) };
    let mut served = vec![whole().await];
    let www = records(&mut tab, "example.com")
        .await
        .into_iter()
        .find(|r| r["name"] == "www")
        .unwrap();
    let ns = records(&mut tab, "example.com")
        .await
        .into_iter()
        .find(|r| r["type"] == "NS")
        .unwrap();
    let steps = [
        json!({"type": "dns.create", "zone": "example.com", "record": {"name": "a", "type": "A", "content": "192.0.2.10", "ttl": 300}}),
        json!({"type": "dns.update", "id": www["id"], "record": {"content": "192.0.2.2"}}),
        json!({"type": "dns.update", "id": www["id"], "record": {"ttl": 600}}),
        json!({"type": "dns.batch", "zone": "example.com", "changes": [
            {"op": "create", "record": {"name": "b", "type": "AAAA", "content": "2001:db8::1", "ttl": 300}},
            {"op": "create", "record": {"name": "c", "type": "TXT", "content": "one", "ttl": 300}},
        ]}),
        json!({"type": "dns.delete", "id": ns["id"]}),
        json!({"type": "dns.create", "zone": "example.com", "record": {"name": "a", "type": "A", "content": "192.0.2.11", "ttl": 300}}),
    ];
    for mut step in steps {
        if step["type"] == "dns.batch" {
            let serial = served.last().unwrap()[0].soa_serial().unwrap();
            step["serial"] = json!(serial);
        }
        ok(&mut tab, step).await;
        served.push(whole().await);
    }
    let now = served.pop().unwrap();
    let (ixfrs, axfrs) = (
        app.metric(&answered("ixfr")).await,
        app.metric(&answered("axfr")).await,
    );
    for held in &served {
        let serial = held[0].soa_serial().unwrap();
        let answer = transferred(&over_tcp(dns, &ixfr("example.com", serial)).await);
        assert_eq!(
            sorted(apply_ixfr(held, &answer)),
            sorted(now.clone()),
            "from serial {serial}: {answer:#?}"
        );
    }
    // Each answered with differences, none with the whole zone.
    assert_eq!(app.metric(&answered("ixfr")).await, ixfrs + 6);
    assert_eq!(app.metric(&answered("axfr")).await, axfrs);
}

/// A serial the zone never had, or the one it was made at (no change was
/// made there), cannot be brought up by differences: the whole zone.
async fn an_ixfr_from_a_serial_never_served_gets_the_whole_zone(backend: Backend) {
    let (app, dns) = primary(backend, &[]).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    let made = create_zone(&mut tab, "example.com").await["serial"]
        .as_i64()
        .unwrap();
    create(
        &mut tab,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
    )
    .await;
    let axfr = transferred(&over_tcp(dns, &query("example.com", Rtype::AXFR)).await);
    // Serials wrap (RFC 1982): u32::MAX is one before 0, so far behind.
    for held in [u32::try_from(made).unwrap(), 1, 2_000_000_000, u32::MAX] {
        let answer = transferred(&over_tcp(dns, &ixfr("example.com", held)).await);
        assert_eq!(answer, axfr, "from serial {held}");
    }
    // One ahead of the zone's (a secondary that kept a newer zone): the
    // SOA alone, which tells it it is current.
    let serial = serial_of_shown(&axfr[0]);
    let ahead = over_tcp(dns, &ixfr("example.com", serial + 1)).await;
    assert_eq!(answers(&ahead[0]), [axfr[0].clone()]);
    for (answer, count) in [("axfr", 5), ("ixfr", 0), ("current", 1)] {
        assert_eq!(app.metric(&answered(answer)).await, count, "{answer}");
    }
}

/// Differences are sent while they hold no more records than the zone:
/// as many is still differences, one more is the whole zone.
async fn differences_larger_than_the_zone_are_sent_as_the_zone(backend: Backend) {
    let (app, dns) = primary(backend, &[]).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    create_zone(&mut tab, "example.com").await;
    let www = create(
        &mut tab,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
    )
    .await;
    let soa = || async {
        serial_of(
            &over_udp(dns, &query("example.com", Rtype::SOA))
                .await
                .unwrap(),
        )
    };
    let www_only = soa().await;
    create(
        &mut tab,
        "example.com",
        json!({"name": "mail", "type": "A", "content": "192.0.2.2", "ttl": 300}),
    )
    .await;
    let both = soa().await;
    let id = www["record"]["id"].clone();
    ok(
        &mut tab,
        json!({"type": "dns.update", "id": id, "record": {"content": "192.0.2.3"}}),
    )
    .await;
    // From `both`: www out and in again, 2 records for a zone of 2.
    let answer = transferred(&over_tcp(dns, &ixfr("example.com", both)).await);
    assert_eq!(answer.len(), 4 + 2, "{answer:#?}");
    assert_eq!(app.metric(&answered("ixfr")).await, 1);
    // From `www_only`: www out, www and mail in, 3 records for 2.
    let answer = transferred(&over_tcp(dns, &ixfr("example.com", www_only)).await);
    assert_eq!(answer.len(), 2 + 2, "{answer:#?}");
    assert_eq!(app.metric(&answered("axfr")).await, 1);
}

async fn what_a_primary_does_not_serve_is_refused_and_counted(backend: Backend) {
    let (app, dns) = primary(backend, &[]).await;
    let _tab = zone_with_records(&app, "example.com").await;
    let rcode = |m: Option<Message<Vec<u8>>>| m.expect("an answer").header().rcode();

    // An ordinary query: the secondaries answer those.
    let a = over_udp(dns, &query("www.example.com", Rtype::A)).await;
    assert_eq!(rcode(a), Rcode::REFUSED);
    // A zone held elsewhere, or an SOA below the apex.
    for other in ["example.org", "www.example.com"] {
        let soa = over_udp(dns, &query(other, Rtype::SOA)).await;
        assert_eq!(rcode(soa), Rcode::NOTAUTH, "{other}");
    }
    // A transfer over UDP.
    let axfr = over_udp(dns, &query("example.com", Rtype::AXFR)).await;
    assert_eq!(rcode(axfr), Rcode::NOTIMP);
    // A NOTIFY or an UPDATE: this primary takes changes from its panel only.
    let mut notify = MessageBuilder::new_vec().question();
    notify.header_mut().set_opcode(Opcode::NOTIFY);
    notify.push((name("example.com"), Rtype::SOA)).unwrap();
    let notify = over_udp(dns, &notify.finish()).await;
    assert_eq!(rcode(notify), Rcode::NOTIMP);
    // Bytes that are no DNS message get nothing, and the next query its
    // answer.
    assert!(over_udp_quickly(dns, b"\x00\x01junk").await.is_none());
    let mut two = MessageBuilder::new_vec().question();
    two.push((name("example.com"), Rtype::SOA)).unwrap();
    two.push((name("example.com"), Rtype::NS)).unwrap();
    assert_eq!(rcode(over_udp(dns, &two.finish()).await), Rcode::FORMERR);
    let soa = over_udp(dns, &query("EXAMPLE.COM", Rtype::SOA)).await;
    assert_eq!(rcode(soa), Rcode::NOERROR, "names match in any case");

    for (answer, count) in [
        ("not_ours", 3),
        ("not_implemented", 2),
        ("malformed", 2),
        ("soa", 1),
    ] {
        assert_eq!(app.metric(&answered(answer)).await, count, "{answer}");
    }
}

/// A query that should get no answer: waits a second, not [`WAIT`].
async fn over_udp_quickly(dns: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, dns).await.unwrap();
    let mut buf = vec![0; 512];
    let got = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await;
    got.ok().map(|len| buf[..len.unwrap()].to_vec())
}

async fn an_address_not_allowed_is_refused_whatever_it_asks(backend: Backend) {
    let (app, dns) = primary(backend, &[("HUB_DNS_TRANSFER_ALLOW", "192.0.2.0/24")]).await;
    let _tab = zone_with_records(&app, "example.com").await;
    let soa = over_udp(dns, &query("example.com", Rtype::SOA))
        .await
        .unwrap();
    assert_eq!(soa.header().rcode(), Rcode::REFUSED);
    assert!(answers(&soa).is_empty());
    let axfr = over_tcp(dns, &query("example.com", Rtype::AXFR)).await;
    assert_eq!(axfr.len(), 1);
    assert_eq!(axfr[0].header().rcode(), Rcode::REFUSED);
    assert!(answers(&axfr[0]).is_empty(), "not one record");
    app.until_metric("hub_dns_queries_total{answer=\"not_allowed\"} 2")
        .await;
}

/// The name servers a transfer carries, in its order.
fn name_servers(records: &[Shown]) -> Vec<&str> {
    records
        .iter()
        .filter_map(|r| {
            let mut fields = r.0.split_whitespace();
            (fields.nth(3) == Some("NS")).then(|| fields.next().unwrap())
        })
        .collect()
}

async fn a_zone_without_name_servers_is_served_with_the_defaults_and_the_soa_settings(
    backend: Backend,
) {
    let (app, dns) = primary(
        backend,
        &[
            (
                "HUB_DNS_DEFAULT_NS",
                "ns1.hoster.example, NS2.hoster.example.",
            ),
            ("HUB_DNS_SOA_RNAME", "dns.hoster.example"),
            ("HUB_DNS_SOA_REFRESH", "600"),
        ],
    )
    .await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    create_zone(&mut tab, "bare.example").await;
    create(
        &mut tab,
        "bare.example",
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
    )
    .await;
    let axfr = transferred(&over_tcp(dns, &query("bare.example", Rtype::AXFR)).await);
    let soa = axfr[0].0.split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        &soa[4..6],
        ["ns1.hoster.example.", "dns.hoster.example."],
        "{soa:?}"
    );
    assert_eq!(soa[7], "600", "refresh: {soa:?}");
    assert_eq!(
        name_servers(&axfr),
        ["ns1.hoster.example.", "ns2.hoster.example."]
    );
    // The export shows the SOA a secondary serves.
    let (_, text) = export(&mut tab, "bare.example").await;
    assert_eq!(read_master(&text)[0], axfr[0]);

    // A zone with name servers of its own is served with those alone, the
    // first of them in the SOA.
    create_zone(&mut tab, "own.example").await;
    create(
        &mut tab,
        "own.example",
        json!({"name": "@", "type": "NS", "content": "ns.own.example.", "ttl": 3600}),
    )
    .await;
    let axfr = transferred(&over_tcp(dns, &query("own.example", Rtype::AXFR)).await);
    assert_eq!(name_servers(&axfr), ["ns.own.example."]);
    assert_eq!(axfr[0].0.split_whitespace().nth(4), Some("ns.own.example."));
}

/// Writes land while secondaries transfer: each transfer must carry the
/// records of exactly the serial it names (on PostgreSQL the serial and the
/// records are two reads, which must see one snapshot). Every change here
/// adds one record and moves the serial by one.
async fn a_transfer_while_the_zone_changes_pairs_each_serial_with_its_own_records(
    backend: Backend,
) {
    // The panel writes as fast as it is answered.
    let (app, dns) = primary(
        backend,
        &[("HUB_RATE_PER_SEC", "1000"), ("HUB_RATE_BURST", "1000")],
    )
    .await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    let first = create_zone(&mut tab, "race.example").await["serial"]
        .as_i64()
        .unwrap();
    let writer = tokio::spawn(async move {
        for i in 0..40 {
            create(
                &mut tab,
                "race.example",
                json!({"name": format!("h{i}"), "type": "A", "content": "192.0.2.1", "ttl": 300}),
            )
            .await;
        }
    });
    // And each IXFR, from the first zone seen with a record, must lead to
    // exactly the records of the serial it ends at.
    let mut base: Option<Vec<Shown>> = None;
    let mut seen = 0;
    while !writer.is_finished() || seen < 20 {
        let axfr = transferred(&over_tcp(dns, &query("race.example", Rtype::AXFR)).await);
        let pairs = |zone: &[Shown], how: &str| {
            let serial = i64::from(serial_of_shown(&zone[0]));
            let records = zone.len() - 2;
            assert_eq!(
                i64::try_from(records).unwrap(),
                serial - first,
                "{how}: serial {serial} with {records} records"
            );
        };
        pairs(&axfr, "AXFR");
        if let Some(base) = &base {
            let held = serial_of_shown(&base[0]);
            let answer = transferred(&over_tcp(dns, &ixfr("race.example", held)).await);
            if answer.len() > 1 {
                pairs(&apply_ixfr(base, &answer), "IXFR");
            }
        } else if axfr.len() > 2 {
            base = Some(axfr);
        }
        seen += 1;
    }
    writer.await.unwrap();
}

fn serial_of_shown(soa: &Shown) -> u32 {
    soa.0.split_whitespace().nth(6).unwrap().parse().unwrap()
}

/// A secondary as NOTIFY reaches it: a UDP socket the test reads.
pub(crate) struct Secondary {
    socket: tokio::net::UdpSocket,
}

impl Secondary {
    pub(crate) async fn listen() -> Self {
        Self {
            socket: tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub(crate) fn address(&self) -> String {
        self.socket.local_addr().unwrap().to_string()
    }

    /// The next NOTIFY, with where it came from, within `wait`.
    pub(crate) async fn notify_within(
        &self,
        wait: Duration,
    ) -> Option<(Message<Vec<u8>>, SocketAddr)> {
        let mut buf = vec![0; 512];
        let (len, from) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        buf.truncate(len);
        let message = Message::from_octets(buf).unwrap();
        assert_eq!(message.header().opcode(), Opcode::NOTIFY);
        assert!(message.header().aa() && !message.header().qr());
        Some((message, from))
    }

    pub(crate) async fn send(&self, bytes: &[u8], to: SocketAddr) {
        self.socket.send_to(bytes, to).await.unwrap();
    }

    pub(crate) async fn notify(&self) -> (Message<Vec<u8>>, SocketAddr) {
        self.notify_within(WAIT).await.expect("a NOTIFY")
    }

    /// Answers a NOTIFY as a secondary does: the same id, question and
    /// opcode, `NOERROR`.
    pub(crate) async fn answer(&self, notify: &Message<Vec<u8>>, to: SocketAddr) {
        let answer = MessageBuilder::new_vec()
            .start_answer(notify, Rcode::NOERROR)
            .unwrap()
            .finish();
        self.send(&answer, to).await;
    }
}

/// The zone a NOTIFY names.
pub(crate) fn notified_zone(notify: &Message<Vec<u8>>) -> String {
    let question = notify.sole_question().unwrap();
    assert_eq!(question.qtype(), Rtype::SOA);
    question.qname().to_string()
}

async fn each_new_serial_is_notified_and_sent_again_until_the_secondary_answers(backend: Backend) {
    let secondary = Secondary::listen().await;
    let (app, _) = primary(backend, &[("HUB_DNS_NOTIFY", &secondary.address())]).await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    create_zone(&mut tab, "example.com").await;

    // Not answered: sent again, the same message, a second later.
    let (first, _) = secondary.notify().await;
    assert_eq!(notified_zone(&first), "example.com");
    let (again, from) = secondary.notify().await;
    assert_eq!(again.header().id(), first.header().id());
    // Answered: no more, past the next retry (two seconds later).
    secondary.answer(&again, from).await;
    assert!(
        secondary
            .notify_within(Duration::from_secs(3))
            .await
            .is_none()
    );

    // The next change: a NOTIFY of its own, at once.
    create(
        &mut tab,
        "example.com",
        json!({"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 300}),
    )
    .await;
    let (next, from) = secondary.notify().await;
    assert_eq!(notified_zone(&next), "example.com");
    assert_ne!(next.header().id(), first.header().id());
    secondary.answer(&next, from).await;
    app.until_metric("hub_dns_notifies_total{result=\"answered\"} 2")
        .await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("hub_dns_notifies_total{result=\"sent\"} 3"),
        "{metrics}"
    );
}

/// The key of the TSIG tests: 32 bytes, in the settings as base64.
pub(crate) const TSIG_SECRET: &str = "aHViLWtleS1mb3ItdGhlLXRzaWctdGVzdHMtMzJieXQ=";

pub(crate) fn tsig_key(name: &str, secret: &str) -> Key {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .unwrap();
    Key::new(Algorithm::Sha256, &bytes, name.parse().unwrap(), None, None).unwrap()
}

/// `query` signed with `key`, and the sequence that checks each answer.
fn signed(zone: &str, rtype: Rtype, key: &Key) -> (Vec<u8>, ClientSequence<Key>) {
    let mut question = MessageBuilder::new_vec().question();
    question.push((name(zone), rtype)).unwrap();
    let mut additional = question.additional();
    let sequence = ClientSequence::request(key.clone(), &mut additional, Time48::now()).unwrap();
    (additional.finish(), sequence)
}

async fn with_keys_a_transfer_must_be_signed_and_each_message_of_it_is(backend: Backend) {
    let keys = format!("hmac-sha256:hub-key:{TSIG_SECRET}");
    let (app, dns) = primary(
        backend,
        &[
            ("HUB_DNS_TSIG_KEYS", &keys),
            ("HUB_DNS_MAX_RECORDS", "5000"),
        ],
    )
    .await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    let serial = create_zone(&mut tab, "example.com").await["serial"].clone();
    let changes: Vec<Value> = (0..600)
        .map(|i| {
            json!({"op": "create", "record": {"name": format!("host-{i}"), "type": "TXT",
                "content": format!("{i:0>100}"), "ttl": 300}})
        })
        .collect();
    ok(
        &mut tab,
        json!({"type": "dns.batch", "zone": "example.com", "serial": serial, "changes": changes}),
    )
    .await;
    let key = tsig_key("hub-key.", TSIG_SECRET);

    // Signed: every message is signed, each chained to the one before.
    let (axfr, mut sequence) = signed("example.com", Rtype::AXFR, &key);
    let mut messages = over_tcp(dns, &axfr).await;
    assert!(messages.len() > 2, "{} messages", messages.len());
    for message in &mut messages {
        sequence
            .answer(message, Time48::now())
            .expect("each message signed in sequence");
    }
    sequence.done().expect("the last message signed");
    assert_eq!(transferred(&messages).len(), 600 + 2);

    // An SOA query signed over UDP gets a signed answer.
    let mut question = MessageBuilder::new_vec().question();
    question.push((name("example.com"), Rtype::SOA)).unwrap();
    let mut additional = question.additional();
    let check = ClientTransaction::request(key.clone(), &mut additional, Time48::now()).unwrap();
    let mut soa = over_udp(dns, &additional.finish()).await.unwrap();
    check.answer(&mut soa, Time48::now()).expect("a signed SOA");
    // Unsigned, the SOA is answered still (it is the zone's serial); a
    // transfer is refused, not one record sent.
    let soa = over_udp(dns, &query("example.com", Rtype::SOA))
        .await
        .unwrap();
    assert_eq!(soa.header().rcode(), Rcode::NOERROR);
    let unsigned = over_tcp(dns, &query("example.com", Rtype::AXFR)).await;
    assert_eq!(unsigned[0].header().rcode(), Rcode::REFUSED);
    assert!(answers(&unsigned[0]).is_empty());

    // A key the hub does not hold, or the right name with another secret.
    for wrong in [
        tsig_key("other-key.", TSIG_SECRET),
        tsig_key("hub-key.", "c29tZS1vdGhlci1zZWNyZXQtb2YtMzItYnl0ZXMtLS0="),
    ] {
        let (axfr, _) = signed("example.com", Rtype::AXFR, &wrong);
        let refused = over_tcp(dns, &axfr).await;
        assert_eq!(refused[0].header().rcode(), Rcode::NOTAUTH);
        assert!(answers(&refused[0]).is_empty());
    }
    for (answer, count) in [("unsigned", 1), ("bad_signature", 2), ("axfr", 1)] {
        assert_eq!(app.metric(&answered(answer)).await, count, "{answer}");
    }
}

async fn a_signed_notify_is_answered_only_by_a_signature_of_the_same_key(backend: Backend) {
    let secondary = Secondary::listen().await;
    let keys = format!("hub-key:{TSIG_SECRET}");
    let (app, _) = primary(
        backend,
        &[
            ("HUB_DNS_NOTIFY", &secondary.address()),
            ("HUB_DNS_TSIG_KEYS", &keys),
            ("HUB_DNS_NOTIFY_KEY", "hub-key"),
        ],
    )
    .await;
    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    create_zone(&mut tab, "example.com").await;
    let key = tsig_key("hub-key.", TSIG_SECRET);

    // Signed by the key; an unsigned answer does not count.
    let (mut notify, from) = secondary.notify().await;
    ServerTransaction::request(&key, &mut notify, Time48::now())
        .expect("a valid signature")
        .expect("signed");
    secondary.answer(&notify, from).await;
    let (mut again, from) = secondary.notify().await;
    assert_eq!(again.header().id(), notify.header().id(), "sent again");
    let verified = ServerTransaction::request(&key, &mut again, Time48::now())
        .unwrap()
        .unwrap();
    // Signed back: answered.
    let mut answer = MessageBuilder::new_vec()
        .start_answer(&again, Rcode::NOERROR)
        .unwrap()
        .additional();
    verified.answer(&mut answer, Time48::now()).unwrap();
    secondary.send(&answer.finish(), from).await;
    app.until_metric("hub_dns_notifies_total{result=\"answered\"} 1")
        .await;
}

async fn the_catalog_lists_every_zone_and_each_zone_made_or_deleted_moves_it_and_is_notified(
    backend: Backend,
) {
    let secondary = Secondary::listen().await;
    let (app, dns) = primary(
        backend,
        &[
            ("HUB_DNS_CATALOG", "Catalog.Hub.Invalid"),
            ("HUB_DNS_NOTIFY", &secondary.address()),
        ],
    )
    .await;
    let catalog = || async {
        let records = transferred(&over_tcp(dns, &query("catalog.hub.invalid", Rtype::AXFR)).await);
        let members: Vec<String> = records
            .iter()
            .filter(|r| r.0.split_whitespace().nth(3) == Some("PTR"))
            .map(|r| r.0.split_whitespace().nth(4).unwrap().to_owned())
            .collect();
        (serial_of_shown(&records[0]), members, records)
    };
    let (empty, members, records) = catalog().await;
    assert!(members.is_empty(), "{records:#?}");
    assert!(
        records
            .iter()
            .any(|r| r.0 == "version.catalog.hub.invalid. 0 IN TXT \"2\""),
        "{records:#?}"
    );

    let alice = app.create_user("alice", false);
    let mut tab = panel(&app, alice).await;
    create_zone(&mut tab, "a.example").await;
    let b = create_zone(&mut tab, "b.example").await;
    let (two, members, _) = catalog().await;
    assert_eq!(members, ["a.example.", "b.example."]);
    assert!(Serial(two) > Serial(empty));
    ok(
        &mut tab,
        json!({"type": "dns.zone.delete", "zone": "b.example", "serial": b["serial"]}),
    )
    .await;
    let (one, members, _) = catalog().await;
    assert_eq!(members, ["a.example."]);
    assert!(Serial(one) > Serial(two));

    // The secondaries were told of the catalog as well as of the zones
    // (changes close together may share one NOTIFY: each replaces the one
    // still unanswered).
    let mut notified = Vec::new();
    while let Some((notify, from)) = secondary.notify_within(Duration::from_secs(3)).await {
        notified.push(notified_zone(&notify));
        secondary.answer(&notify, from).await;
    }
    assert!(
        notified.iter().any(|z| z == "catalog.hub.invalid"),
        "{notified:?}"
    );
}
