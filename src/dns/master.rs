//! Zones as RFC 1035 master files: written for `dns.export`, read for
//! `dns.import`. The reader is a small line-based one for the presentation
//! form the hub writes (and that most tools write): hickory-proto's
//! zone-file parser refuses legal owners such as `foo_bar` and needs `$TTL`
//! or an SOA. Each record it reads goes through the same rules as
//! `dns.create` ([`validate::record`], which has hickory-proto parse the
//! data), and the file as a whole through [`validate::check_set`].

use serde_json::{Value, json};

use super::validate::{self, Entry, Failures, Invalid, Origin};
use crate::config::{DnsPrimary, Soa};
use crate::db::dns::{Record, RecordData};

/// The record's data as it stands after its type in a master file.
fn rdata(data: &RecordData) -> String {
    let number = |n: Option<i32>| n.map_or_else(String::new, |n| n.to_string());
    match data.kind.as_str() {
        "MX" => format!("{} {}", number(data.priority), data.content),
        "SRV" => format!(
            "{} {} {} {}",
            number(data.priority),
            number(data.weight),
            number(data.port),
            data.content
        ),
        "TXT" => ascii_escaped(&validate::quoted_txt(&data.content)),
        "CAA" => ascii_escaped(&data.content),
        _ => data.content.clone(),
    }
}

/// Quoted text with every byte past ASCII written `\DDD` (RFC 1035,
/// section 5.1), the form every reader takes: raw UTF-8 in a quoted
/// string is refused by some (NLnet Labs' `domain` among them). The bytes,
/// and so the 255-byte strings, are the same.
fn ascii_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\{byte:03}"));
            }
        }
    }
    out
}

/// Whether the zone names its own name servers (NS at the apex).
pub fn has_own_ns(records: &[Record]) -> bool {
    records
        .iter()
        .any(|r| r.data.name == "@" && r.data.kind == "NS")
}

/// The SOA a zone is served and exported with: the settings', whose
/// primary name server, unless they name one, is the zone's first or else
/// the first of the default name servers it is served with.
pub fn served_soa(primary: &DnsPrimary, records: &[Record]) -> Soa {
    let mut soa = primary.soa.clone();
    if soa.mname.is_none() && !has_own_ns(records) {
        soa.mname = primary.default_ns.first().cloned();
    }
    soa
}

/// The zone as a master file: `$ORIGIN`, `$TTL`, the SOA with `serial`
/// (its name server, unless `soa` names one, the zone's first), then every
/// record (its comment after `;`).
pub fn write(origin: &Origin, soa: &Soa, serial: i64, records: &[Record]) -> String {
    let mut text = head(origin, soa, serial, records);
    for record in records {
        text.push_str(&written_line(&record.data));
        text.push('\n');
    }
    text
}

/// The start of [`write`]'s master file: `$ORIGIN`, `$TTL` and the SOA.
pub fn head(origin: &Origin, soa: &Soa, serial: i64, records: &[Record]) -> String {
    let apex = origin.fqdn("@");
    let primary = soa.mname.clone().unwrap_or_else(|| {
        records
            .iter()
            .find(|r| r.data.name == "@" && r.data.kind == "NS")
            .map_or_else(|| apex.clone(), |ns| ns.data.content.clone())
    });
    let mailbox = soa
        .rname
        .clone()
        .unwrap_or_else(|| format!("hostmaster.{apex}"));
    format!(
        "$ORIGIN {apex}\n$TTL {ttl}\n@\t{ttl}\tIN\tSOA\t{primary} {mailbox} {serial} {} {} {} {}\n",
        soa.refresh,
        soa.retry,
        soa.expire,
        soa.minimum,
        ttl = validate::DEFAULT_TTL,
    )
}

/// One record as a master-file line (its comment after `;`), without the
/// line's end.
pub fn written_line(d: &RecordData) -> String {
    let mut text = format!("{}\t{}\tIN\t{}\t{}", d.name, d.ttl, d.kind, rdata(d));
    if let Some(comment) = &d.comment {
        text.push_str(&format!(" ; {comment}"));
    }
    text
}

