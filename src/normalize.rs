//! Normalizing: one API `InstanceModel` record (as its raw JSON object) becomes the
//! typed row, disks and tags the store writes. Pure: no I/O, no clock.
//!
//! The API is loose about types (`Cpu` is a string, numbers sometimes arrive as
//! strings, an empty string means "no value", and so does the text "null" where
//! a number, a switch, a time or an IP address belongs), and a sync must
//! never abort because one field of one record is odd. So a value that cannot be
//! parsed becomes NULL and is reported in [`Normalized::problems`]; the record
//! itself is kept whole, as the text the API sent, in [`Normalized::raw`]. Only a
//! record without a usable `AndroidInstanceId` is refused, because nothing can be
//! keyed on it.

use std::fmt::Display;
use std::net::IpAddr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::api::model::{holds_char, mend_escapes, Mended, RawInstance};

/// How to read values whose meaning depends on the account.
#[derive(Clone, Debug, Default)]
pub struct NormalizeOptions {
    /// The zone of `GmtCreate`/`GmtModified`, which carry none. `None` reads them as
    /// UTC, as the API's "Gmt" names promise; set an offset for an account whose
    /// service reports local time.
    pub naive_time_zone: Option<FixedOffset>,
}

/// The record cannot be stored at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("record cannot be read: {0}")]
    Unreadable(String),
    #[error("record has no usable AndroidInstanceId (found {found})")]
    MissingInstanceId { found: String },
    #[error(
        "record's AndroidInstanceId is {bytes} bytes long, more than the {MAX_INSTANCE_ID_BYTES} \
         stored (it starts {start:?})"
    )]
    InstanceIdTooLong { bytes: usize, start: String },
}

/// One field value that is not stored as sent: most often one that could not
/// be parsed, whose column is stored as NULL. The record's text keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldProblem {
    /// The API field path, e.g. `Cpu` or `DisplayConfig.Dpi`.
    pub field: String,
    pub value: Value,
    pub reason: String,
    /// What was stored instead.
    pub stored: &'static str,
}

/// What a field that could not be parsed becomes.
const STORED_AS_NULL: &str = "NULL in its column; the value is kept in raw";

/// What a leap second becomes.
const STORED_AS_NEXT_SECOND: &str =
    "the first second of the next minute, as PostgreSQL reads :60; the value is kept in raw";

/// The most bytes a tag's key and value may have together to get a row in
/// `ecp.instance_tags`, whose B-tree indexes (the primary key, and the one on
/// key and value) cannot hold an entry of more than 2,704 bytes: one longer tag
/// would fail its scope's apply on every run. Tag keys and values are far
/// shorter on the API (128 and 256 characters at most); a longer one is kept in
/// the instance's `tags` or `biz_tags` and in raw, and reported. The apply's
/// `refill_disks_tags.sql` filters with the same number.
pub const MAX_TAG_ROW_BYTES: usize = 2000;

/// The longest `AndroidInstanceId` stored (ids are about 20 characters): the
/// id is in the key of every table, and a key past the B-tree's limit would fail
/// the whole scope. With [`MAX_TAG_ROW_BYTES`], the tags' primary key stays
/// within that limit.
pub const MAX_INSTANCE_ID_BYTES: usize = 500;

/// The typed state of one instance. Field names are the column names of
/// `ecp.instances`; [`InstanceRow::columns`] lists them in table order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceRow {
    pub instance_id: String,
    pub instance_name: Option<String>,
    pub status: Option<String>,
    pub instance_group_id: Option<String>,
    pub instance_group_name: Option<String>,
    pub app_instance_group_id: Option<String>,
    pub app_instance_id: Option<String>,
    pub app_manage_policy_id: Option<String>,
    pub app_manage_policy_name: Option<String>,
    pub authorized_user_id: Option<String>,
    pub bandwidth_package_id: Option<String>,
    pub bandwidth_package_type: Option<String>,
    pub bind_user_id: Option<String>,
    pub biz_image_type: Option<String>,
    pub channel: Option<String>,
    pub charge_type: Option<String>,
    pub cpu_cores: Option<i32>,
    pub memory_mib: Option<i32>,
    pub display_dpi: Option<i32>,
    pub display_fps: Option<i32>,
    pub display_resolution_width: Option<i32>,
    pub display_resolution_height: Option<i32>,
    pub display_lock_resolution: Option<bool>,
    pub down_bandwidth_limit_mbps: Option<i32>,
    pub up_bandwidth_limit_mbps: Option<i32>,
    pub error_code: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub modified_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub image_id: Option<String>,
    pub image_version: Option<String>,
    pub instance_type: Option<String>,
    pub internet_status: Option<String>,
    pub key_pair_id: Option<String>,
    pub network_interface_ip: Option<IpAddr>,
    pub network_interface_ipv6_address: Option<IpAddr>,
    pub network_type: Option<String>,
    pub office_site_id: Option<String>,
    pub package_id: Option<String>,
    pub persistent_app_instance_id: Option<String>,
    pub phone_data_id: Option<String>,
    pub phone_data_volume_gib: Option<i32>,
    pub policy_group_id: Option<String>,
    pub public_ip_address: Option<IpAddr>,
    pub public_ipv6_address: Option<IpAddr>,
    pub qos_rule_id: Option<String>,
    pub rate: Option<i32>,
    pub region_id: Option<String>,
    pub rendering_type: Option<String>,
    pub server_status: Option<String>,
    pub server_type: Option<String>,
    pub session_status: Option<String>,
    pub stream_mode: Option<i32>,
    pub system_version: Option<String>,
    pub vswitch_id: Option<String>,
    pub zone_id: Option<String>,
}

/// A typed column value, borrowed from an [`InstanceRow`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColumnValue<'a> {
    Text(Option<&'a str>),
    Int(Option<i32>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
    Inet(Option<IpAddr>),
}

fn t(v: &Option<String>) -> ColumnValue<'_> {
    ColumnValue::Text(v.as_deref())
}

impl ColumnValue<'_> {
    /// The Postgres type of the column.
    pub fn sql_type(&self) -> &'static str {
        match self {
            ColumnValue::Text(_) => "text",
            ColumnValue::Int(_) => "integer",
            ColumnValue::Bool(_) => "boolean",
            ColumnValue::Time(_) => "timestamptz",
            ColumnValue::Inet(_) => "inet",
        }
    }
}

