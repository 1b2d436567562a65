//! The rules a record must follow before it is stored: pure functions, no
//! database. hickory-proto turns names into ASCII (punycode for
//! internationalised ones) and parses each type's data; the rules it does
//! not hold (it takes `*foo`, `foo-`, `MX 10 1.2.3.4`, any CAA tag, CAA
//! flags 1, a 300-byte TXT string) are checked here first.
//!
//! Records are checked one by one ([`record`]), then as the set the zone
//! would hold after a change ([`check_set`]): CNAMEs alone at their name,
//! no duplicates, no MX/NS/SRV target that holds a CNAME.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::{Name, RData, RecordType};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::db::dns::RecordData;
use crate::text;

pub const MIN_TTL: i64 = 60;
pub const MAX_TTL: i64 = 86_400;
pub const DEFAULT_TTL: i32 = 3600;
/// TXT data in one record, in bytes: it is split into 255-byte strings on
/// export, and a whole record must fit a DNS message with room to spare.
pub const MAX_TXT_BYTES: usize = 4000;
pub const MAX_COMMENT_CHARS: usize = 255;
/// Longer input cannot be a name (255 bytes on the wire, a little more
/// with escapes or Unicode); refused before any parsing.
const MAX_NAME_INPUT: usize = 1024;
const MAX_LABEL: usize = 63;

/// One rule a request broke: the field and what the rule is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invalid {
    pub field: &'static str,
    pub detail: String,
}

impl Invalid {
    pub fn new(field: &'static str, detail: impl Into<String>) -> Self {
        Self {
            field,
            detail: detail.into(),
        }
    }
}

/// Rules broken by the changes of a batch or the lines of an import, by
/// index or line: the first [`Failures::LISTED`] of them, and how many in
/// all. A reply lists no more, so a file of a hundred thousand bad lines
/// costs no more to answer than one of a hundred.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Failures {
    pub listed: Vec<(usize, Invalid)>,
    pub total: usize,
}

impl Failures {
    pub const LISTED: usize = 100;

    pub fn one(invalid: Invalid) -> Self {
        Self {
            listed: vec![(0, invalid)],
            total: 1,
        }
    }

