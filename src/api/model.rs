//! The wire types of `DescribeAndroidInstances` and `DescribeRegions`
//! (eds-aic 2023-09-30), with the API's exact JSON names and types.
//!
//! Every field is optional: the service may omit any of them, and it adds new ones
//! every few months. The crawler therefore carries each instance as its raw JSON
//! object ([`RawInstance`]); these typed structs are what the simulator serves and
//! what callers may deserialize into when they want types.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub const PRODUCT: &str = "eds-aic";
pub const API_VERSION: &str = "2023-09-30";
pub const ACTION_DESCRIBE_ANDROID_INSTANCES: &str = "DescribeAndroidInstances";
pub const ACTION_DESCRIBE_REGIONS: &str = "DescribeRegions";

/// The 15 lifecycle states of an instance, as the API documents them.
pub const STATUSES: [&str; 15] = [
    "CREATING",
    "STARTING",
    "RUNNING",
    "STOPPING",
    "STOPPED",
    "REBOOTING",
    "RESETTING",
    "BACKUPING",
    "BACKUP_FAILED",
    "RECOVERING",
    "RECOVER_FAILED",
    "DELETING",
    "DELETED",
    "FAILED",
    "UNAVAILABLE",
];

/// A `{Key, Value}` pair, used for both `Tags` and `BizTags` and for the `Tag` filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag {
            key: Some(key.into()),
            value: Some(value.into()),
        }
    }

    /// A tag filter as an operator writes it: `KEY=VALUE`, or `KEY` for any
    /// value (the first `=` ends the key).
    pub fn parse_filter(text: &str) -> Result<Tag, &'static str> {
        match text.split_once('=') {
            Some(("", _)) => Err("the tag key is empty"),
            Some((key, value)) => Ok(Tag::new(key, value)),
            None if text.is_empty() => Err("the tag key is empty"),
            None => Ok(Tag {
                key: Some(text.to_owned()),
                value: None,
            }),
        }
    }
}

/// The values of the `ChargeType` filter.
pub const CHARGE_TYPES: [&str; 2] = ["PrePaid", "PostPaid"];

/// The request of `DescribeAndroidInstances`: all 23 parameters, all optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAndroidInstancesRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub android_instance_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_instance_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_manage_policy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_region_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pair_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub office_site_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qos_rule_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag: Vec<Tag>,
}

impl DescribeAndroidInstancesRequest {
    /// The parameters as the official SDK flattens them ("repeat list" style):
    /// arrays as `Name.N` (1-based), tags as `Tag.N.Key` / `Tag.N.Value`, absent
    /// values and empty arrays as nothing. An empty `NextToken` is omitted too.
    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut p = Params::default();
        p.list("AndroidInstanceIds", &self.android_instance_ids);
        p.opt("AndroidInstanceName", &self.android_instance_name);
        p.opt("AppManagePolicyId", &self.app_manage_policy_id);
        p.opt("AuthorizedUserId", &self.authorized_user_id);
        p.opt("BizRegionId", &self.biz_region_id);
        p.opt("ChargeType", &self.charge_type);
        p.opt("InstanceGroupId", &self.instance_group_id);
        p.list("InstanceGroupIds", &self.instance_group_ids);
        p.opt("InstanceGroupName", &self.instance_group_name);
        p.opt("InstanceVersion", &self.instance_version);
        p.opt("KeyPairId", &self.key_pair_id);
        p.opt("MaxResults", &self.max_results.map(|n| n.to_string()));
        p.opt(
            "NextToken",
            &self.next_token.clone().filter(|t| !t.is_empty()),
        );
        p.opt("NodeId", &self.node_id);
        p.opt("NodeName", &self.node_name);
        p.list("OfficeSiteIds", &self.office_site_ids);
        p.opt("PrivateIpAddress", &self.private_ip_address);
        p.list("QosRuleIds", &self.qos_rule_ids);
        p.opt("SaleMode", &self.sale_mode);
        p.opt("SortKey", &self.sort_key);
        p.opt("SortType", &self.sort_type);
        p.opt("Status", &self.status);
        for (i, tag) in self.tag.iter().enumerate() {
            p.opt(&format!("Tag.{}.Key", i + 1), &tag.key);
            p.opt(&format!("Tag.{}.Value", i + 1), &tag.value);
        }
        p.0
    }

    /// True when any parameter narrows the result below "every instance of the
    /// region". Only an unfiltered crawl may be taken as evidence of deletion.
    pub fn is_filtered(&self) -> bool {
        let unfiltered = DescribeAndroidInstancesRequest {
            biz_region_id: self.biz_region_id.clone(),
            max_results: self.max_results,
            next_token: self.next_token.clone(),
            sort_key: self.sort_key.clone(),
            sort_type: self.sort_type.clone(),
            ..Default::default()
        };
        *self != unfiltered
    }
}