impl InstanceRow {
    /// Every typed column with its value, in the column order of `ecp.instances`.
    /// The store builds its staging table and SQL from this one list, so a column
    /// added here and in a migration needs no other change.
    pub fn columns(&self) -> [(&'static str, ColumnValue<'_>); 56] {
        use ColumnValue::{Bool, Inet, Int, Text, Time};
        [
            ("instance_id", Text(Some(&self.instance_id))),
            ("instance_name", t(&self.instance_name)),
            ("status", t(&self.status)),
            ("instance_group_id", t(&self.instance_group_id)),
            ("instance_group_name", t(&self.instance_group_name)),
            ("app_instance_group_id", t(&self.app_instance_group_id)),
            ("app_instance_id", t(&self.app_instance_id)),
            ("app_manage_policy_id", t(&self.app_manage_policy_id)),
            ("app_manage_policy_name", t(&self.app_manage_policy_name)),
            ("authorized_user_id", t(&self.authorized_user_id)),
            ("bandwidth_package_id", t(&self.bandwidth_package_id)),
            ("bandwidth_package_type", t(&self.bandwidth_package_type)),
            ("bind_user_id", t(&self.bind_user_id)),
            ("biz_image_type", t(&self.biz_image_type)),
            ("channel", t(&self.channel)),
            ("charge_type", t(&self.charge_type)),
            ("cpu_cores", Int(self.cpu_cores)),
            ("memory_mib", Int(self.memory_mib)),
            ("display_dpi", Int(self.display_dpi)),
            ("display_fps", Int(self.display_fps)),
            (
                "display_resolution_width",
                Int(self.display_resolution_width),
            ),
            (
                "display_resolution_height",
                Int(self.display_resolution_height),
            ),
            (
                "display_lock_resolution",
                Bool(self.display_lock_resolution),
            ),
            (
                "down_bandwidth_limit_mbps",
                Int(self.down_bandwidth_limit_mbps),
            ),
            ("up_bandwidth_limit_mbps", Int(self.up_bandwidth_limit_mbps)),
            ("error_code", t(&self.error_code)),
            ("created_at", Time(self.created_at)),
            ("modified_at", Time(self.modified_at)),
            ("expires_at", Time(self.expires_at)),
            ("image_id", t(&self.image_id)),
            ("image_version", t(&self.image_version)),
            ("instance_type", t(&self.instance_type)),
            ("internet_status", t(&self.internet_status)),
            ("key_pair_id", t(&self.key_pair_id)),
            ("network_interface_ip", Inet(self.network_interface_ip)),
            (
                "network_interface_ipv6_address",
                Inet(self.network_interface_ipv6_address),
            ),
            ("network_type", t(&self.network_type)),
            ("office_site_id", t(&self.office_site_id)),
            ("package_id", t(&self.package_id)),
            (
                "persistent_app_instance_id",
                t(&self.persistent_app_instance_id),
            ),
            ("phone_data_id", t(&self.phone_data_id)),
            ("phone_data_volume_gib", Int(self.phone_data_volume_gib)),
            ("policy_group_id", t(&self.policy_group_id)),
            ("public_ip_address", Inet(self.public_ip_address)),
            ("public_ipv6_address", Inet(self.public_ipv6_address)),
            ("qos_rule_id", t(&self.qos_rule_id)),
            ("rate", Int(self.rate)),
            ("region_id", t(&self.region_id)),
            ("rendering_type", t(&self.rendering_type)),
            ("server_status", t(&self.server_status)),
            ("server_type", t(&self.server_type)),
            ("session_status", t(&self.session_status)),
            ("stream_mode", Int(self.stream_mode)),
            ("system_version", t(&self.system_version)),
            ("vswitch_id", t(&self.vswitch_id)),
            ("zone_id", t(&self.zone_id)),
        ]
    }
}

/// One entry of the API's `Disks` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRow {
    /// 0-based position in the API's array.
    pub disk_index: i32,
    pub disk_type: Option<String>,
    pub disk_size_gb: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// The API's `Tags`.
    User,
    /// The API's `BizTags`.
    Biz,
}

impl TagKind {
    /// The value of `ecp.instance_tags.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            TagKind::User => "user",
            TagKind::Biz => "biz",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub kind: TagKind,
    pub key: String,
    pub value: Option<String>,
}

/// Everything the store writes for one record.
#[derive(Debug, Clone)]
pub struct Normalized {
    pub row: InstanceRow,
    /// The record exactly as the API sent it (`ecp.instances.raw`).
    pub raw: Box<RawValue>,
    /// A digest of what `raw` says, not of how it is written (see
    /// [`raw_digest`]): the store's test of an unchanged record.
    pub raw_digest: [u8; 32],
    pub disks: Vec<DiskRow>,
    /// One per (kind, key); a key repeated by the API keeps its last value.
    pub tags: Vec<TagRow>,
    pub problems: Vec<FieldProblem>,
}