    pub fn push(&mut self, at: usize, invalid: Invalid) {
        if self.listed.len() < Self::LISTED {
            self.listed.push((at, invalid));
        }
        self.total += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl FromIterator<(usize, Invalid)> for Failures {
    fn from_iter<I: IntoIterator<Item = (usize, Invalid)>>(iter: I) -> Self {
        let mut failures = Self::default();
        for (at, invalid) in iter {
            failures.push(at, invalid);
        }
        failures
    }
}

/// The record types the hub manages; the SOA is the hub's own.
const TYPES: [&str; 8] = ["A", "AAAA", "CNAME", "MX", "NS", "SRV", "TXT", "CAA"];

/// A zone's origin, checked once: a host name of two labels or more.
#[derive(Debug, Clone)]
pub struct Origin {
    name: Name,
    /// Lower-case ASCII without the trailing dot, as stored.
    text: String,
}

impl Origin {
    /// Parses a zone name as a client gives it (`Example.COM`,
    /// `example.com.`, `bücher.example`), reporting failures as `field`.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, Invalid> {
        Self::read(field, parse_sent_name(field, raw)?)
    }

    /// The origin of a zone name as stored. It was checked when the zone
    /// was made; the IDN rules are not applied again, so a zone made
    /// before they were tightened stays readable.
    pub fn stored(name: &str) -> Self {
        parse_name("zone", name)
            .and_then(|name| Self::read("zone", name))
            .expect("stored zone names are valid")
    }

    fn read(field: &'static str, name: Name) -> Result<Self, Invalid> {
        let name = if name.is_fqdn() {
            name
        } else {
            name.append_domain(&Name::root())
                .map_err(|e| Invalid::new(field, format!("not a domain name: {e}")))?
        };
        if name.num_labels() < 2 {
            return Err(Invalid::new(field, "a zone has at least two labels"));
        }
        for label in name.iter() {
            host_label(field, label)?;
        }
        let text = name.to_ascii().trim_end_matches('.').to_owned();
        Ok(Self { name, text })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The absolute name of a stored relative one (`@`, `www`).
    pub fn fqdn(&self, relative: &str) -> String {
        if relative == "@" {
            format!("{}.", self.text)
        } else {
            format!("{relative}.{}.", self.text)
        }
    }

    /// The relative form of an absolute name in this zone, `None` outside it.
    pub fn relative(&self, absolute: &str) -> Option<String> {
        let absolute = absolute.trim_end_matches('.');
        if absolute == self.text {
            return Some("@".into());
        }
        absolute
            .strip_suffix(&self.text)
            .and_then(|head| head.strip_suffix('.'))
            .map(str::to_owned)
    }
}

/// Reads a name: ASCII as written (escapes and all, so the label rules
/// below see every byte), anything else through IDNA to punycode. Lower
/// case either way.
fn parse_name(field: &'static str, raw: &str) -> Result<Name, Invalid> {
    if raw.is_empty() {
        return Err(Invalid::new(field, "a name is required"));
    }
    if raw.chars().count() > MAX_NAME_INPUT {
        return Err(Invalid::new(field, "a name is at most 255 bytes"));
    }
    text::check(raw).map_err(|e| Invalid::new(field, e.to_string()))?;
    if raw.chars().any(char::is_whitespace) {
        return Err(Invalid::new(field, "a name holds no spaces"));
    }
    let parsed = if raw.is_ascii() {
        Name::from_ascii(raw)
    } else {
        Name::from_utf8(raw)
    };
    parsed
        .map(|n| n.to_lowercase())
        .map_err(|e| Invalid::new(field, format!("not a domain name: {e}")))
}

/// Reads a name a client sent: [`parse_name`], then every `xn--` label
/// checked ([`a_label`]).
fn parse_sent_name(field: &'static str, raw: &str) -> Result<Name, Invalid> {
    let name = parse_name(field, raw)?;
    for label in name.iter() {
        a_label(field, label)?;
    }
    Ok(name)
}

/// An `xn--` label, written so or made from Unicode, must be the punycode
/// of a label IDNA2008 allows: letters, marks and digits (RFC 5892's
/// rule; emoji and other symbols are out), and the A-label that UTS 46
/// gives for it, so that `xn--zz` or an upper-case spelling is refused.
fn a_label(field: &'static str, label: &[u8]) -> Result<(), Invalid> {
    use icu_properties::CodePointMapData;
    use icu_properties::props::GeneralCategory as G;
    let Some(encoded) = label.strip_prefix(b"xn--") else {
        return Ok(());
    };
    let shown = String::from_utf8_lossy(label);
    let bad = |why: String| {
        Invalid::new(
            field,
            format!("'{shown}' is not a valid internationalised label: {why}"),
        )
    };
    let unicode = std::str::from_utf8(encoded)
        .ok()
        .and_then(idna::punycode::decode_to_string)
        .ok_or_else(|| bad("it is not punycode".into()))?;
    let category = CodePointMapData::<G>::new();
    let letter_or_digit = |c: char| {
        c == '-'
            || matches!(
                category.get(c),
                G::LowercaseLetter
                    | G::OtherLetter
                    | G::ModifierLetter
                    | G::NonspacingMark
                    | G::SpacingMark
                    | G::DecimalNumber
            )
    };
    if let Some(c) = unicode.chars().find(|c| !letter_or_digit(*c)) {
        return Err(bad(format!(
            "U+{:04X} is not a letter or digit that IDNA2008 allows",
            u32::from(c)
        )));
    }
    match idna::domain_to_ascii_strict(&unicode) {
        Ok(ascii) if ascii.as_bytes() == label => Ok(()),
        Ok(ascii) => Err(bad(format!("its standard form is '{ascii}'"))),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Letters, digits and hyphens, 1–63 bytes, no hyphen at either end.
fn host_label(field: &'static str, label: &[u8]) -> Result<(), Invalid> {
    let shown = String::from_utf8_lossy(label);
    if label.is_empty() || label.len() > MAX_LABEL {
        return Err(Invalid::new(
            field,
            format!(
                "a label is 1 to {MAX_LABEL} bytes; '{shown}' is {}",
                label.len()
            ),
        ));
    }
    if !label
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    {
        return Err(Invalid::new(
            field,
            format!("'{shown}': a host name holds only letters, digits and hyphens"),
        ));
    }
    if label.starts_with(b"-") || label.ends_with(b"-") {
        return Err(Invalid::new(
            field,
            format!("'{shown}': a label neither starts nor ends with a hyphen"),
        ));
    }
    Ok(())
}

/// `_` followed by a host label, as in SRV's `_sip._tcp`.
fn underscore_label(field: &'static str, label: &[u8]) -> Result<(), Invalid> {
    match label.strip_prefix(b"_") {
        // The parser has refused labels past 63 bytes already.
        Some(rest) => host_label(field, rest),
        _ => Err(Invalid::new(
            field,
            format!(
                "'{}' is not an underscore label like _sip or _tcp",
                String::from_utf8_lossy(label)
            ),
        )),
    }
}

/// A record's owner name, relative to `origin` as stored (`@`, `www`,
/// `*.dev`, `_sip._tcp`).
fn owner(origin: &Origin, kind: &str, raw: &str) -> Result<String, Invalid> {
    const FIELD: &str = "name";
    if raw == "@" {
        return Ok("@".into());
    }
    let name = parse_sent_name(FIELD, raw)?;
    let name = if name.is_fqdn() {
        name
    } else {
        name.append_domain(&origin.name)
            .map_err(|e| Invalid::new(FIELD, format!("not a domain name: {e}")))?
    };
    // By labels: badexample.com is not inside example.com.
    if !origin.name.zone_of(&name) {
        return Err(Invalid::new(
            FIELD,
            format!("{} is not inside the zone {}", name.to_ascii(), origin.text),
        ));
    }
    let own = usize::from(name.num_labels()) - usize::from(origin.name.num_labels())
        + usize::from(name.is_wildcard());
    let labels: Vec<&[u8]> = name.iter().take(own).collect();
    // Underscore labels lead the name: SRV's `_service._proto` (exactly
    // two), TXT's `_dmarc` or `_acme-challenge` (any number).
    let leading = labels.iter().take_while(|l| l.starts_with(b"_")).count();
    match kind {
        "SRV" if leading != 2 => {
            return Err(Invalid::new(
                FIELD,
                "an SRV name starts with _service._proto, e.g. _sip._tcp",
            ));
        }
        "SRV" | "TXT" => {}
        _ if leading > 0 => {
            return Err(Invalid::new(
                FIELD,
                format!("underscore labels are for SRV and TXT records, not {kind}"),
            ));
        }
        _ => {}
    }
    for (i, label) in labels.iter().enumerate() {
        if i < leading {
            underscore_label(FIELD, label)?;
        } else if *label == b"*" {
            if i != 0 {
                return Err(Invalid::new(FIELD, "'*' is only the whole leftmost label"));
            }
        } else if label.contains(&b'*') {
            return Err(Invalid::new(FIELD, "'*' is only the whole leftmost label"));
        } else {
            host_label(FIELD, label)?;
        }
    }
    Ok(origin
        .relative(&name.to_ascii())
        .expect("the name is inside the zone"))
}

/// A host name that a record points at, absolute (`mail.example.com.`):
/// never an address literal, relative names completed with the origin.
fn target(origin: &Origin, raw: &str) -> Result<String, Invalid> {
    const FIELD: &str = "content";
    if raw.trim_end_matches('.').parse::<IpAddr>().is_ok() {
        return Err(Invalid::new(
            FIELD,
            format!("'{raw}' is an address; the target must be a host name"),
        ));
    }
    let name = parse_sent_name(FIELD, raw)?;
    let name = if name.is_fqdn() {
        name
    } else {
        name.append_domain(&origin.name)
            .map_err(|e| Invalid::new(FIELD, format!("not a domain name: {e}")))?
    };
    if name.is_root() {
        return Err(Invalid::new(FIELD, "the target must be a host name"));
    }
    for label in name.iter() {
        host_label(FIELD, label)?;
    }
    let top = name.iter().next_back().unwrap_or_default();
    if top.iter().all(u8::is_ascii_digit) {
        return Err(Invalid::new(
            FIELD,
            "the target must be a host name (its last label is not all digits)",
        ));
    }
    Ok(name.to_ascii())
}

/// A 16-bit number a type needs (MX priority, SRV priority, weight, port).
fn u16_field(field: &'static str, value: Option<i64>, kind: &str) -> Result<i32, Invalid> {
    let value = value.ok_or_else(|| Invalid::new(field, format!("{kind} needs a {field}")))?;
    u16::try_from(value)
        .map(i32::from)
        .map_err(|_| Invalid::new(field, format!("{field} is 0 to 65535")))
}

/// A zone's name as a DNS message carries it (any case, a final dot) in
/// the form zones are stored in: lower case, without the final dot.
pub fn stored_zone_name(wire: &str) -> String {
    wire.to_ascii_lowercase().trim_end_matches('.').to_owned()
}

/// The text of a TXT record as quoted strings of at most 255 bytes, with
/// `"` and `\` escaped: the master-file form, and what hickory checks.
pub fn quoted_txt(text: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::from("\"");
    let mut bytes = 0;
    for c in text.chars() {
        if bytes + c.len_utf8() > 255 {
            current.push('"');
            parts.push(std::mem::replace(&mut current, String::from("\"")));
            bytes = 0;
        }
        if matches!(c, '"' | '\\') {
            current.push('\\');
        }
        current.push(c);
        bytes += c.len_utf8();
    }
    current.push('"');
    parts.push(current);
    parts.join(" ")
}

/// `flags tag "value"`, checked and written canonically.
fn caa(raw: &str) -> Result<String, Invalid> {
    const FIELD: &str = "content";
    let shape = || Invalid::new(FIELD, "CAA content is: flags tag \"value\"");
    let mut parts = raw.trim().splitn(3, char::is_whitespace);
    let (flags, tag, value) = match (parts.next(), parts.next(), parts.next()) {
        (Some(f), Some(t), Some(v)) => (f, t.to_ascii_lowercase(), v.trim()),
        _ => return Err(shape()),
    };
    if !matches!(flags, "0" | "128") {
        return Err(Invalid::new(FIELD, "CAA flags are 0 or 128"));
    }
    if !matches!(tag.as_str(), "issue" | "issuewild" | "iodef") {
        return Err(Invalid::new(
            FIELD,
            "the CAA tag is issue, issuewild or iodef",
        ));
    }
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.contains(['"', '\\']) || value.chars().any(char::is_control) {
        return Err(Invalid::new(
            FIELD,
            "the CAA value holds no quotes, backslashes or control characters",
        ));
    }
    if value.len() > 255 {
        return Err(Invalid::new(FIELD, "the CAA value is at most 255 bytes"));
    }
    // hickory keeps a value it cannot read as unknown data, so the value's
    // shape is checked here.
    if tag == "iodef" {
        let url = ["mailto:", "http://", "https://"]
            .iter()
            .any(|scheme| value.len() > scheme.len() && value.starts_with(scheme));
        if !url || value.contains(char::is_whitespace) {
            return Err(Invalid::new(
                FIELD,
                "iodef is a mailto:, http: or https: URL",
            ));
        }
    } else {
        let issuer = value.split(';').next().unwrap_or_default().trim();
        if !issuer.is_empty() {
            issuer
                .split('.')
                .try_for_each(|label| host_label(FIELD, label.as_bytes()))?;
        }
    }
    Ok(format!("{flags} {tag} \"{value}\""))
}

/// The record's data in canonical presentation form, checked by type.
fn content(
    origin: &Origin,
    kind: &str,
    raw: &str,
    numbers: &mut Numbers,
) -> Result<String, Invalid> {
    const FIELD: &str = "content";
    if kind != "TXT" && raw.is_empty() {
        return Err(Invalid::new(FIELD, "content is required"));
    }
    let (canonical, for_hickory) = match kind {
        "A" => {
            let ip: Ipv4Addr = raw.parse().map_err(|_| {
                Invalid::new(FIELD, format!("'{raw}' is not a dotted IPv4 address"))
            })?;
            (ip.to_string(), ip.to_string())
        }
        "AAAA" => {
            let ip: Ipv6Addr = raw
                .parse()
                .map_err(|_| Invalid::new(FIELD, format!("'{raw}' is not an IPv6 address")))?;
            (ip.to_string(), ip.to_string())
        }
        "CNAME" | "NS" => {
            let host = target(origin, raw)?;
            (host.clone(), host)
        }
        "MX" => {
            let priority = u16_field("priority", numbers.priority, kind)?;
            numbers.priority = Some(priority.into());
            if raw == "." {
                // The null MX (RFC 7505): this domain takes no mail.
                if priority != 0 {
                    return Err(Invalid::new(FIELD, "a null MX (\".\") has priority 0"));
                }
                (".".into(), "0 .".into())
            } else {
                let host = target(origin, raw)?;
                (host.clone(), format!("{priority} {host}"))
            }
        }
        "SRV" => {
            let priority = u16_field("priority", numbers.priority, kind)?;
            let weight = u16_field("weight", numbers.weight, kind)?;
            let port = u16_field("port", numbers.port, kind)?;
            // `.`: the service is decidedly not available here (RFC 2782),
            // as in RFC 6186's `_submission._tcp SRV 0 0 0 .`.
            let host = if raw == "." {
                ".".to_owned()
            } else {
                target(origin, raw)?
            };
            (host.clone(), format!("{priority} {weight} {port} {host}"))
        }
        "TXT" => {
            if raw.len() > MAX_TXT_BYTES {
                return Err(Invalid::new(
                    FIELD,
                    format!("TXT content is at most {MAX_TXT_BYTES} bytes"),
                ));
            }
            if let Some(c) = raw.chars().find(|c| c.is_control()) {
                return Err(Invalid::new(
                    FIELD,
                    format!(
                        "TXT content holds no control characters (found U+{:04X})",
                        u32::from(c)
                    ),
                ));
            }
            // The bidirectional overrides the panel would show reordered.
            text::check(raw).map_err(|e| Invalid::new(FIELD, format!("TXT content: {e}")))?;
            (raw.to_owned(), quoted_txt(raw))
        }
        "CAA" => {
            let canonical = caa(raw)?;
            (canonical.clone(), canonical)
        }
        other => unreachable!("type {other} was checked"),
    };
    let record_type: RecordType = kind.parse().expect("a known type");
    RData::try_from_str(record_type, &for_hickory)
        .map_err(|e| Invalid::new(FIELD, format!("not valid {kind} data: {e}")))?;
    Ok(canonical)
}

/// The numbers beside a record's content, as sent.
#[derive(Debug, Default)]
struct Numbers {
    priority: Option<i64>,
    weight: Option<i64>,
    port: Option<i64>,
}

fn text_field(obj: &Map<String, Value>, field: &'static str) -> Result<Option<String>, Invalid> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Invalid::new(field, format!("{field} must be a string"))),
    }
}

fn int_field(obj: &Map<String, Value>, field: &'static str) -> Result<Option<i64>, Invalid> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| Invalid::new(field, format!("{field} must be an integer"))),
    }
}

/// Checks one record as a client sent it (a JSON object) and gives what
/// would be stored, or the first rule it broke.
pub fn record(origin: &Origin, sent: &Value) -> Result<RecordData, Invalid> {
    let obj = sent
        .as_object()
        .ok_or_else(|| Invalid::new("record", "a record is a JSON object"))?;
    let kind = text_field(obj, "type")?
        .ok_or_else(|| Invalid::new("type", "type is required"))?
        .to_ascii_uppercase();
    if !TYPES.contains(&kind.as_str()) {
        return Err(Invalid::new(
            "type",
            format!("type is one of {}", TYPES.join(", ")),
        ));
    }
    let name = owner(
        origin,
        &kind,
        &text_field(obj, "name")?.ok_or_else(|| Invalid::new("name", "name is required"))?,
    )?;
    if kind == "CNAME" && name == "@" {
        return Err(Invalid::new("name", "a CNAME cannot be at the zone's apex"));
    }
    let mut numbers = Numbers {
        priority: int_field(obj, "priority")?,
        weight: int_field(obj, "weight")?,
        port: int_field(obj, "port")?,
    };
    for (field, value, owners) in [
        ("priority", numbers.priority, ["MX", "SRV"].as_slice()),
        ("weight", numbers.weight, ["SRV"].as_slice()),
        ("port", numbers.port, ["SRV"].as_slice()),
    ] {
        if value.is_some() && !owners.contains(&kind.as_str()) {
            return Err(Invalid::new(
                field,
                format!("only {} records have a {field}", owners.join(" and ")),
            ));
        }
    }
    let raw = text_field(obj, "content")?.unwrap_or_default();
    let content = content(origin, &kind, &raw, &mut numbers)?;
    let ttl = match int_field(obj, "ttl")? {
        None => DEFAULT_TTL,
        Some(ttl) if (MIN_TTL..=MAX_TTL).contains(&ttl) => {
            i32::try_from(ttl).expect("within the TTL range")
        }
        Some(_) => {
            return Err(Invalid::new(
                "ttl",
                format!("ttl is {MIN_TTL} to {MAX_TTL} seconds"),
            ));
        }
    };
    // Kept without blanks at its ends: a master file carries it after
    // `; `, and a reader cannot tell those blanks from the separator's, so
    // an exported zone would import as a change to every such record.
    let comment = match text_field(obj, "comment")?.map(|c| c.trim().to_owned()) {
        None => None,
        Some(c) if c.is_empty() => None,
        Some(c) => {
            if c.chars().count() > MAX_COMMENT_CHARS {
                return Err(Invalid::new(
                    "comment",
                    format!("a comment is at most {MAX_COMMENT_CHARS} characters"),
                ));
            }
            text::check(&c).map_err(|e| Invalid::new("comment", e.to_string()))?;
            // One line: a master file carries it after a `;`.
            if c.contains(['\n', '\t']) {
                return Err(Invalid::new(
                    "comment",
                    "a comment is one line, without tabs",
                ));
            }
            Some(c)
        }
    };
    let to_i32 = |n: Option<i64>| n.map(|n| i32::try_from(n).expect("checked as 16-bit"));
    Ok(RecordData {
        name,
        kind,
        content,
        ttl,
        priority: to_i32(numbers.priority),
        weight: to_i32(numbers.weight),
        port: to_i32(numbers.port),
        comment,
    })
}

/// A record of the set a zone would hold; `changed` is the index of the
/// change that brought it, `None` for one already stored and untouched.
pub struct Entry<'a> {
    pub data: &'a RecordData,
    pub changed: Option<usize>,
}

/// The rules between records, over the set a zone would hold after a
/// change. Only changed records are blamed: a zone stored before a rule
/// existed is not made unchangeable by it.
pub fn check_set<'a>(origin: &Origin, entries: &[Entry<'a>]) -> Vec<(usize, Invalid)> {
    let mut errors = Vec::new();
    let mut by_name: HashMap<&str, Vec<&Entry<'_>>> = HashMap::new();
    for entry in entries {
        by_name.entry(&entry.data.name).or_default().push(entry);
    }
    let cnames: HashSet<&str> = entries
        .iter()
        .filter(|e| e.data.kind == "CNAME")
        .map(|e| e.data.name.as_str())
        .collect();
    for (name, here) in &by_name {
        if here.len() > 1 && cnames.contains(name) {
            let detail =
                format!("a CNAME is alone at its name; {name} would hold other records too");
            errors.extend(
                here.iter()
                    .filter_map(|e| e.changed.map(|i| (i, Invalid::new("name", detail.clone())))),
            );
        }
    }
    let identity = |d: &'a RecordData| {
        (
            d.name.as_str(),
            d.kind.as_str(),
            d.content.as_str(),
            d.priority,
            d.weight,
            d.port,
        )
    };
    let mut copies: HashMap<_, usize> = HashMap::new();
    for entry in entries {
        *copies.entry(identity(entry.data)).or_default() += 1;
    }
    for entry in entries {
        if copies[&identity(entry.data)] > 1
            && let Some(i) = entry.changed
        {
            errors.push((
                i,
                Invalid::new("content", "the same record is already in the zone"),
            ));
        }
    }
    for entry in entries {
        let d = entry.data;
        // A CNAME's target too: a chain or a loop inside the zone is
        // answered SERVFAIL by resolvers.
        if !matches!(d.kind.as_str(), "MX" | "NS" | "SRV" | "CNAME") {
            continue;
        }
        let Some(points_at) = origin.relative(&d.content) else {
            continue;
        };
        if !cnames.contains(points_at.as_str()) {
            continue;
        }
        let detail = format!(
            "{} holds a CNAME; the target of {} cannot be an alias",
            d.content, d.kind
        );
        if let Some(i) = entry.changed {
            errors.push((i, Invalid::new("content", detail)));
        } else {
            // The stored record is fine; the CNAME that lands on its target is not.
            let blame = by_name[points_at.as_str()]
                .iter()
                .filter(|e| e.data.kind == "CNAME")
                .filter_map(|e| e.changed);
            errors.extend(blame.map(|i| {
                (
                    i,
                    Invalid::new(
                        "name",
                        format!(
                            "{} records point at {points_at}; it cannot be a CNAME",
                            d.kind
                        ),
                    ),
                )
            }));
        }
    }
    errors.sort_by_key(|(i, _)| *i);
    errors.dedup();
    errors
}