#[derive(Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn opt(&mut self, name: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.0.push((name.to_owned(), v.clone()));
        }
    }

    fn list(&mut self, name: &str, values: &[String]) {
        for (i, v) in values.iter().enumerate() {
            self.0.push((format!("{name}.{}", i + 1), v.clone()));
        }
    }
}

/// One `InstanceModel` record as the service sent it: its fields, parsed once for
/// normalizing, and its exact JSON text, which becomes `ecp.instances.raw` as is.
/// Keeping the text spares a deep copy and a re-serialization of every record,
/// which were most of the crawl's CPU time at a million instances.
#[derive(Clone, Debug)]
pub struct RawInstance {
    pub fields: Map<String, Value>,
    pub text: Box<RawValue>,
    /// The top-level fields that had to be mended before the record could be
    /// read at all (see [`mend_record`]); empty for every record read as sent.
    pub mended: Vec<(String, Mended)>,
    /// Why no instance could be read from the record at all (it is no object,
    /// or serde refused it even mended: nested past its limit), or `None`.
    /// Such a record is kept for normalize to skip, like one without an id,
    /// rather than failing its page.
    pub unreadable: Option<String>,
}

/// What was mended in a field of a record that serde refused as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mended {
    /// Half of a UTF-16 surrogate pair (a character cut in two), which neither
    /// serde nor PostgreSQL takes: U+FFFD in its place, in the field and in raw.
    HalfSurrogate,
    /// A number past a 64-bit float's range (`1e400`, an integer of 310
    /// digits), which serde cannot hold: the field reads the text of its digits,
    /// raw keeps the number.
    HugeNumber,
    /// Bytes that are not UTF-8 (the body could not be read as sent): U+FFFD
    /// in their place, in the field and in raw.
    NotUtf8,
}

impl RawInstance {
    /// The `AndroidInstanceId`, when it is a string.
    pub fn instance_id(&self) -> Option<&str> {
        self.fields.get("AndroidInstanceId").and_then(Value::as_str)
    }
}

/// A record serde refused as sent, read with what it cannot take mended (see
/// [`Mended`]), or `None` if something else is wrong with it (the caller
/// reports serde's error). Its text, which becomes raw, has half surrogates
/// replaced and numbers as sent (jsonb takes them). Read only after a failed
/// parse, so it costs the common record nothing.
pub fn mend_record(sent: &str) -> Option<RawInstance> {
    let surrogates = mend_surrogates(sent);
    let text = surrogates.as_deref().unwrap_or(sent);
    // Member by member, so that each mend is told with its field; a key given
    // twice keeps its last value, as when the whole record parses.
    let members: std::collections::BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
    let mut fields = Map::new();
    let mut mended = Vec::new();
    for (key, value) in members {
        // The replacement is written as this escape: a field that holds it was
        // mended (or sent it so, in a record that had one mended elsewhere).
        if surrogates.is_some() && (value.get().contains("\\uFFFD") || key.contains('\u{FFFD}')) {
            mended.push((key.clone(), Mended::HalfSurrogate));
        }
        let value = match serde_json::from_str::<Value>(value.get()) {
            Ok(v) => v,
            Err(_) => {
                let quoted = quote_numbers(value.get(), past_f64)?;
                mended.push((key.clone(), Mended::HugeNumber));
                serde_json::from_str(&quoted).ok()?
            }
        };
        fields.insert(key, value);
    }
    if mended.is_empty() {
        return None;
    }
    Some(RawInstance {
        fields,
        text: RawValue::from_string(text.to_owned()).ok()?,
        mended,
        unreadable: None,
    })
}

/// A number token serde refuses (it reads every number that is not a 64-bit
/// integer as a float, and refuses one past a float's range, by its own
/// rounding at the very edge).
fn past_f64(token: &str) -> bool {
    serde_json::from_str::<f64>(token).is_err()
}