/// Turns one API record into rows. Fails only when the record could not be read
/// at all, or its `AndroidInstanceId` is missing, empty or not a string; every other oddity
/// is a [`FieldProblem`].
pub fn normalize(
    record: RawInstance,
    opts: &NormalizeOptions,
) -> Result<Normalized, NormalizeError> {
    if let Some(reason) = record.unreadable {
        return Err(NormalizeError::Unreadable(reason));
    }
    let raw = &record.fields;
    let instance_id = match raw.get("AndroidInstanceId") {
        // Without its NULs, as every other value is stored (the warning below
        // names it): the id is bound as a query parameter too, where a NUL
        // fails the whole region, and on every run. Measured as stored.
        Some(Value::String(s)) if !is_blank(&without_nul(s)) => {
            let id = without_nul(s);
            if id.len() > MAX_INSTANCE_ID_BYTES {
                return Err(NormalizeError::InstanceIdTooLong {
                    bytes: id.len(),
                    start: id.chars().take(40).collect(),
                });
            }
            id.into_owned()
        }
        other => {
            return Err(NormalizeError::MissingInstanceId {
                found: other.map_or_else(|| "nothing".to_string(), Value::to_string),
            })
        }
    };
    let mut p = Parser {
        problems: Vec::new(),
        naive_zone: opts
            .naive_time_zone
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset")),
    };
    let display = p.object(raw, "DisplayConfig");
    let policy = p.object(raw, "AppManagePolicy");
    let phone_data = p.object(raw, "PhoneDataInfo");

    let row = InstanceRow {
        instance_id,
        instance_name: p.text(raw, "AndroidInstanceName"),
        status: p.text(raw, "AndroidInstanceStatus"),
        instance_group_id: p.text(raw, "AndroidInstanceGroupId"),
        instance_group_name: p.text(raw, "AndroidInstanceGroupName"),
        app_instance_group_id: p.text(raw, "AppInstanceGroupId"),
        app_instance_id: p.text(raw, "AppInstanceId"),
        app_manage_policy_id: p.nested_text(policy, "AppManagePolicy", "AppManagePolicyId"),
        app_manage_policy_name: p.nested_text(policy, "AppManagePolicy", "AppManagePolicyName"),
        authorized_user_id: p.text(raw, "AuthorizedUserId"),
        bandwidth_package_id: p.text(raw, "BandwidthPackageId"),
        bandwidth_package_type: p.text(raw, "BandwidthPackageType"),
        bind_user_id: p.text(raw, "BindUserId"),
        biz_image_type: p.text(raw, "BizImageType"),
        channel: p.text(raw, "Channel"),
        charge_type: p.text(raw, "ChargeType"),
        cpu_cores: p.int(raw, "Cpu"),
        memory_mib: p.int(raw, "Memory"),
        display_dpi: p.nested_int(display, "DisplayConfig", "Dpi"),
        display_fps: p.nested_int(display, "DisplayConfig", "Fps"),
        display_resolution_width: p.nested_int(display, "DisplayConfig", "ResolutionWidth"),
        display_resolution_height: p.nested_int(display, "DisplayConfig", "ResolutionHeight"),
        display_lock_resolution: display
            .and_then(|d| p.on_off(d.get("LockResolution"), "DisplayConfig.LockResolution")),
        down_bandwidth_limit_mbps: p.int(raw, "DownBandwidthLimit"),
        up_bandwidth_limit_mbps: p.int(raw, "UpBandwidthLimit"),
        error_code: p.text(raw, "ErrorCode"),
        created_at: p.naive_time(raw, "GmtCreate"),
        modified_at: p.naive_time(raw, "GmtModified"),
        expires_at: p.iso_time(raw, "GmtExpired"),
        image_id: p.text(raw, "ImageId"),
        image_version: p.text(raw, "ImageVersion"),
        instance_type: p.text(raw, "InstanceType"),
        internet_status: p.text(raw, "InternetStatus"),
        key_pair_id: p.text(raw, "KeyPairId"),
        network_interface_ip: p.ip(raw, "NetworkInterfaceIp"),
        network_interface_ipv6_address: p.ip(raw, "NetworkInterfaceIpv6Address"),
        network_type: p.text(raw, "NetworkType"),
        office_site_id: p.text(raw, "OfficeSiteId"),
        package_id: p.text(raw, "PackageId"),
        persistent_app_instance_id: p.text(raw, "PersistentAppInstanceId"),
        phone_data_id: p.nested_text(phone_data, "PhoneDataInfo", "PhoneDataId"),
        phone_data_volume_gib: p.nested_int(phone_data, "PhoneDataInfo", "PhoneDataVolume"),
        policy_group_id: p.text(raw, "PolicyGroupId"),
        public_ip_address: p.ip(raw, "PublicIpAddress"),
        public_ipv6_address: p.ip(raw, "PublicIpv6Address"),
        qos_rule_id: p.text(raw, "QosRuleId"),
        rate: p.int(raw, "Rate"),
        region_id: p.text(raw, "RegionId"),
        rendering_type: p.text(raw, "RenderingType"),
        server_status: p.text(raw, "ServerStatus"),
        server_type: p.text(raw, "ServerType"),
        session_status: p.text(raw, "SessionStatus"),
        stream_mode: p.int(raw, "StreamMode"),
        system_version: p.text(raw, "SystemVersion"),
        vswitch_id: p.text(raw, "VSwitchId"),
        zone_id: p.text(raw, "ZoneId"),
    };
    let disks = p.disks(raw);
    let mut tags = p.tags(raw, "Tags", TagKind::User);
    tags.extend(p.tags(raw, "BizTags", TagKind::Biz));
    for (field, mended) in &record.mended {
        // A field whose column could not take the mended value is reported
        // already, once is enough.
        let reported = p.problems.iter().any(|q| {
            q.field == *field
                || q.field
                    .strip_prefix(field.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        });
        if reported {
            continue;
        }
        let value = raw.get(field).unwrap_or(&Value::Null);
        match mended {
            Mended::HalfSurrogate => p.stored_otherwise(
                field,
                value,
                "held half of a UTF-16 surrogate pair (a character cut in two), which \
                 PostgreSQL cannot hold",
                "with U+FFFD in its place, in its column and in raw",
            ),
            Mended::HugeNumber => p.stored_otherwise(
                field,
                value,
                "held a number past a 64-bit float's range",
                "as the text of its digits where it is read; raw keeps the number",
            ),
            Mended::NotUtf8 => p.stored_otherwise(
                field,
                value,
                "held bytes that are not UTF-8, which PostgreSQL cannot hold",
                "with U+FFFD in their place, in its column and in raw",
            ),
        }
    }
    // A NUL can only come as the escape `\u0000`.
    let escapes_nul = record.text.get().contains("\\u0000");
    // A number read as its text would digest as that text: the record's own
    // text tells the two apart.
    let text_only = escapes_nul || record.mended.iter().any(|(_, m)| *m == Mended::HugeNumber);
    let raw_digest = raw_digest(raw, record.text.get(), text_only);
    let raw = if escapes_nul {
        for (key, value) in raw {
            if key.contains('\0') || holds_char(value, '\0') {
                p.stored_otherwise(
                    key,
                    value,
                    "holds a NUL character, which PostgreSQL's text and jsonb cannot hold",
                    "without its NUL characters, in its column and in raw",
                );
            }
        }
        without_nul_escapes(record.text)
    } else {
        record.text
    };
    Ok(Normalized {
        row,
        raw,
        raw_digest,
        disks,
        tags,
        problems: p.problems,
    })
}

/// A digest of the record's content, the same however it is written: keys in
/// any order, any spacing, the same characters escaped or not. jsonb keeps none
/// of those either, so a record that only comes back written differently (a
/// service that reorders its keys) is unchanged, and its row is not rewritten.
/// Where the parsed record may say less than the stored one, the digest is of
/// the text itself, so that no change of a value can go unseen: a number the
/// parse may have rounded (a fraction, an exponent, past 64 bits) or read as
/// its text (past a float's range), or an escaped NUL (dropped from what is
/// stored, where keys that differ by one alone become one key). The API's own
/// fields have none of these.
fn raw_digest(fields: &Map<String, Value>, text: &str, text_only: bool) -> [u8; 32] {
    let mut content = Vec::with_capacity(text.len() + 512);
    content.push(b'c');
    if !text_only && feed_map(&mut content, fields).is_some() {
        return Sha256::digest(&content).into();
    }
    let mut digest = Sha256::new();
    digest.update(b"x");
    digest.update(text.as_bytes());
    digest.finalize().into()
}

/// Each value tagged with its kind, strings and containers with their length,
/// so that no two contents feed the same bytes. `None` for a number the parse
/// may have rounded.
fn feed(out: &mut Vec<u8>, value: &Value) -> Option<()> {
    match value {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            } else {
                out.push(b'u');
                out.extend_from_slice(&n.as_u64()?.to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(b's');
            feed_str(out, s);
        }
        Value::Array(items) => {
            out.push(b'a');
            feed_len(out, items.len());
            for item in items {
                feed(out, item)?;
            }
        }
        Value::Object(map) => {
            out.push(b'o');
            feed_map(out, map)?;
        }
    }
    Some(())
}

fn feed_map(out: &mut Vec<u8>, map: &Map<String, Value>) -> Option<()> {
    feed_len(out, map.len());
    // Sorted here, whichever map serde_json was built with.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable();
    for key in keys {
        feed_str(out, key);
        feed(out, &map[key])?;
    }
    Some(())
}

fn feed_str(out: &mut Vec<u8>, s: &str) {
    feed_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn feed_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

/// The record's text, without the NUL characters it escapes (`\u0000`), which
/// jsonb refuses, as the text columns drop them too; everything else byte for
/// byte. (A backslash before `u0000` may be an escaped backslash instead, which
/// stays.)
fn without_nul_escapes(text: Box<RawValue>) -> Box<RawValue> {
    match mend_escapes(text.get()) {
        // Dropping an escape from inside a string leaves the JSON valid.
        Some(mended) => RawValue::from_string(mended).unwrap_or(text),
        None => text,
    }
}

/// The instant to the microsecond, rounded as PostgreSQL rounds the fraction
/// of a time it reads (`rint` of the fraction, as a double, times a million),
/// or `None` past what chrono holds.
fn to_micros_as_postgres(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let nanos = t.nanosecond();
    let micros = (f64::from(nanos) / 1e9 * 1e6).round_ties_even() as u32;
    let whole = t.with_nanosecond(0)?;
    whole.checked_add_signed(TimeDelta::microseconds(i64::from(micros)))
}

/// The text without its NUL characters, copied only when it has one.
fn without_nul(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "").into()
    } else {
        s.into()
    }
}