/// Records as a client might send them, for the property tests here and
/// in [`super::master`]: mostly shaped like real ones, so that validation
/// often accepts them and the trip through a master file is exercised,
/// with anything at all mixed in at every field.
#[cfg(test)]
pub(crate) mod arbitrary {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::TYPES;

    fn label() -> impl Strategy<Value = String> {
        prop_oneof![
            20 => "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?",
            // Case, underscores, stars, escapes and dots where they do not belong.
            1 => "[A-Za-z0-9_*.\\\\-]{0,6}",
            // Internationalised labels, taken through IDNA.
            1 => "[a-zäöüßéÅ]{1,8}",
            // Either side of the 63-byte bound.
            1 => "[a-z]{62,64}",
            1 => any::<String>(),
        ]
    }

    /// Owner and target names: relative, absolute (in the zone or not),
    /// the apex, wildcards, underscores, and anything.
    pub fn name() -> impl Strategy<Value = String> {
        let origins = vec![
            "example.com.",
            "EXAMPLE.com.",
            "example.org.",
            "badexample.com.",
            ".",
        ];
        prop_oneof![
            2 => Just("@".to_owned()),
            8 => prop::collection::vec(label(), 1..4).prop_map(|labels| labels.join(".")),
            1 => label().prop_map(|label| format!("*.{label}")),
            3 => (prop::collection::vec(label(), 0..3), prop::sample::select(origins)).prop_map(
                |(labels, origin)| labels
                    .into_iter()
                    .chain([origin.to_owned()])
                    .collect::<Vec<_>>()
                    .join(".")
            ),
            1 => "[*_a-z0-9.@-]{0,20}",
            1 => any::<String>(),
        ]
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => name(),
            1 => any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
            1 => Just(".".to_owned()),
        ]
    }

    fn txt() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => any::<String>(),
            // Quotes, backslashes, comment and grouping characters of a master file.
            2 => "[ a-z0-9\"\\\\;()$@]{0,40}",
            // Longer than one 255-byte string, with multi-byte characters to split.
            2 => "[a-zé€\"\\\\ ]{200,700}",
            1 => "x{3995,4005}",
        ]
    }

    fn caa() -> impl Strategy<Value = String> {
        let flags = prop::sample::select(vec!["0", "128", "1", "255", "00"]);
        let tags = prop::sample::select(vec!["issue", "issuewild", "iodef", "ISSUE", "tbs"]);
        let value = prop_oneof![
            "[a-z0-9.-]{0,20}(; ?[a-z]+=[a-z0-9]+)?",
            "mailto:[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,3}",
            "https?://[a-z]{1,8}\\.[a-z]{2,3}/[a-z()%;]{0,10}",
            any::<String>(),
        ];
        (flags, tags, value, any::<bool>()).prop_map(|(flags, tag, value, quoted)| {
            if quoted {
                format!("{flags} {tag} \"{value}\"")
            } else {
                format!("{flags} {tag} {value}")
            }
        })
    }

    /// A number field as JSON where the type has none: mostly absent,
    /// else any integer, or not an integer at all.
    fn number() -> impl Strategy<Value = Value> {
        prop_oneof![
            60 => Just(Value::Null),
            1 => any::<i64>().prop_map(Value::from),
            1 => any::<u64>().prop_map(Value::from),
            1 => prop::sample::select(vec![-1_i64, 65_536, 1 << 31, i64::MIN]).prop_map(Value::from),
            1 => any::<f64>().prop_map(|f| json!(f)),
            1 => "[0-9]{1,3}".prop_map(Value::from),
        ]
    }

    /// A number field the type has: mostly 16-bit, else as [`number`].
    fn u16_number() -> impl Strategy<Value = Value> {
        prop_oneof![
            12 => (0_i64..=65_535).prop_map(Value::from),
            1 => number(),
        ]
    }

    fn ttl() -> impl Strategy<Value = Value> {
        prop_oneof![
            2 => Just(Value::Null),
            12 => (60_i64..=86_400).prop_map(Value::from),
            1 => prop::sample::select(vec![0_i64, 59, 86_401, -1, i64::MAX]).prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            1 => "[0-9]{1,5}".prop_map(Value::from),
        ]
    }

    fn comment() -> impl Strategy<Value = Value> {
        prop_oneof![
            6 => Just(Value::Null),
            4 => "[ -~]{0,40}".prop_map(Value::from),
            1 => any::<String>().prop_map(Value::from),
            1 => "x{250,260}".prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
        ]
    }

    fn kind() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => prop::sample::select(TYPES.to_vec()).prop_map(str::to_owned),
            2 => prop::sample::select(TYPES.to_vec()).prop_map(str::to_ascii_lowercase),
            1 => prop::sample::select(vec!["SOA", "PTR", ""]).prop_map(str::to_owned),
            1 => any::<String>(),
        ]
    }

    /// A string field, now and then some other JSON value in its place.
    fn text(strategy: impl Strategy<Value = String>) -> impl Strategy<Value = Value> {
        prop_oneof![
            30 => strategy.prop_map(Value::from),
            1 => Just(Value::Null),
            1 => any::<i64>().prop_map(Value::from),
        ]
    }

    /// One record as a client could send it in `dns.create`.
    pub fn record() -> impl Strategy<Value = Value> {
        kind()
            .prop_flat_map(|kind| {
                let upper = kind.to_ascii_uppercase();
                let content = match upper.as_str() {
                    "A" => prop_oneof![
                        3 => any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
                        1 => "[0-9.x:]{0,18}",
                    ]
                    .boxed(),
                    "AAAA" => prop_oneof![
                        3 => any::<Ipv6Addr>().prop_map(|ip| ip.to_string()),
                        1 => any::<Ipv6Addr>().prop_map(|ip| ip.to_string().to_uppercase()),
                        1 => "[0-9a-fA-F:.]{0,40}",
                    ]
                    .boxed(),
                    "CNAME" | "NS" | "MX" | "SRV" => host().boxed(),
                    "TXT" => txt().boxed(),
                    "CAA" => caa().boxed(),
                    _ => any::<String>().boxed(),
                };
                let name = match upper.as_str() {
                    "SRV" => prop_oneof![
                        3 => ("_[a-z]{1,6}", prop::sample::select(vec!["_tcp", "_udp"]), "(\\.[a-z]{1,5})?")
                            .prop_map(|(service, proto, rest)| format!("{service}.{proto}{rest}")),
                        1 => name(),
                    ]
                    .boxed(),
                    "TXT" => prop_oneof![
                        3 => name(),
                        1 => "_[a-z-]{1,10}(\\.[a-z]{1,5})?",
                    ]
                    .boxed(),
                    _ => name().boxed(),
                };
                let numbers = match upper.as_str() {
                    "MX" => (u16_number(), number(), number()).boxed(),
                    "SRV" => (u16_number(), u16_number(), u16_number()).boxed(),
                    _ => (number(), number(), number()).boxed(),
                };
                (
                    Just(kind),
                    text(name),
                    text(content),
                    numbers,
                    ttl(),
                    comment(),
                )
            })
            .prop_map(|(kind, name, content, (priority, weight, port), ttl, comment)| {
                json!({
                    "type": kind, "name": name, "content": content, "ttl": ttl,
                    "priority": priority, "weight": weight, "port": port, "comment": comment,
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn zone() -> Origin {
        Origin::parse("zone", "example.com").unwrap()
    }

    fn check(sent: Value) -> Result<RecordData, Invalid> {
        record(&zone(), &sent)
    }

    fn field_of(sent: Value) -> &'static str {
        check(sent.clone())
            .map(|d| panic!("{sent} was taken as {d:?}"))
            .unwrap_err()
            .field
    }

    fn a(name: &str) -> Value {
        json!({"name": name, "type": "A", "content": "192.0.2.1"})
    }

    /// Input longer than any name could be written is refused before the
    /// parser sees it; input up to that length is the parser's to judge.
    #[test]
    fn input_longer_than_any_name_is_refused_before_parsing() {
        let before = "a name is at most 255 bytes";
        for len in [MAX_NAME_INPUT + 1, 10 * MAX_NAME_INPUT] {
            let err = parse_name("name", &"a".repeat(len)).unwrap_err();
            assert_eq!(err.detail, before, "{len} characters");
        }
        let err = parse_name("name", &"a".repeat(MAX_NAME_INPUT)).unwrap_err();
        assert_ne!(
            err.detail, before,
            "exactly the input limit reaches the parser"
        );
    }

    #[test]
    fn zone_names_are_host_names_of_two_labels_or_more_in_ascii() {
        assert_eq!(
            Origin::parse("zone", "Example.COM.").unwrap().as_str(),
            "example.com"
        );
        assert_eq!(
            Origin::parse("zone", "bücher.example").unwrap().as_str(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "com",
            "",
            ".",
            "foo_bar.com",
            "-a.com",
            "a-.com",
            "*.example.com",
            "a b.com",
        ] {
            assert!(Origin::parse("zone", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_are_letters_digits_and_inner_hyphens_of_1_to_63_bytes() {
        assert_eq!(check(a("a-b.c9")).unwrap().name, "a-b.c9");
        assert_eq!(check(a(&"x".repeat(63))).unwrap().name, "x".repeat(63));
        for bad in [
            "foo-",
            "-foo",
            "foo_bar",
            "a..b",
            &"x".repeat(64),
            "a\\.b",
            "a/b",
        ] {
            assert_eq!(field_of(a(bad)), "name", "{bad:?}");
        }
    }

    #[test]
    fn a_name_is_at_most_255_bytes_on_the_wire() {
        // 4 labels of 60 plus "example.com": 4*61 + 8 + 4 + 1 = 257 bytes.
        let long = vec!["a".repeat(60); 4].join(".");
        assert_eq!(field_of(a(&long)), "name");
        let fits = vec!["a".repeat(60); 3].join(".");
        assert!(check(a(&fits)).is_ok());
    }

    #[test]
    fn a_star_is_only_the_whole_leftmost_label() {
        assert_eq!(check(a("*")).unwrap().name, "*");
        assert_eq!(check(a("*.dev")).unwrap().name, "*.dev");
        for bad in ["*foo", "f*o", "a.*", "a.*.b", "**"] {
            assert_eq!(field_of(a(bad)), "name", "{bad:?}");
        }
    }

    #[test]
    fn names_are_inside_the_zone_by_labels() {
        assert_eq!(check(a("www.example.com.")).unwrap().name, "www");
        assert_eq!(check(a("EXAMPLE.com.")).unwrap().name, "@");
        for bad in ["www.badexample.com.", "example.org.", "com."] {
            assert_eq!(field_of(a(bad)), "name", "{bad:?}");
        }
    }

    #[test]
    fn underscore_labels_lead_srv_and_txt_names_only() {
        let srv = |name: &str| json!({"name": name, "type": "SRV", "content": "sip", "priority": 1, "weight": 2, "port": 5060});
        let stored = check(srv("_sip._tcp")).unwrap();
        assert_eq!(
            (stored.name.as_str(), stored.content.as_str()),
            ("_sip._tcp", "sip.example.com.")
        );
        for bad in ["sip", "_sip", "_sip._tcp._x", "_sip.tcp", "_-x._tcp"] {
            assert_eq!(field_of(srv(bad)), "name", "{bad:?}");
        }
        let txt = json!({"name": "_acme-challenge.www", "type": "TXT", "content": "token"});
        assert!(check(txt).is_ok());
        assert_eq!(field_of(a("_sip._tcp")), "name");
        assert_eq!(field_of(a("www._x")), "name");
    }

    #[test]
    fn addresses_are_dotted_ipv4_and_ipv6() {
        let aaaa = json!({"name": "@", "type": "AAAA", "content": "2001:DB8:0::1"});
        assert_eq!(check(aaaa).unwrap().content, "2001:db8::1");
        for bad in [
            "192.0.2",
            "192.0.2.256",
            "1.2.3.4.5",
            "0x1.2.3.4",
            "::1",
            "01.2.3.4",
            "",
        ] {
            let sent = json!({"name": "@", "type": "A", "content": bad});
            assert_eq!(field_of(sent), "content", "{bad:?}");
        }
        let v4_as_v6 = json!({"name": "@", "type": "AAAA", "content": "192.0.2.1"});
        assert_eq!(field_of(v4_as_v6), "content");
    }

    #[test]
    fn targets_are_host_names_never_addresses() {
        let mx = |content: &str, priority: i64| json!({"name": "@", "type": "MX", "content": content, "priority": priority});
        assert_eq!(check(mx("mail", 10)).unwrap().content, "mail.example.com.");
        assert_eq!(
            check(mx("MX.Other.NET.", 10)).unwrap().content,
            "mx.other.net."
        );
        assert_eq!(check(mx(".", 0)).unwrap().content, ".");
        for (bad, priority) in [
            ("1.2.3.4", 10),
            ("1.2.3.4.", 10),
            ("::1", 10),
            (".", 10),
            ("mail_x", 10),
            ("*.mail", 10),
            ("10.0.0.300.", 10),
        ] {
            assert_eq!(field_of(mx(bad, priority)), "content", "{bad:?}");
        }
        assert_eq!(field_of(mx("mail", 65_536)), "priority");
        assert_eq!(field_of(mx("mail", -1)), "priority");
        let ns = json!({"name": "@", "type": "NS", "content": "1.2.3.4"});
        assert_eq!(field_of(ns), "content");
        let cname = json!({"name": "@", "type": "CNAME", "content": "www"});
        assert_eq!(field_of(cname), "name");
    }

    /// A record already stored, untouched by the change.
    fn stored(data: &RecordData) -> Entry<'_> {
        Entry {
            data,
            changed: None,
        }
    }

    /// A record the change at index `i` brings.
    fn new(data: &RecordData, i: usize) -> Entry<'_> {
        Entry {
            data,
            changed: Some(i),
        }
    }

    #[test]
    fn an_srv_target_may_be_the_root_for_no_service_here() {
        let srv = json!({"name": "_submission._tcp", "type": "SRV", "content": ".", "priority": 0, "weight": 0, "port": 0});
        assert_eq!(check(srv).unwrap().content, ".");
        // Only SRV and MX take the root; a CNAME or NS does not.
        for kind in ["CNAME", "NS"] {
            let bad = json!({"name": "x", "type": kind, "content": "."});
            assert_eq!(field_of(bad), "content", "{kind}");
        }
    }

    /// Names are at most 255 bytes on the wire and labels 1 to 63 bytes:
    /// the parser refuses longer ones before the hub's own rules run.
    #[test]
    fn names_and_labels_are_refused_one_byte_past_their_wire_limits() {
        let l63 = "a".repeat(63);
        // 3 × 64 + 50 + "example" and "com" (8 + 4) + the root = 255.
        let longest = format!("{l63}.{l63}.{l63}.{}", "b".repeat(49));
        let over = format!("{longest}b");
        assert!(check(a(&longest)).is_ok());
        assert_eq!(field_of(a(&over)), "name");
        let target =
            |t: &str| json!({"name": "x", "type": "CNAME", "content": format!("{t}.example.com.")});
        assert!(check(target(&longest)).is_ok());
        assert_eq!(field_of(target(&over)), "content");
        assert!(check(a(&l63)).is_ok());
        assert_eq!(field_of(a(&format!("{l63}a"))), "name");
        assert!(Origin::parse("zone", &format!("{l63}a.com")).is_err());
    }

    #[test]
    fn an_underscore_alone_is_not_a_label() {
        for name in ["_", "_._tcp", "_dmarc._"] {
            let txt = json!({"name": name, "type": "TXT", "content": "v=DMARC1"});
            assert_eq!(field_of(txt), "name", "{name}");
        }
    }

    #[test]
    fn idn_labels_are_what_idna2008_allows() {
        for good in ["bücher", "xn--bcher-kva", "日本語", "xn--wgv71a119e"] {
            assert!(check(a(good)).is_ok(), "{good}");
        }
        // Not punycode, not letters or digits (emoji, symbols), or not the
        // form UTS 46 gives.
        for bad in ["xn--zz", "xn--", "💩", "xn--ls8h", "☃", "xn--n3h"] {
            assert_eq!(field_of(a(bad)), "name", "{bad}");
        }
        assert!(Origin::parse("zone", "xn--zz.test").is_err());
        // Punycode of a decomposed "café" (e and a combining accent):
        // letters and a mark, but UTS 46 composes it to another A-label.
        let decomposed = check(a("xn--cafe-yvc")).unwrap_err();
        assert!(
            decomposed
                .detail
                .ends_with("its standard form is 'xn--caf-dma'"),
            "{decomposed:?}"
        );
        // A zone stored before the rules is still read.
        assert_eq!(Origin::stored("xn--zz.test").as_str(), "xn--zz.test");
    }

    #[test]
    fn a_cname_target_is_never_a_cname_in_the_zone() {
        let origin = zone();
        let data = |sent: Value| record(&origin, &sent).unwrap();
        let c1 = data(json!({"name": "c1", "type": "CNAME", "content": "elsewhere.example.net."}));
        let chain = data(json!({"name": "c2", "type": "CNAME", "content": "c1"}));
        let selfish = data(json!({"name": "loop", "type": "CNAME", "content": "loop"}));
        let p = data(json!({"name": "p", "type": "CNAME", "content": "q"}));
        let q = data(json!({"name": "q", "type": "CNAME", "content": "p"}));
        let blamed = |entries: &[Entry<'_>]| -> Vec<usize> {
            check_set(&origin, entries)
                .iter()
                .map(|(i, _)| *i)
                .collect()
        };
        assert_eq!(blamed(&[stored(&c1), new(&chain, 0)]), [0]);
        assert_eq!(blamed(&[new(&selfish, 0)]), [0]);
        assert_eq!(blamed(&[new(&p, 0), new(&q, 1)]), [0, 1]);
        // A stored CNAME pointing at a name that becomes a CNAME: the new one.
        assert_eq!(blamed(&[stored(&chain), new(&c1, 4)]), [4]);
        assert!(blamed(&[stored(&c1)]).is_empty());
    }

    #[test]
    fn failures_list_the_first_hundred_and_count_them_all() {
        let failures: Failures = (0..1000)
            .map(|i| (i, Invalid::new("text", "bad")))
            .collect();
        assert_eq!(failures.listed.len(), Failures::LISTED);
        assert_eq!(failures.listed[99].0, 99);
        assert_eq!(failures.total, 1000);
    }

    #[test]
    fn srv_numbers_are_16_bit_and_only_where_the_type_has_them() {
        let srv = |p: i64, w: i64, port: i64| json!({"name": "_x._tcp", "type": "SRV", "content": "h", "priority": p, "weight": w, "port": port});
        assert!(check(srv(0, 0, 65_535)).is_ok());
        assert_eq!(field_of(srv(65_536, 0, 1)), "priority");
        assert_eq!(field_of(srv(0, 65_536, 1)), "weight");
        assert_eq!(field_of(srv(0, 0, 65_536)), "port");
        let a_with_port = json!({"name": "@", "type": "A", "content": "192.0.2.1", "port": 80});
        assert_eq!(field_of(a_with_port), "port");
        let mx_with_weight =
            json!({"name": "@", "type": "MX", "content": "m", "priority": 1, "weight": 1});
        assert_eq!(field_of(mx_with_weight), "weight");
    }

    #[test]
    fn caa_takes_flags_0_or_128_and_the_three_tags() {
        let caa = |content: &str| json!({"name": "@", "type": "CAA", "content": content});
        assert_eq!(
            check(caa("0 ISSUE \"ca.example\"")).unwrap().content,
            "0 issue \"ca.example\""
        );
        assert!(check(caa("128 issuewild \";\"")).is_ok());
        assert!(check(caa("0 iodef \"mailto:security@example.com\"")).is_ok());
        for bad in [
            "1 issue \"ca.example\"",
            "0 tbs \"x\"",
            "0 issue",
            "0 issue \"a\"b\"",
            "0 iodef \"not a url\"",
            "0 iodef \"ftp://x\"",
            "0 issue \"not a host!\"",
            "256 issue \"ca.example\"",
        ] {
            assert_eq!(field_of(caa(bad)), "content", "{bad:?}");
        }
    }

    /// What the iodef URL check alone would let through: a quote, a
    /// backslash or a control character inside an otherwise good URL, a
    /// scheme with nothing after it, another scheme, a value past 255 bytes.
    #[test]
    fn a_caa_value_is_refused_for_each_rule_on_its_own() {
        let iodef = |value: &str| json!({"name": "@", "type": "CAA", "content": format!("0 iodef \"{value}\"")});
        for bad in [
            "mailto:a\"b@example.com",
            "mailto:a\\b@example.com",
            "mailto:a\u{7}b@example.com",
            "mailto:",
            "https://",
            "ftp://example.com/report",
        ] {
            assert_eq!(field_of(iodef(bad)), "content", "{bad:?}");
        }
        let url = |len: usize| {
            let head = "https://example.com/";
            format!("{head}{}", "r".repeat(len - head.len()))
        };
        assert!(check(iodef(&url(255))).is_ok());
        for len in [256, 300] {
            let err = check(iodef(&url(len))).unwrap_err();
            assert_eq!(err.detail, "the CAA value is at most 255 bytes", "{len}");
        }
    }

    /// A wildcard's labels after the star are checked like any other.
    #[test]
    fn a_wildcard_s_own_labels_follow_the_label_rules() {
        for bad in ["*.bad-", "*.a.-b"] {
            assert_eq!(field_of(a(bad)), "name", "{bad}");
        }
        assert!(check(a("*.dev")).is_ok());
    }

    #[test]
    fn txt_is_any_text_up_to_the_bound_and_is_split_into_255_byte_strings() {
        let txt = |content: &str| json!({"name": "@", "type": "TXT", "content": content});
        assert!(check(txt(&"x".repeat(300))).is_ok());
        assert!(check(txt(&"x".repeat(MAX_TXT_BYTES))).is_ok());
        assert_eq!(field_of(txt(&"x".repeat(MAX_TXT_BYTES + 1))), "content");
        assert_eq!(field_of(txt("a\nb")), "content");
        let quoted = quoted_txt(&format!("{}\"\\", "x".repeat(254)));
        assert_eq!(quoted, format!("\"{}\\\"\" \"\\\\\"", "x".repeat(254)));
        // Multi-byte characters are never cut in half.
        let parts = quoted_txt(&"é".repeat(200));
        assert_eq!(
            parts,
            format!("\"{}\" \"{}\"", "é".repeat(127), "é".repeat(73))
        );
    }

    #[test]
    fn ttl_comment_and_type_are_bounded() {
        let with = |key: &str, value: Value| {
            let mut sent = a("www");
            sent[key] = value;
            sent
        };
        assert_eq!(check(a("www")).unwrap().ttl, DEFAULT_TTL);
        assert!(check(with("ttl", json!(60))).is_ok());
        assert!(check(with("ttl", json!(86_400))).is_ok());
        assert_eq!(field_of(with("ttl", json!(59))), "ttl");
        assert_eq!(field_of(with("ttl", json!(86_401))), "ttl");
        assert_eq!(field_of(with("ttl", json!("300"))), "ttl");
        assert_eq!(field_of(with("comment", json!("a\u{0}b"))), "comment");
        assert_eq!(field_of(with("comment", json!("two\nlines"))), "comment");
        assert_eq!(field_of(with("comment", json!("x".repeat(256)))), "comment");
        // Counted in characters: 255 of two bytes each are within it.
        let longest = "é".repeat(MAX_COMMENT_CHARS);
        assert_eq!(
            check(with("comment", json!(longest))).unwrap().comment,
            Some(longest)
        );
        assert_eq!(check(with("comment", json!(""))).unwrap().comment, None);
        assert_eq!(check(with("comment", json!("  "))).unwrap().comment, None);
        assert_eq!(
            check(with("comment", json!(" web; front ")))
                .unwrap()
                .comment,
            Some("web; front".into())
        );
        assert_eq!(field_of(with("type", json!("SOA"))), "type");
        assert_eq!(check(with("type", json!("a"))).unwrap().kind, "A");
    }

    #[test]
    fn the_set_keeps_cnames_alone_targets_unaliased_and_records_unique() {
        let origin = zone();
        let data = |sent: Value| record(&origin, &sent).unwrap();
        let www_a = data(a("www"));
        let www_cname = data(json!({"name": "www", "type": "CNAME", "content": "web"}));
        let mx = data(json!({"name": "@", "type": "MX", "content": "www", "priority": 1}));
        assert!(check_set(&origin, &[stored(&www_a), new(&mx, 0)]).is_empty());
        let blamed = check_set(&origin, &[stored(&www_a), new(&www_cname, 0)]);
        assert_eq!(
            blamed
                .iter()
                .map(|(i, e)| (*i, e.field))
                .collect::<Vec<_>>(),
            [(0, "name")]
        );
        // A stored MX pointing at www: the new CNAME is blamed.
        let blamed = check_set(&origin, &[stored(&mx), new(&www_cname, 3)]);
        assert_eq!(
            blamed
                .iter()
                .map(|(i, e)| (*i, e.field))
                .collect::<Vec<_>>(),
            [(3, "name")]
        );
        // A new MX pointing at a stored CNAME: the MX is blamed.
        let blamed = check_set(&origin, &[stored(&www_cname), new(&mx, 1)]);
        assert_eq!(
            blamed
                .iter()
                .map(|(i, e)| (*i, e.field))
                .collect::<Vec<_>>(),
            [(1, "content")]
        );
        let blamed = check_set(&origin, &[stored(&www_a), new(&www_a, 0), new(&www_a, 1)]);
        assert_eq!(blamed.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1]);
        // What was stored before is not blamed on a change elsewhere.
        assert!(check_set(&origin, &[stored(&www_a), stored(&www_a), new(&mx, 0)]).is_empty());
    }

    proptest::proptest! {
        // Modest, so a debug build runs it in a moment; every run draws anew.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn no_record_a_client_sends_makes_validation_panic(sent in arbitrary::record()) {
            if let Ok(data) = check(sent) {
                // What is accepted fits the columns and the bounds.
                proptest::prop_assert!((MIN_TTL..=MAX_TTL).contains(&i64::from(data.ttl)));
                proptest::prop_assert!(TYPES.contains(&data.kind.as_str()));
            }
        }

        #[test]
        fn no_zone_name_makes_validation_panic(raw in arbitrary::name()) {
            if let Ok(origin) = Origin::parse("zone", &raw) {
                proptest::prop_assert!(!origin.as_str().ends_with('.'));
            }
        }
    }
}