/// The JSON text with every number that `refused` picks written as a string of
/// its characters, or `None` if it picks none. Numbers are found outside
/// strings; everything else is left byte for byte.
fn quote_numbers(text: &str, refused: impl Fn(&str) -> bool) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 8);
    let (mut copied, mut at, mut quoted) = (0, 0, false);
    while at < b.len() {
        match b[at] {
            b'"' => {
                // Past the string: an escape skips the character it escapes.
                at += 1;
                while at < b.len() && b[at] != b'"' {
                    at += if b[at] == b'\\' { 2 } else { 1 };
                }
                at += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = at;
                while at < b.len()
                    && matches!(b[at], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    at += 1;
                }
                let token = &text[start..at];
                if refused(token) {
                    out.push_str(&text[copied..start]);
                    out.push('"');
                    out.push_str(token);
                    out.push('"');
                    copied = at;
                    quoted = true;
                }
            }
            _ => at += 1,
        }
    }
    quoted.then(|| {
        out.push_str(&text[copied.min(text.len())..]);
        out
    })
}

/// The JSON text with half of every UTF-16 surrogate pair replaced with
/// `\uFFFD`, or `None` if it has none; NULs are left to [`mend_escapes`].
fn mend_surrogates(text: &str) -> Option<String> {
    mend(text, false)
}

/// The JSON text with the `\uXXXX` escapes that neither serde nor PostgreSQL
/// will take mended, or `None` if it has none: half of a UTF-16 surrogate pair
/// becomes `\uFFFD` (serde refuses it), and NUL (`\u0000`, which jsonb and text
/// refuse) is dropped, as the text columns drop it. Everything else is left
/// byte for byte, numbers included. Backslashes occur only inside strings in
/// JSON, so escapes are found without tracking strings.
pub fn mend_escapes(text: &str) -> Option<String> {
    mend(text, true)
}

fn mend(text: &str, drop_nul: bool) -> Option<String> {
    fn code_at(b: &[u8], at: usize) -> Option<u16> {
        let hex = b.get(at..at + 6)?;
        // Four hex digits exactly (from_str_radix would also take a sign).
        if hex[0] != b'\\' || hex[1] != b'u' || !hex[2..].iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut at, mut mended) = (0, 0, false);
    while at < b.len() {
        if b[at] != b'\\' {
            at += 1;
            continue;
        }
        let replacement = match code_at(b, at) {
            Some(0xD800..=0xDBFF) if matches!(code_at(b, at + 6), Some(0xDC00..=0xDFFF)) => {
                at += 12; // a whole pair
                continue;
            }
            Some(0xD800..=0xDFFF) => "\\uFFFD",
            Some(0) if drop_nul => "",
            Some(_) => {
                at += 6;
                continue;
            }
            None => {
                at += 2; // any other escape, the escaped character included
                continue;
            }
        };
        out.push_str(&text[copied..at]);
        out.push_str(replacement);
        at += 6;
        copied = at;
        mended = true;
    }
    mended.then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

/// Whether a JSON value holds `c` in any of its strings or keys, at any depth.
pub fn holds_char(v: &Value, c: char) -> bool {
    match v {
        Value::String(s) => s.contains(c),
        Value::Array(items) => items.iter().any(|v| holds_char(v, c)),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains(c) || holds_char(v, c)),
        _ => false,
    }
}

/// A JSON text on one line: a line break can only be whitespace between tokens
/// (inside a string it is escaped), so each becomes a space, and every other
/// byte, numbers included, stays as it is.
pub fn on_one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\n', '\r']) {
        text.replace(['\n', '\r'], " ").into()
    } else {
        text.into()
    }
}

/// What a JSON value is, from its first character (raw values start at their
/// first significant character).
pub fn kind_of(v: &RawValue) -> &'static str {
    match v.get().as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "a list",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

/// A record built in code (tests, tools): its text is its compact serialization.
impl From<Map<String, Value>> for RawInstance {
    fn from(fields: Map<String, Value>) -> Self {
        let text = serde_json::value::to_raw_value(&fields).expect("a JSON map always serializes");
        RawInstance {
            fields,
            text,
            mended: Vec::new(),
            unreadable: None,
        }
    }
}