/// "" and the text "null" are how the API says "no value" where a value of
/// another type (number, switch, time, IP address, the id) belongs.
fn is_blank(s: &str) -> bool {
    let s = s.trim();
    s.is_empty() || s.eq_ignore_ascii_case("null")
}

struct Parser {
    problems: Vec<FieldProblem>,
    naive_zone: FixedOffset,
}

impl Parser {
    /// A value that could not be parsed: its column is NULL.
    fn problem(&mut self, field: impl Display, value: &Value, reason: impl Into<String>) {
        self.stored_otherwise(field, value, reason, STORED_AS_NULL);
    }

    fn stored_otherwise(
        &mut self,
        field: impl Display,
        value: &Value,
        reason: impl Into<String>,
        stored: &'static str,
    ) {
        self.problems.push(FieldProblem {
            field: field.to_string(),
            value: value.clone(),
            reason: reason.into(),
            stored,
        });
    }

    /// A nested object such as `DisplayConfig`; absent or null is "no values".
    fn object<'a>(
        &mut self,
        raw: &'a Map<String, Value>,
        key: &str,
    ) -> Option<&'a Map<String, Value>> {
        match raw.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.problem(key, other, "expected an object");
                None
            }
        }
    }

    fn text(&mut self, raw: &Map<String, Value>, key: &str) -> Option<String> {
        self.text_value(raw.get(key), key)
    }

    fn nested_text(
        &mut self,
        obj: Option<&Map<String, Value>>,
        parent: &str,
        key: &str,
    ) -> Option<String> {
        let v = obj?.get(key);
        self.text_value(v, format_args!("{parent}.{key}"))
    }

    fn text_value(&mut self, v: Option<&Value>, field: impl Display) -> Option<String> {
        match v? {
            Value::Null => None,
            // Only "" means no value for text: a name or tag value may really be
            // "null" or blanks, and is kept as sent.
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            // A scalar of another JSON type still reads as text.
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.problem(field, other, "expected a string");
                None
            }
        }
    }

    fn int(&mut self, raw: &Map<String, Value>, key: &str) -> Option<i32> {
        self.int_value(raw.get(key), key)
    }

    fn nested_int(
        &mut self,
        obj: Option<&Map<String, Value>>,
        parent: &str,
        key: &str,
    ) -> Option<i32> {
        let v = obj?.get(key);
        self.int_value(v, format_args!("{parent}.{key}"))
    }

    /// Integers arrive as JSON numbers or, like `Cpu`, as strings of digits.
    fn int_value(&mut self, v: Option<&Value>, field: impl Display) -> Option<i32> {
        let v = v?;
        let parsed = match v {
            Value::Null => return None,
            Value::String(s) if is_blank(s) => return None,
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .ok()
                .or_else(|| whole(s.trim().parse().ok()?)),
            Value::Number(n) => n.as_i64().or_else(|| whole(n.as_f64()?)),
            _ => None,
        };
        match parsed.map(i32::try_from) {
            Some(Ok(i)) => Some(i),
            Some(Err(_)) => {
                self.problem(field, v, "integer out of range");
                None
            }
            None => {
                self.problem(field, v, "not an integer");
                None
            }
        }
    }

    fn on_off(&mut self, v: Option<&Value>, field: impl Display) -> Option<bool> {
        let v = v?;
        match v {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            Value::String(s) if is_blank(s) => None,
            Value::String(s) if s.trim().eq_ignore_ascii_case("on") => Some(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("off") => Some(false),
            other => {
                self.problem(field, other, "expected \"on\" or \"off\"");
                None
            }
        }
    }

    fn ip(&mut self, raw: &Map<String, Value>, key: &str) -> Option<IpAddr> {
        let v = raw.get(key)?;
        match v {
            Value::Null => None,
            Value::String(s) if is_blank(s) => None,
            Value::String(s) => match s.trim().parse() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    self.problem(key, v, "not an IP address");
                    None
                }
            },
            other => {
                self.problem(key, other, "expected an IP address string");
                None
            }
        }
    }

    fn time_string<'a>(&mut self, raw: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
        match raw.get(key)? {
            Value::Null => None,
            Value::String(s) if is_blank(s) => None,
            Value::String(s) => Some(s.trim()),
            other => {
                self.problem(key, other, "expected a time string");
                None
            }
        }
    }

    /// `YYYY-MM-DD HH:MM:SS` without zone, read in the configured zone. A value
    /// that does carry a zone (ISO 8601) is taken at its word.
    fn naive_time(&mut self, raw: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
        let s = self.time_string(raw, key)?;
        let parsed = parse_naive(s)
            .and_then(|n| self.naive_zone.from_local_datetime(&n).single())
            .or_else(|| parse_zoned(s));
        self.storable_time(key, &raw[key], parsed, "expected YYYY-MM-DD HH:MM:SS")
    }

    /// ISO 8601 with zone, e.g. `2024-07-15T02:03:33Z`; a zoneless value is UTC.
    fn iso_time(&mut self, raw: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
        let s = self.time_string(raw, key)?;
        let parsed = parse_zoned(s).or_else(|| parse_naive(s).map(|n| n.and_utc().fixed_offset()));
        self.storable_time(key, &raw[key], parsed, "expected an ISO 8601 time")
    }

    /// The instant, if it parsed and PostgreSQL can hold it as chrono writes it:
    /// years 1 to 9999 in UTC. chrono goes further (year 0, `+10000-01-01`), and
    /// one such value in the COPY text would fail the scope's whole crawl.
    fn storable_time(
        &mut self,
        key: &str,
        value: &Value,
        parsed: Option<DateTime<FixedOffset>>,
        expected: &str,
    ) -> Option<DateTime<Utc>> {
        let Some(t) = parsed.map(|t| t.with_timezone(&Utc)) else {
            self.problem(key, value, expected);
            return None;
        };
        // A leap second (`23:59:60.5`; chrono holds it as :59 with a second's
        // worth of nanoseconds more) is refused by PostgreSQL with a fraction,
        // and taken as the next minute's first second without one: one such
        // record failed its scope's whole COPY. It becomes that next second,
        // fraction included, either way. Then microseconds, rounded here as
        // PostgreSQL rounds them, so that the check below sees the instant
        // stored: `9999-12-31T23:59:59.9999995Z` is in the year 10000 once
        // rounded, which PostgreSQL takes and clients cannot read. (Checked
        // arithmetic: chrono reads years up to 262143, where adding panics.)
        let leap = t.nanosecond().checked_sub(1_000_000_000);
        let stored = match leap {
            Some(ns) => t
                .with_nanosecond(ns)
                .and_then(|t| t.checked_add_signed(TimeDelta::seconds(1))),
            None => Some(t),
        }
        .and_then(to_micros_as_postgres)
        .filter(|t| (1..=9999).contains(&t.year()));
        let Some(t) = stored else {
            self.problem(key, value, "outside the years 1 to 9999 (UTC)");
            return None;
        };
        if leap.is_some() {
            self.stored_otherwise(key, value, "a leap second (:60)", STORED_AS_NEXT_SECOND);
        }
        Some(t)
    }

    fn disks(&mut self, raw: &Map<String, Value>) -> Vec<DiskRow> {
        let items = match raw.get("Disks") {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.problem("Disks", other, "expected an array");
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            // An entry that is no disk object still holds its place: disk_index
            // is the position in the API's list, so the disks after it keep
            // theirs, and it is a disk of unknown type and size.
            let Value::Object(d) = item else {
                self.problem(format_args!("Disks[{i}]"), item, "expected an object");
                out.push(DiskRow {
                    disk_index: i as i32,
                    disk_type: None,
                    disk_size_gb: None,
                });
                continue;
            };
            out.push(DiskRow {
                disk_index: i as i32,
                disk_type: self.text_value(d.get("DiskType"), format_args!("Disks[{i}].DiskType")),
                disk_size_gb: self
                    .int_value(d.get("DiskSize"), format_args!("Disks[{i}].DiskSize")),
            });
        }
        out
    }

    fn tags(&mut self, raw: &Map<String, Value>, key: &str, kind: TagKind) -> Vec<TagRow> {
        let items = match raw.get(key) {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.problem(key, other, "expected an array");
                return Vec::new();
            }
        };
        // With the position each kept tag had in the list.
        let mut out: Vec<(usize, TagRow)> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            // Written only for a problem.
            let field = || format!("{key}[{i}]");
            let tag_key = match item.get("Key") {
                Some(Value::String(k)) if k.chars().any(|c| c != '\0') => k.clone(),
                // NULs are dropped when stored: a key of NULs alone would be "".
                Some(Value::String(k)) if !k.is_empty() => {
                    self.problem(field(), item, "the tag's Key is NUL characters alone");
                    continue;
                }
                // A scalar of another JSON type reads as text, as a value does.
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(other @ (Value::Array(_) | Value::Object(_))) => {
                    self.problem(format_args!("{key}[{i}].Key"), other, "expected a string");
                    continue;
                }
                _ => {
                    self.problem(field(), item, "tag without a Key");
                    continue;
                }
            };
            let value = self.text_value(item.get("Value"), format_args!("{key}[{i}].Value"));
            // Keys are unique per instance and kind in the store; the last one wins.
            // As stored: keys that differ by a NUL alone are one key.
            let without_nul = |k: &str| k.chars().filter(|c| *c != '\0').collect::<String>();
            let same = |k: &str| {
                k == tag_key
                    || (k.contains('\0') || tag_key.contains('\0'))
                        && without_nul(k) == without_nul(&tag_key)
            };
            if let Some(at) = out.iter().position(|(_, t)| same(&t.key)) {
                let (earlier, _) = out.remove(at);
                self.stored_otherwise(
                    format_args!("{key}[{earlier}]"),
                    &items[earlier],
                    format!("the key is repeated at {}", field()),
                    "only in raw: the later tag of the key is the one stored",
                );
            }
            out.push((
                i,
                TagRow {
                    kind,
                    key: tag_key,
                    value,
                },
            ));
        }
        for (i, tag) in &out {
            // As stored: without NULs, which the COPY drops.
            let stored = |s: &str| s.len() - s.matches('\0').count();
            let bytes = stored(&tag.key) + tag.value.as_deref().map_or(0, stored);
            if bytes > MAX_TAG_ROW_BYTES {
                self.stored_otherwise(
                    format_args!("{key}[{i}]"),
                    &items[*i],
                    format!(
                        "key and value are {bytes} bytes, more than the {MAX_TAG_ROW_BYTES} \
                         ecp.instance_tags can index"
                    ),
                    "in the instance's tags and raw, without a row in ecp.instance_tags",
                );
            }
        }
        out.into_iter().map(|(_, tag)| tag).collect()
    }
}