/// A line's text and its comment (after a `;` outside quotes).
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let (mut quoted, mut escaped) = (false, false);
    for (at, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => return (&line[..at], Some(line[at + 1..].trim())),
            _ => {}
        }
    }
    (line, None)
}

/// A line with its grouping parentheses blanked out, and whether a group
/// is still open at its end (`open`: one was open before it). Only those
/// outside quotes group: inside a quoted string, as in the TXT `"(x"`, a
/// parenthesis is text and must read back as itself. Groups do not nest,
/// and a `)` closes one that is open, as BIND and dnspython read them.
fn ungroup(line: &str, open: bool) -> Result<(String, bool), Invalid> {
    let (mut quoted, mut escaped, mut open) = (false, false, open);
    let mut text = String::with_capacity(line.len());
    for c in line.chars() {
        let kept = match c {
            _ if escaped => {
                escaped = false;
                c
            }
            '\\' => {
                escaped = true;
                c
            }
            '"' => {
                quoted = !quoted;
                c
            }
            '(' if !quoted => {
                if open {
                    return Err(Invalid::new("text", "'(' inside '( )': groups do not nest"));
                }
                open = true;
                ' '
            }
            ')' if !quoted => {
                if !open {
                    return Err(Invalid::new("text", "')' without a '(' before it"));
                }
                open = false;
                ' '
            }
            c => c,
        };
        text.push(kept);
    }
    Ok((text, open))
}

/// Splits on blanks outside quotes; quoted tokens keep their quotes.
fn tokens(text: &str) -> Result<Vec<String>, Invalid> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' => {
                current.push(c);
                escaped = true;
            }
            '"' => {
                current.push(c);
                quoted = !quoted;
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err(Invalid::new("content", "a quoted string is not closed"));
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// A character string's text: quotes removed, `\"`, `\\` and `\DDD`
/// unescaped; at most 255 bytes, as on the wire.
fn character_string(token: &str) -> Result<String, Invalid> {
    let inner = token
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(token);
    let mut bytes = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let next = chars
            .next()
            .ok_or_else(|| Invalid::new("content", "a string ends with a lone backslash"))?;
        if next.is_ascii_digit() {
            let digits: String = [Some(next), chars.next(), chars.next()]
                .into_iter()
                .flatten()
                .collect();
            let byte = digits
                .parse::<u8>()
                .ok()
                .filter(|_| digits.len() == 3)
                .ok_or_else(|| {
                    Invalid::new("content", format!("'\\{digits}' is not a \\DDD escape"))
                })?;
            bytes.push(byte);
        } else {
            let mut buf = [0; 4];
            bytes.extend_from_slice(next.encode_utf8(&mut buf).as_bytes());
        }
    }
    if bytes.len() > 255 {
        return Err(Invalid::new(
            "content",
            format!("a string is at most 255 bytes; this one is {}", bytes.len()),
        ));
    }
    String::from_utf8(bytes).map_err(|_| Invalid::new("content", "the text is not UTF-8"))
}