/// One page of `DescribeAndroidInstances`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAndroidInstancesResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(default)]
    pub instance_model: Vec<InstanceModel>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Disk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_type: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DisplayConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpi: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<i32>,
    /// `"on"` or `"off"`: a string, not a boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_height: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_width: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AppManagePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_manage_policy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_manage_policy_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PhoneDataInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_data_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_data_volume: Option<i32>,
}

/// One instance: the 53 fields of `InstanceModel`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_instance_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_instance_group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_instance_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_instance_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_manage_policy: Option<AppManagePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_package_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_package_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_image_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_tags: Option<Vec<Tag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_type: Option<String>,
    /// The vCPU count, sent as a string (`"4"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<Disk>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_config: Option<DisplayConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_bandwidth_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`, no zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmt_create: Option<String>,
    /// ISO-8601 UTC (`2024-07-15T02:03:33Z`): a different format from the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmt_expired: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmt_modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pair_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_ipv6_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_site_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_app_instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_data_info: Option<PhoneDataInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ipv6_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendering_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_mode: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_bandwidth_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v_switch_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
}

/// The request of `DescribeRegions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeRegionsRequest {
    /// `cn` or `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_language: Option<String>,
    /// `Instance` (default) or `Node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_mode: Option<String>,
}

impl DescribeRegionsRequest {
    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut p = Params::default();
        p.opt("AcceptLanguage", &self.accept_language);
        p.opt("SaleMode", &self.sale_mode);
        p.0
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegionModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeRegionsResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `null` reads as no region, as the SDKs read it.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub region_models: Vec<RegionModel>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = include_str!("../../tests/data/describe_android_instances_page.json");

    #[test]
    fn a_tag_filter_is_a_key_with_or_without_its_value() {
        assert_eq!(Tag::parse_filter("env=prod"), Ok(Tag::new("env", "prod")));
        assert_eq!(Tag::parse_filter("a=b=c"), Ok(Tag::new("a", "b=c")));
        assert_eq!(Tag::parse_filter("env="), Ok(Tag::new("env", "")));
        assert_eq!(
            Tag::parse_filter("env"),
            Ok(Tag {
                key: Some("env".into()),
                value: None
            })
        );
        for empty in ["", "=prod"] {
            assert_eq!(Tag::parse_filter(empty), Err("the tag key is empty"));
        }
    }

    #[test]
    fn null_region_models_read_as_none() {
        let r: DescribeRegionsResponse =
            serde_json::from_str(r#"{"RequestId":"R","RegionModels":null}"#).unwrap();
        assert!(r.region_models.is_empty());
        let r: DescribeRegionsResponse = serde_json::from_str(
            r#"{"RegionModels":[{"RegionId":"cn-hangzhou","RegionName":"Hangzhou"}]}"#,
        )
        .unwrap();
        assert_eq!(r.region_models[0].region_id.as_deref(), Some("cn-hangzhou"));
    }

    #[test]
    fn the_all_fields_example_round_trips_without_loss() {
        let original: serde_json::Value = serde_json::from_str(PAGE).unwrap();
        let typed: DescribeAndroidInstancesResponse = serde_json::from_str(PAGE).unwrap();
        assert_eq!(typed.instance_model.len(), 1);
        let back = serde_json::to_value(&typed).unwrap();
        assert_eq!(back, original);
        let fields = original["InstanceModel"][0].as_object().unwrap().len();
        assert_eq!(fields, 53, "the example carries every InstanceModel field");
    }

    #[test]
    fn params_flatten_like_the_sdk() {
        let req = DescribeAndroidInstancesRequest {
            android_instance_ids: vec!["acp-1".into(), "acp-2".into()],
            biz_region_id: Some("cn-shanghai".into()),
            max_results: Some(50),
            next_token: Some(String::new()),
            tag: vec![Tag::new("env", "prod"), Tag::new("team name", "a b")],
            ..Default::default()
        };
        let p = req.to_params();
        let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "AndroidInstanceIds.1",
                "AndroidInstanceIds.2",
                "BizRegionId",
                "MaxResults",
                "Tag.1.Key",
                "Tag.1.Value",
                "Tag.2.Key",
                "Tag.2.Value"
            ]
        );
        assert!(req.is_filtered());
        let plain = DescribeAndroidInstancesRequest {
            biz_region_id: Some("cn-shanghai".into()),
            max_results: Some(100),
            ..Default::default()
        };
        assert!(!plain.is_filtered());
    }
}