/// A time without zone: `YYYY-MM-DD HH:MM:SS` as the API writes it, with `T` for
/// the space, a fraction of a second, or no seconds.
fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    // The API's own form first, read by hand: the formats below are parsed
    // anew on every call, two of them per record. Anything else (another
    // form, a leap second, a value out of range) goes to them.
    parse_api_time(s).or_else(|| parse_naive_forms(s))
}

/// Every form [`parse_naive`] takes, through chrono's format strings.
fn parse_naive_forms(s: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

/// Exactly `YYYY-MM-DD HH:MM:SS`, with a valid date and time of day.
fn parse_api_time(s: &str) -> Option<NaiveDateTime> {
    let b: &[u8; 19] = s.as_bytes().try_into().ok()?;
    let layout = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    if layout.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(5, 7)?,
        number(8, 10)?,
    )?;
    date.and_hms_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?)
}

/// A time with a zone: RFC 3339, and the ISO 8601 forms around it (`+0800`
/// without the colon, no seconds, a space for the `T`).
fn parse_zoned(s: &str) -> Option<DateTime<FixedOffset>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    let s = match s.strip_suffix(['Z', 'z']) {
        Some(local) => format!("{local}+00:00"),
        None => s.to_owned(),
    };
    [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%z",
        "%Y-%m-%d %H:%M%z",
    ]
    .iter()
    .find_map(|f| DateTime::parse_from_str(&s, f).ok())
}