/// One record line, after its owner: `[ttl] [IN] TYPE data...`, as the
/// JSON a client would send, or `None` for the SOA (the hub writes its own).
fn record_line(
    owner: &str,
    fields: &[String],
    default_ttl: i64,
    comment: Option<&str>,
) -> Result<Option<Value>, Invalid> {
    let mut rest = fields;
    let mut ttl = default_ttl;
    while let Some((first, tail)) = rest.split_first() {
        if first.eq_ignore_ascii_case("IN") {
            rest = tail;
        } else if let Ok(n) = first.parse::<i64>() {
            ttl = n;
            rest = tail;
        } else {
            break;
        }
    }
    let (kind, data) = rest
        .split_first()
        .ok_or_else(|| Invalid::new("type", "a record needs a type and its data"))?;
    let kind = kind.to_ascii_uppercase();
    let count = |n: usize| {
        if data.len() == n {
            Ok(())
        } else {
            Err(Invalid::new(
                "content",
                format!("{kind} data is {n} field(s); this line has {}", data.len()),
            ))
        }
    };
    let number = |token: &str, field: &'static str| {
        token
            .parse::<i64>()
            .map_err(|_| Invalid::new(field, format!("'{token}' is not a number")))
    };
    let mut record = json!({"name": owner, "type": kind, "ttl": ttl});
    match kind.as_str() {
        "SOA" => return Ok(None),
        "MX" => {
            count(2)?;
            record["priority"] = json!(number(&data[0], "priority")?);
            record["content"] = json!(data[1]);
        }
        "SRV" => {
            count(4)?;
            record["priority"] = json!(number(&data[0], "priority")?);
            record["weight"] = json!(number(&data[1], "weight")?);
            record["port"] = json!(number(&data[2], "port")?);
            record["content"] = json!(data[3]);
        }
        "TXT" => {
            let strings: Result<Vec<String>, Invalid> =
                data.iter().map(|t| character_string(t)).collect();
            record["content"] = json!(strings?.concat());
        }
        "CAA" => {
            count(3)?;
            let value = character_string(&data[2])?;
            record["content"] = json!(format!("{} {} \"{value}\"", data[0], data[1]));
        }
        _ => {
            count(1)?;
            record["content"] = json!(data[0]);
        }
    }
    if let Some(comment) = comment.filter(|c| !c.is_empty()) {
        record["comment"] = json!(comment);
    }
    Ok(Some(record))
}

/// Reads a master file for `origin`: every record, with its line (from 1),
/// checked as `dns.create` checks one and then as a whole zone; or the
/// failures, by line (the first of them listed, all counted). The caller
/// bounds the text's size (`HUB_DNS_MAX_IMPORT_BYTES`), which bounds its
/// lines.
pub fn read(origin: &Origin, text: &str) -> Result<Vec<(usize, RecordData)>, Failures> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut errors = Failures::default();
    let mut default_ttl = i64::from(validate::DEFAULT_TTL);
    let mut owner: Option<String> = None;
    let mut at = 0;
    while at < lines.len() {
        let number = at + 1;
        let (body, comment) = split_comment(lines[at]);
        // Parentheses carry a record over lines (as an SOA often is).
        let grouped = ungroup(body, false).and_then(|(mut body, mut open)| {
            while open && at + 1 < lines.len() {
                at += 1;
                let (more, still) = ungroup(split_comment(lines[at]).0, true)?;
                body.push(' ');
                body.push_str(&more);
                open = still;
            }
            if open {
                return Err(Invalid::new(
                    "text",
                    "a '(' opened here is never closed with ')'",
                ));
            }
            Ok(body)
        });
        at += 1;
        let outcome =
            grouped.and_then(|body| line(origin, &body, comment, &mut owner, &mut default_ttl));
        match outcome {
            Ok(Some(record)) => match validate::record(origin, &record) {
                Ok(data) => records.push((number, data)),
                Err(invalid) => errors.push(number, invalid),
            },
            Ok(None) => {}
            Err(invalid) => errors.push(number, invalid),
        }
    }
    if errors.is_empty() {
        let entries: Vec<Entry<'_>> = records
            .iter()
            .map(|(number, data)| Entry {
                data,
                changed: Some(*number),
            })
            .collect();
        errors = validate::check_set(origin, &entries).into_iter().collect();
    }
    if errors.is_empty() {
        Ok(records)
    } else {
        Err(errors)
    }
}