fn whole(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 1e15).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn parsed(raw: &RawValue) -> Map<String, Value> {
        serde_json::from_str(raw.get()).unwrap()
    }

    fn example() -> Map<String, Value> {
        let page: Value = serde_json::from_str(include_str!(
            "../tests/data/describe_android_instances_page.json"
        ))
        .unwrap();
        obj(page["InstanceModel"][0].clone())
    }

    #[test]
    fn the_documented_example_maps_every_field() {
        let raw = example();
        let n = normalize(raw.clone().into(), &NormalizeOptions::default()).unwrap();
        assert!(n.problems.is_empty(), "{:?}", n.problems);
        let r = &n.row;
        assert_eq!(r.instance_id, "acp-8at8h6ejkadjh0001");
        assert_eq!(r.status.as_deref(), Some("RUNNING"));
        assert_eq!(r.cpu_cores, Some(4));
        assert_eq!(r.memory_mib, Some(4096));
        assert_eq!(r.display_lock_resolution, Some(false));
        assert_eq!(r.display_resolution_width, Some(720));
        assert_eq!(r.app_manage_policy_name.as_deref(), Some("policy-1"));
        assert_eq!(r.phone_data_volume_gib, Some(20));
        assert_eq!(
            r.network_interface_ip,
            Some("192.168.22.48".parse().unwrap())
        );
        assert_eq!(r.public_ip_address, None, "empty string is NULL");
        assert_eq!(r.biz_image_type, None, "empty string is NULL");
        assert_eq!(
            r.created_at,
            Some(Utc.with_ymd_and_hms(2023, 5, 6, 10, 42, 10).unwrap())
        );
        assert_eq!(
            r.expires_at,
            Some(Utc.with_ymd_and_hms(2024, 7, 15, 2, 3, 33).unwrap())
        );
        assert_eq!(r.vswitch_id.as_deref(), Some("vsw-2zepmau2hsbhos420001"));
        assert_eq!(parsed(&n.raw), raw, "raw is kept whole");
        assert_eq!(n.disks.len(), 2);
        assert_eq!(n.disks[1].disk_type.as_deref(), Some("DATA"));
        assert_eq!(n.disks[1].disk_size_gb, Some(64));
        assert_eq!(n.tags.len(), 2);
        assert_eq!(n.tags[1].kind, TagKind::Biz);
    }

    #[test]
    fn every_column_is_listed_once() {
        let row = InstanceRow::default();
        let cols = row.columns();
        let mut names: Vec<_> = cols.iter().map(|c| c.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cols.len());
    }

    #[test]
    fn missing_or_blank_instance_id_is_refused() {
        for raw in [
            json!({}),
            json!({"AndroidInstanceId": ""}),
            json!({"AndroidInstanceId": 7}),
            json!({"AndroidInstanceId": "\u{0}\u{0}"}),
            json!({"AndroidInstanceId": "a".repeat(MAX_INSTANCE_ID_BYTES + 1)}),
        ] {
            let err = normalize(obj(raw.clone()).into(), &NormalizeOptions::default()).unwrap_err();
            assert!(
                matches!(
                    err,
                    NormalizeError::MissingInstanceId { .. }
                        | NormalizeError::InstanceIdTooLong { .. }
                ),
                "{raw}: {err}"
            );
        }
        let longest = json!({"AndroidInstanceId": "a".repeat(MAX_INSTANCE_ID_BYTES)});
        assert!(normalize(obj(longest).into(), &NormalizeOptions::default()).is_ok());
        // Measured without the NULs it is stored without.
        let nuls = format!("{}\u{0}\u{0}", "a".repeat(MAX_INSTANCE_ID_BYTES - 1));
        let n = normalize(
            obj(json!({"AndroidInstanceId": nuls})).into(),
            &NormalizeOptions::default(),
        );
        assert_eq!(n.unwrap().row.instance_id.len(), MAX_INSTANCE_ID_BYTES - 1);
    }

    /// A tag too long for the tag table's indexes is kept in the instance's tags
    /// and reported; the apply leaves it out of `ecp.instance_tags`.
    #[test]
    fn a_tag_too_long_to_index_is_kept_and_reported() {
        let long = "v".repeat(MAX_TAG_ROW_BYTES);
        let raw = obj(json!({"AndroidInstanceId": "acp-1",
            "Tags": [{"Key": "ok", "Value": "short"}, {"Key": "k", "Value": long}]}));
        let n = normalize(raw.into(), &NormalizeOptions::default()).unwrap();
        assert_eq!(n.tags.len(), 2);
        assert_eq!(n.tags[1].value.as_deref(), Some(long.as_str()));
        let fields: Vec<_> = n.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["Tags[1]"]);
        assert!(
            n.problems[0].stored.contains("without a row"),
            "{:?}",
            n.problems
        );
    }

    #[test]
    fn numbers_as_strings_and_null_texts_are_accepted_where_they_mean_no_value() {
        let raw = obj(json!({
            "AndroidInstanceId": "acp-1", "Memory": "8192", "Cpu": " 8 ",
            "AndroidInstanceName": "null", "PublicIpAddress": "null", "Rate": null,
            "DisplayConfig": {"LockResolution": "on", "Dpi": 320.0}
        }));
        let n = normalize(raw.into(), &NormalizeOptions::default()).unwrap();
        assert!(n.problems.is_empty(), "{:?}", n.problems);
        assert_eq!(n.row.memory_mib, Some(8192));
        assert_eq!(n.row.cpu_cores, Some(8));
        assert_eq!(n.row.public_ip_address, None);
        // Text is kept as sent unless empty: a user may name a phone "null".
        assert_eq!(n.row.instance_name.as_deref(), Some("null"));
        assert_eq!(n.row.display_lock_resolution, Some(true));
        assert_eq!(n.row.display_dpi, Some(320));
        let raw = obj(json!({
            "AndroidInstanceId": "acp-1", "AndroidInstanceName": "",
            "Tags": [{"Key": "k", "Value": " "}, {"Key": "e", "Value": ""}]
        }));
        let n = normalize(raw.into(), &NormalizeOptions::default()).unwrap();
        assert_eq!(n.row.instance_name, None);
        let values: Vec<_> = n.tags.iter().map(|t| t.value.as_deref()).collect();
        assert_eq!(values, [Some(" "), None]);
    }

    #[test]
    fn unparsable_values_become_null_and_are_reported() {
        let raw = obj(json!({
            "AndroidInstanceId": "acp-1", "Cpu": "four", "Memory": "lots",
            "NetworkInterfaceIp": "999.1.1.1", "GmtCreate": "yesterday",
            "GmtExpired": "soon", "DisplayConfig": {"LockResolution": "maybe"},
            "Tags": [{"Value": "orphan"}], "Disks": "none"
        }));
        let n = normalize(raw.clone().into(), &NormalizeOptions::default()).unwrap();
        let fields: Vec<_> = n.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "Cpu",
                "Memory",
                "DisplayConfig.LockResolution",
                "GmtCreate",
                "GmtExpired",
                "NetworkInterfaceIp",
                "Disks",
                "Tags[0]"
            ]
        );
        assert_eq!(n.row.cpu_cores, None);
        assert_eq!(n.problems[0].value, json!("four"));
        assert_eq!(parsed(&n.raw), raw);
    }

    /// The hand-read form agrees with chrono's reading of it, and leaves every
    /// other text to chrono.
    #[test]
    fn the_api_time_read_by_hand_is_what_chrono_reads() {
        for s in [
            "2024-07-15 02:03:33",
            "2024-02-29 23:59:59",
            "0000-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2023-02-29 12:00:00",
            "2024-13-01 00:00:00",
            "2024-07-15 24:00:00",
            "2024-07-15 23:59:60",
            "2024-07-15 23:60:00",
            "2024-07-15T02:03:33",
            "2024-07-15 02:03:33.5",
            "2024-7-15 02:03:33",
            "2024-07-15 02:03",
            "+2024-07-15 02:03",
            "2024-07-15 0a:03:33",
            "2024/07/15 02:03:33",
            "2024-07-15 02:03:3\u{e9}",
            "2024-07-15 02:03:\u{e9}",
            "2024-07-15 02:03:\u{663}\u{663}",
        ] {
            assert_eq!(parse_naive(s), parse_naive_forms(s), "{s}");
        }
        assert!(parse_api_time("2024-07-15 02:03:33").is_some());
        assert_eq!(
            parse_api_time("2024-07-15 23:59:60"),
            None,
            "left to chrono"
        );
    }

    /// The ISO 8601 forms around RFC 3339 are read (they were stored as NULL),
    /// naive ones in the configured zone.
    #[test]
    fn times_in_the_forms_around_the_documented_ones_are_read() {
        let utc = |h, m, s| Some(Utc.with_ymd_and_hms(2024, 7, 15, h, m, s).unwrap());
        let cases = [
            ("GmtExpired", "2024-07-15T02:03Z", utc(2, 3, 0)),
            ("GmtExpired", "2024-07-15T10:03:33+0800", utc(2, 3, 33)),
            ("GmtExpired", "2024-07-15 10:03:33+08:00", utc(2, 3, 33)),
            (
                "GmtExpired",
                "2024-07-15T02:03:33.250Z",
                Some(
                    Utc.with_ymd_and_hms(2024, 7, 15, 2, 3, 33).unwrap()
                        + chrono::Duration::milliseconds(250),
                ),
            ),
            ("GmtExpired", "2024-07-15T02:03:33", utc(2, 3, 33)),
            (
                "GmtCreate",
                "2024-07-15 10:03:33.5",
                Some(
                    Utc.with_ymd_and_hms(2024, 7, 15, 2, 3, 33).unwrap()
                        + chrono::Duration::milliseconds(500),
                ),
            ),
            ("GmtCreate", "2024-07-15 10:03", utc(2, 3, 0)),
            ("GmtCreate", "2024-07-15T02:03:33Z", utc(2, 3, 33)),
        ];
        let opts = NormalizeOptions {
            naive_time_zone: FixedOffset::east_opt(8 * 3600),
        };
        for (field, text, want) in cases {
            let raw = obj(json!({"AndroidInstanceId": "acp-1", field: text}));
            let n = normalize(raw.into(), &opts).unwrap();
            let got = if field == "GmtCreate" {
                n.row.created_at
            } else {
                n.row.expires_at
            };
            assert_eq!(got, want, "{field} {text}");
            assert!(n.problems.is_empty(), "{text}: {:?}", n.problems);
        }
    }

    /// A time PostgreSQL cannot take as chrono writes it (year 0 once in UTC,
    /// past 9999) is NULL and reported: it used to fail the scope's whole COPY.
    #[test]
    fn times_outside_the_years_1_to_9999_are_null_and_reported() {
        let opts = NormalizeOptions {
            naive_time_zone: FixedOffset::east_opt(8 * 3600),
        };
        for (field, text) in [
            ("GmtCreate", "0001-01-01 00:00:00"),
            ("GmtCreate", "0000-01-01 00:00:00"),
            ("GmtExpired", "0001-01-01T00:00:00+08:00"),
            ("GmtExpired", "9999-12-31T23:59:59-00:01"),
        ] {
            let raw = obj(json!({"AndroidInstanceId": "acp-1", field: text}));
            let n = normalize(raw.into(), &opts).unwrap();
            assert_eq!((n.row.created_at, n.row.expires_at), (None, None), "{text}");
            assert_eq!(n.problems.len(), 1, "{text}");
            assert_eq!(n.problems[0].field, field);
        }
        // In the year 10000 once rounded to the microseconds PostgreSQL keeps.
        for text in ["9999-12-31T23:59:59.9999995Z", "9999-12-31T23:59:60Z"] {
            let raw = obj(json!({"AndroidInstanceId": "acp-1", "GmtExpired": text}));
            let n = normalize(raw.into(), &opts).unwrap();
            assert_eq!(n.row.expires_at, None, "{text}");
            assert_eq!(n.problems.len(), 1, "{text}");
        }
        let edge = obj(json!({"AndroidInstanceId": "acp-1", "GmtExpired": "0001-01-01T00:00:00Z"}));
        let n = normalize(edge.into(), &opts).unwrap();
        assert_eq!(
            n.row.expires_at,
            Some(Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap())
        );
    }

    /// A leap second with a fraction failed the scope's whole COPY (PostgreSQL
    /// refuses `23:59:60.5`); every leap second is now the next minute's first
    /// second, as PostgreSQL reads a whole `:60`, and reported.
    #[test]
    fn a_leap_second_is_the_next_minutes_first_second_and_reported() {
        let utc = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        for (field, text, want) in [
            (
                "GmtCreate",
                "2016-12-31 23:59:60.5",
                "2017-01-01T00:00:00.5Z",
            ),
            ("GmtModified", "2016-12-31 23:59:60", "2017-01-01T00:00:00Z"),
            (
                "GmtExpired",
                "2023-12-31T22:59:60.1-01:00",
                "2024-01-01T00:00:00.1Z",
            ),
            (
                "GmtExpired",
                "2016-12-31T23:59:60.0000004Z",
                "2017-01-01T00:00:00Z",
            ),
        ] {
            let raw = obj(json!({"AndroidInstanceId": "acp-1", field: text}));
            let n = normalize(raw.into(), &NormalizeOptions::default()).unwrap();
            let got = match field {
                "GmtCreate" => n.row.created_at,
                "GmtModified" => n.row.modified_at,
                _ => n.row.expires_at,
            };
            assert_eq!(got, utc(want), "{text}");
            assert_eq!(n.problems.len(), 1, "{text}");
            assert_eq!(n.problems[0].stored, STORED_AS_NEXT_SECOND);
        }
        // Past what chrono can add to (it reads years up to 262143): reported,
        // not a panic.
        for text in ["+262142-12-31T23:59:60Z", "+262142-12-31T23:59:59.9999999Z"] {
            let raw = obj(json!({"AndroidInstanceId": "acp-1", "GmtExpired": text}));
            let n = normalize(raw.into(), &NormalizeOptions::default()).unwrap();
            assert_eq!(n.row.expires_at, None, "{text}");
            assert_eq!(n.problems.len(), 1, "{text}");
        }
        // Ties, as PostgreSQL 15 stores them (asked of it): its rint rounds to even.
        for (text, stored) in [
            (
                "2024-01-01T00:00:00.0000025Z",
                "2024-01-01T00:00:00.000002Z",
            ),
            (
                "2024-01-01T00:00:00.0000035Z",
                "2024-01-01T00:00:00.000004Z",
            ),
            ("2024-01-01T00:00:00.9999995Z", "2024-01-01T00:00:01Z"),
        ] {
            let raw = obj(json!({"AndroidInstanceId": "acp-1", "GmtExpired": text}));
            let n = normalize(raw.into(), &NormalizeOptions::default()).unwrap();
            assert_eq!(n.row.expires_at, utc(stored), "{text}");
        }
        // Sub-microsecond digits are rounded as PostgreSQL rounds them.
        let raw = obj(
            json!({"AndroidInstanceId": "acp-1", "GmtExpired": "2024-01-01T00:00:00.0000016Z"}),
        );
        let n = normalize(raw.into(), &NormalizeOptions::default()).unwrap();
        assert_eq!(n.row.expires_at, utc("2024-01-01T00:00:00.000002Z"));
        assert!(n.problems.is_empty());
    }

    #[test]
    fn naive_times_follow_the_configured_zone() {
        let raw = obj(json!({"AndroidInstanceId": "acp-1", "GmtCreate": "2024-01-01 08:00:00"}));
        let opts = NormalizeOptions {
            naive_time_zone: FixedOffset::east_opt(8 * 3600),
        };
        let n = normalize(raw.into(), &opts).unwrap();
        assert_eq!(
            n.row.created_at,
            Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
        );
    }

    #[test]
    fn a_mended_field_is_reported_once_and_digested_by_its_text() {
        let mended = |text: &str| crate::api::model::mend_record(text).unwrap();
        let opts = NormalizeOptions::default();
        let n = normalize(
            mended(r#"{"AndroidInstanceId":"acp-1","Memory":1e400,"Odd":1e400,"AndroidInstanceName":"a\ud83d"}"#),
            &opts,
        )
        .unwrap();
        let mut fields: Vec<&str> = n.problems.iter().map(|p| p.field.as_str()).collect();
        fields.sort_unstable();
        // Memory's own problem (not an integer) says it: one line a field.
        assert_eq!(fields, ["AndroidInstanceName", "Memory", "Odd"]);
        let disks = normalize(
            mended(
                r#"{"AndroidInstanceId":"acp-1","Disks":[{"DiskSize":1e400,"DiskType":"SYSTEM"}]}"#,
            ),
            &opts,
        )
        .unwrap();
        let fields: Vec<&str> = disks.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["Disks[0].DiskSize"], "said once, where it is");
        assert_eq!(n.row.instance_name.as_deref(), Some("a\u{FFFD}"));
        assert_eq!(n.row.memory_mib, None);

        // The same fields, the number sent as a string: another record.
        let huge = normalize(
            mended(r#"{"AndroidInstanceId":"acp-1","Odd":1e400}"#),
            &opts,
        )
        .unwrap();
        let text = r#"{"AndroidInstanceId":"acp-1","Odd":"1e400"}"#;
        let string = normalize(
            RawInstance {
                fields: serde_json::from_str(text).unwrap(),
                text: RawValue::from_string(text.to_owned()).unwrap(),
                mended: Vec::new(),
                unreadable: None,
            },
            &opts,
        )
        .unwrap();
        assert_ne!(huge.raw_digest, string.raw_digest);
    }

    #[test]
    fn raw_is_the_text_as_sent_except_for_nul_characters() {
        let text = r#"{ "AndroidInstanceId": "acp-1",  "Z": 1, "A": [true] }"#;
        let record = RawInstance {
            fields: serde_json::from_str(text).unwrap(),
            text: RawValue::from_string(text.to_owned()).unwrap(),
            mended: Vec::new(),
            unreadable: None,
        };
        let n = normalize(record, &NormalizeOptions::default()).unwrap();
        assert_eq!(n.raw.get(), text, "spacing and key order kept");

        let text = r#"{"AndroidInstanceId":"acp-1","Name":"a\u0000b","Odd\u0000Key":["\\u0000"]}"#;
        let record = RawInstance {
            fields: serde_json::from_str(text).unwrap(),
            text: RawValue::from_string(text.to_owned()).unwrap(),
            mended: Vec::new(),
            unreadable: None,
        };
        let n = normalize(record, &NormalizeOptions::default()).unwrap();
        assert_eq!(
            parsed(&n.raw),
            obj(json!({"AndroidInstanceId": "acp-1", "Name": "ab", "OddKey": ["\\u0000"]})),
            "NULs dropped, an escaped backslash before u0000 kept"
        );
        let fields: Vec<_> = n.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["Name", "Odd\0Key"], "each NUL is reported");

        // The rest of the text stays as sent: numbers too (the record used to be
        // re-serialized, which rounded them through f64).
        let text = r#"{"AndroidInstanceId":"acp-1","Name":"a\u0000b","Big":123456789012345678901234567890,"Zeta":1.10}"#;
        let record = RawInstance {
            fields: serde_json::from_str(text).unwrap(),
            text: RawValue::from_string(text.to_owned()).unwrap(),
            mended: Vec::new(),
            unreadable: None,
        };
        let n = normalize(record, &NormalizeOptions::default()).unwrap();
        assert_eq!(
            n.raw.get(),
            r#"{"AndroidInstanceId":"acp-1","Name":"ab","Big":123456789012345678901234567890,"Zeta":1.10}"#
        );
    }

    #[test]
    fn the_raw_digest_is_of_the_content_not_of_its_writing() {
        let digest = |text: &str| {
            let fields: Map<String, Value> = serde_json::from_str(text).unwrap();
            raw_digest(&fields, text, text.contains("\\u0000"))
        };
        let compact = r#"{"AndroidInstanceId":"acp-1","Cpu":4,"Tags":[{"Key":"a","Value":"b"}],"DisplayConfig":{"Dpi":320,"Fps":60}}"#;
        let written_otherwise = r#"{ "DisplayConfig" : { "Fps" : 60, "Dpi" : 320 },
            "Tags" : [ { "Value" : "b", "Key" : "a" } ], "Cpu" : 4, "AndroidInstanceId" : "acp-1" }"#;
        assert_eq!(digest(compact), digest(written_otherwise));
        // Any change of a value, a key or an order that means something is seen.
        for changed in [
            r#"{"AndroidInstanceId":"acp-1","Cpu":5,"Tags":[{"Key":"a","Value":"b"}],"DisplayConfig":{"Dpi":320,"Fps":60}}"#,
            r#"{"AndroidInstanceId":"acp-1","Cpu":"4","Tags":[{"Key":"a","Value":"b"}],"DisplayConfig":{"Dpi":320,"Fps":60}}"#,
            r#"{"AndroidInstanceId":"acp-1","Cpu":4,"Tags":[{"Key":"a","Value":"b"}],"DisplayConfig":{"DPI":320,"Fps":60}}"#,
            r#"{"AndroidInstanceId":"acp-1","Cpu":4,"Tags":[{"Key":"a","Value":"b"},{"Key":"c"}],"DisplayConfig":{"Dpi":320,"Fps":60}}"#,
            r#"{"AndroidInstanceId":"acp-1","Cpu":4,"Tags":[{"Key":"a","Value":"b"}],"DisplayConfig":{"Dpi":320,"Fps":60},"New":null}"#,
        ] {
            assert_ne!(digest(compact), digest(changed), "{changed}");
        }
        // A number the parse may round leaves the text to decide.
        let long = r#"{"AndroidInstanceId":"acp-1","Big":123456789012345678901234567890}"#;
        let nearby = r#"{"AndroidInstanceId":"acp-1","Big":123456789012345678901234567891}"#;
        assert_ne!(digest(long), digest(nearby));
        assert_ne!(digest(r#"{"Rate":1.10}"#), digest(r#"{"Rate":1.1}"#));
        // Keys that differ by a NUL alone are one key once stored: {"K":2}
        // and {"K":1} here, which the parsed records do not tell apart.
        assert_ne!(
            digest(r#"{"K\u0000":1,"K":2}"#),
            digest(r#"{"K":2,"K\u0000":1}"#)
        );
    }

    #[test]
    fn a_tag_key_reads_as_text_like_its_value() {
        let raw = obj(json!({"AndroidInstanceId": "acp-1",
            "Tags": [{"Key": 7, "Value": 5}, {"Key": true, "Value": "t"},
                     {"Key": "\u{0}", "Value": "nul"}, {"Key": "", "Value": "empty"},
                     {"Key": ["k"], "Value": "list"}]}));
        let n = normalize(raw.into(), &NormalizeOptions::default()).unwrap();
        let kept: Vec<(&str, Option<&str>)> = n
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_deref()))
            .collect();
        assert_eq!(kept, [("7", Some("5")), ("true", Some("t"))]);
        // The three others are reported, each where it was (and the NUL too).
        let fields: Vec<&str> = n.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["Tags[2]", "Tags[3]", "Tags[4].Key", "Tags"]);
    }

    #[test]
    fn repeated_tag_keys_keep_the_last_value() {
        let raw = obj(json!({"AndroidInstanceId": "acp-1",
            "Tags": [{"Key": "env", "Value": "a"}, {"Key": "env", "Value": "b"}]}));
        let n = normalize(raw.into(), &NormalizeOptions::default()).unwrap();
        assert_eq!(n.tags.len(), 1);
        assert_eq!(n.tags[0].value.as_deref(), Some("b"));
        // Reported, so the value not kept is not lost silently.
        let fields: Vec<&str> = n.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["Tags[0]"]);
        assert!(n.problems[0].reason.contains("Tags[1]"), "{:?}", n.problems);
        // Keys that differ by a NUL alone are one key once stored.
        let raw = obj(json!({"AndroidInstanceId": "acp-1",
            "Tags": [{"Key": "env\u{0}", "Value": "a"}, {"Key": "env", "Value": "b"}]}));
        let n = normalize(raw.into(), &NormalizeOptions::default()).unwrap();
        assert_eq!(n.tags.len(), 1);
        assert_eq!(n.tags[0].value.as_deref(), Some("b"));
        assert!(
            n.problems.iter().any(|p| p.field == "Tags[0]"),
            "{:?}",
            n.problems
        );
    }
}