/// One logical line: a directive, a record, or nothing.
fn line(
    origin: &Origin,
    body: &str,
    comment: Option<&str>,
    owner: &mut Option<String>,
    default_ttl: &mut i64,
) -> Result<Option<Value>, Invalid> {
    if body.trim().is_empty() {
        return Ok(None);
    }
    let fields = tokens(body)?;
    if let Some(directive) = fields[0].strip_prefix('$') {
        return match (directive.to_ascii_uppercase().as_str(), &fields[1..]) {
            ("ORIGIN", [name]) => {
                let named = Origin::parse("text", name)?;
                if named.as_str() == origin.as_str() {
                    Ok(None)
                } else {
                    Err(Invalid::new(
                        "text",
                        format!(
                            "the file is for {}, not {}",
                            named.as_str(),
                            origin.as_str()
                        ),
                    ))
                }
            }
            ("TTL", [ttl]) => {
                *default_ttl = ttl
                    .parse()
                    .map_err(|_| Invalid::new("ttl", format!("'{ttl}' is not a number")))?;
                Ok(None)
            }
            _ => Err(Invalid::new(
                "text",
                format!("only $ORIGIN and $TTL are read, each with one value; not ${directive}"),
            )),
        };
    }
    // A line that starts with a blank belongs to the previous owner.
    let (name, rest) = if body.starts_with(char::is_whitespace) {
        let name = owner
            .clone()
            .ok_or_else(|| Invalid::new("name", "the first record names its owner"))?;
        (name, &fields[..])
    } else {
        (fields[0].clone(), &fields[1..])
    };
    owner.replace(name.clone());
    record_line(&name, rest, *default_ttl, comment)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::Name;
    use hickory_proto::serialize::txt::Parser;
    use proptest::prelude::*;
    use proptest::test_runner::{TestCaseError, TestRunner};

    use super::*;
    use crate::dns::validate::arbitrary;

    fn zone() -> Origin {
        Origin::parse("zone", "example.com").unwrap()
    }

    fn stored(records: Vec<(usize, RecordData)>) -> Vec<Record> {
        records
            .into_iter()
            .map(|(i, data)| Record {
                id: i64::try_from(i).unwrap(),
                zone_id: 1,
                data,
                version: 1,
            })
            .collect()
    }

    const FILE: &str = r#"$ORIGIN example.com.
$TTL 600
@	IN	NS	ns1.provider.net.
@	3600	IN	MX	10 mail ; the mail host
mail	IN	A	192.0.2.1
	IN	AAAA	2001:db8::1
_sip._tcp	SRV	10 5 5060 sip.example.com.
@	CAA	0 issue "ca.example"
txt	TXT	"a \"quoted\" \\ word" "and more"
"#;

    #[test]
    fn a_file_is_read_record_by_record_with_owners_ttls_and_comments() {
        let records = read(&zone(), FILE).unwrap();
        let lines: Vec<usize> = records.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9]);
        let mx = &records[1].1;
        assert_eq!(
            (
                mx.content.as_str(),
                mx.priority,
                mx.ttl,
                mx.comment.as_deref()
            ),
            ("mail.example.com.", Some(10), 3600, Some("the mail host"))
        );
        let aaaa = &records[3].1;
        assert_eq!((aaaa.name.as_str(), aaaa.ttl), ("mail", 600));
        assert_eq!(records[6].1.content, r#"a "quoted" \ wordand more"#);
    }

    #[test]
    fn what_is_written_reads_back_the_same_and_parses_as_a_zone_file() {
        let mut records = read(&zone(), FILE).unwrap();
        records.push((
            10,
            validate::record(
                &zone(),
                &json!({"name": "long", "type": "TXT", "content": "é".repeat(300)}),
            )
            .unwrap(),
        ));
        let written = write(
            &zone(),
            &Soa::default(),
            2_026_112_901,
            &stored(records.clone()),
        );
        assert!(
            written.starts_with("$ORIGIN example.com.\n$TTL 3600\n"),
            "{written}"
        );
        assert!(
            written.contains("SOA\tns1.provider.net. hostmaster.example.com. 2026112901 "),
            "{written}"
        );
        let again: Vec<RecordData> = read(&zone(), &written)
            .unwrap()
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        let before: Vec<RecordData> = records.into_iter().map(|(_, d)| d).collect();
        assert_eq!(again, before);
        // Another reader takes it too: every record, TXT strings of at most 255 bytes.
        let (origin, sets) =
            Parser::new(written, None, Some(Name::from_str("example.com.").unwrap()))
                .parse()
                .unwrap();
        assert_eq!(origin.to_ascii(), "example.com.");
        assert_eq!(
            sets.values()
                .map(|s| s.records_without_rrsigs().count())
                .sum::<usize>(),
            9
        );
    }

    #[test]
    fn every_bad_line_is_reported_by_number() {
        let file = format!(
            "$ORIGIN example.com.\nok A 192.0.2.1\nbad- A 192.0.2.1\nx MX 1.2.3.4\nt TXT \"{}\"\n$INCLUDE other\nw 30 A 192.0.2.1\n",
            "x".repeat(256)
        );
        let errors = read(&zone(), &file).unwrap_err();
        let found: Vec<(usize, &str)> = errors.listed.iter().map(|(l, e)| (*l, e.field)).collect();
        assert_eq!(
            found,
            [
                (3, "name"),
                (4, "content"),
                (5, "content"),
                (6, "text"),
                (7, "ttl")
            ]
        );
        let other = read(&zone(), "$ORIGIN example.org.\n").unwrap_err();
        assert_eq!(other.listed[0].1.field, "text");
        let dup = read(&zone(), "a A 192.0.2.1\nA A 192.0.2.1\n").unwrap_err();
        assert_eq!(
            dup.listed.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn parentheses_inside_quotes_are_text_and_group_nothing() {
        // Found by the property test of export and import: the TXT `(` was written as
        // `"("` and read back as a blank, and an unclosed one swallowed
        // the lines after it.
        let file = "t TXT \"(\"\nu TXT \"a) (b\" ; (c\nv CAA 0 iodef \"https://x.example/(a)\"\n";
        let records = read(&zone(), file).unwrap();
        let contents: Vec<(usize, &str)> = records
            .iter()
            .map(|(l, d)| (*l, d.content.as_str()))
            .collect();
        assert_eq!(
            contents,
            [
                (1, "("),
                (2, "a) (b"),
                (3, "0 iodef \"https://x.example/(a)\"")
            ]
        );
        assert_eq!(records[1].1.comment.as_deref(), Some("(c"));
    }

    #[test]
    fn parentheses_are_balanced_and_do_not_nest() {
        let first_error = |file: &str| {
            let failures = read(&zone(), file).unwrap_err();
            let (line, invalid) = &failures.listed[0];
            (*line, invalid.field)
        };
        assert_eq!(first_error("www 300 IN MX ( 10\n"), (1, "text"));
        assert_eq!(first_error("a A 192.0.2.1\nb MX ( 10\nmail\n"), (2, "text"));
        assert_eq!(first_error("a A 192.0.2.1 )\n"), (1, "text"));
        assert_eq!(first_error("a MX ( 10 ( mail )\n"), (1, "text"));
        let grouped = read(&zone(), "a MX ( 10\n mail ) ; kept\nb A 192.0.2.1\n").unwrap();
        assert_eq!(grouped.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn a_file_of_bad_lines_lists_the_first_and_counts_them_all() {
        let failures = read(&zone(), &"-\n".repeat(5000)).unwrap_err();
        assert_eq!(failures.total, 5000);
        assert_eq!(failures.listed.len(), Failures::LISTED);
    }

    #[test]
    fn text_past_ascii_is_written_as_decimal_escapes_and_reads_back() {
        // Found by re-reading an export with NLnet Labs' reader, which
        // refuses raw UTF-8 in a quoted string.
        let data = validate::record(
            &zone(),
            &json!({"name": "t", "type": "TXT", "content": "café \"€\""}),
        )
        .unwrap();
        let written = write(
            &zone(),
            &Soa::default(),
            1,
            &stored(vec![(1, data.clone())]),
        );
        assert!(
            written.contains("\t\"caf\\195\\169 \\\"\\226\\130\\172\\\"\"\n"),
            "{written}"
        );
        assert!(written.is_ascii());
        assert_eq!(read(&zone(), &written).unwrap()[0].1, data);
    }

    #[test]
    fn an_soa_over_several_lines_is_skipped() {
        let file = "@ IN SOA ns1 host (\n 1 ; serial\n 2 3 4 5 )\nwww A 192.0.2.1\n";
        let records = read(&zone(), file).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].0, 4);
    }

    /// A record as the hub keeps it: what `dns.list` shows and an import
    /// compares.
    fn kept(d: &RecordData) -> impl std::fmt::Debug + PartialEq + '_ {
        (
            (d.name.as_str(), d.kind.as_str(), d.content.as_str()),
            (d.ttl, d.priority, d.weight, d.port),
            d.comment.as_deref(),
        )
    }

    #[test]
    fn every_record_validation_accepts_exports_and_reimports_as_the_same_record() {
        let origin = zone();
        let accepted = std::cell::Cell::new(0_u32);
        // A failure shows its smallest input here; no file is kept for it.
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let outcome = runner.run(&arbitrary::record(), |sent| {
            let Ok(data) = validate::record(&origin, &sent) else {
                return Ok(());
            };
            accepted.set(accepted.get() + 1);
            let text = write(
                &origin,
                &Soa::default(),
                2_026_112_901,
                &stored(vec![(1, data.clone())]),
            );
            let again = read(&origin, &text)
                .map_err(|e| TestCaseError::fail(format!("{text:?} reads as {e:?}")))?;
            prop_assert_eq!(again.len(), 1, "{:?}", text);
            prop_assert_eq!(kept(&again[0].1), kept(&data), "{:?}", text);
            // Another reader takes it as well: the SOA and the record.
            let mut other = domain::zonefile::inplace::Zonefile::new();
            other.extend_from_slice(text.as_bytes());
            let entries: Result<Vec<_>, _> = other.collect();
            let entries = entries.map_err(|e| TestCaseError::fail(format!("{text:?}: {e:?}")))?;
            prop_assert_eq!(entries.len(), 2, "{:?}", text);
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
        // Shaped inputs pass often enough (about one in five; a tenth is
        // far below what any run draws) for the trip to be really taken.
        assert!(accepted.get() >= 24, "only {} accepted", accepted.get());
    }

    /// Lines an imported file might hold: record lines made of what a
    /// client might send, directives, and anything.
    fn file() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            4 => arbitrary::record().prop_map(|r| {
                let field = |k: &str| r[k].as_str().map_or_else(|| r[k].to_string(), str::to_owned);
                format!("{} {} IN {} {}", field("name"), field("ttl"), field("type"), field("content"))
            }),
            1 => prop::sample::select(vec!["$ORIGIN example.com.", "$TTL 600", "$TTL x", "$INCLUDE f", "  ", "( ", ")"])
                .prop_map(str::to_owned),
            2 => "[$()\";\\\\ a-zA-Z0-9.@*_\t-]{0,40}",
            1 => any::<String>(),
        ];
        prop::collection::vec(line, 0..8).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_file_makes_import_panic(text in file()) {
            let _ = read(&zone(), &text);
        }

        #[test]
        fn no_stored_record_makes_export_panic(
            name in any::<String>(),
            kind in any::<String>(),
            content in any::<String>(),
            ttl in any::<i32>(),
            numbers in any::<(Option<i32>, Option<i32>, Option<i32>)>(),
            comment in any::<Option<String>>(),
        ) {
            // What an older hub, or a hand, may have left in the table.
            let (priority, weight, port) = numbers;
            let data = RecordData { name, kind, content, ttl, priority, weight, port, comment };
            let text = write(&zone(), &Soa::default(), i64::MAX, &stored(vec![(1, data)]));
            prop_assert!(text.starts_with("$ORIGIN example.com.\n"));
        }
    }
}
