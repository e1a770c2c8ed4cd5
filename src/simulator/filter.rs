//! The request side of `DescribeAndroidInstances`: turning the flat wire parameters
//! (`AndroidInstanceIds.N`, `Tag.N.Key`, ...) into a validated [`Query`], and
//! deciding whether one instance matches its filters. Pure: no fleet state here.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::api::model::InstanceModel;
use crate::api::sign::sha256_hex;

/// Page size bounds of the API (§7).
pub const MAX_RESULTS_DEFAULT: usize = 100;
pub const MAX_RESULTS_LIMIT: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    CreationTime,
    ExpiredTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// Every filter of §2. `InstanceVersion`, `NodeId`, `NodeName` and `SaleMode` are
/// accepted and kept (they are part of a token's fingerprint) but select nothing:
/// the simulated fleet is all one edition on the instance sale mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub ids: Vec<String>,
    pub name: Option<String>,
    pub app_manage_policy_id: Option<String>,
    pub authorized_user_id: Option<String>,
    pub biz_region_id: Option<String>,
    pub charge_type: Option<String>,
    pub group_id: Option<String>,
    pub group_ids: Vec<String>,
    pub group_name: Option<String>,
    pub key_pair_id: Option<String>,
    pub office_site_ids: Vec<String>,
    pub private_ip: Option<String>,
    pub qos_rule_ids: Vec<String>,
    pub status: Option<String>,
    /// `(Key, Value)`; an absent part matches anything.
    pub tags: Vec<(Option<String>, Option<String>)>,
    pub ignored: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub filter: Filter,
    pub sort: Sort,
    pub max_results: usize,
    /// Absent or empty: the first page.
    pub next_token: Option<String>,
}

/// A parameter the request got wrong; becomes `400 InvalidParameter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadParameter(pub String);

impl Query {
    pub fn parse(params: &BTreeMap<String, String>) -> Result<Query, BadParameter> {
        // An empty value is no filter: the SDK sends `Name=` for a field set to "".
        let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
        let max_results = match params.get("MaxResults") {
            None => MAX_RESULTS_DEFAULT,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if (1..=MAX_RESULTS_LIMIT as i64).contains(&n) => n as usize,
                _ => {
                    return Err(BadParameter(format!(
                        "The specified parameter MaxResults is not valid: {raw:?} (an integer from 1 to {MAX_RESULTS_LIMIT})."
                    )))
                }
            },
        };
        let key = match params.get("SortKey").map(String::as_str) {
            None | Some("") | Some("CreationTime") => SortKey::CreationTime,
            Some("ExpiredTime") => SortKey::ExpiredTime,
            Some(other) => {
                return Err(BadParameter(format!(
                    "The specified parameter SortKey is not valid: {other:?} (CreationTime or ExpiredTime)."
                )))
            }
        };
        let descending = match params.get("SortType").map(String::as_str) {
            None | Some("") | Some("DESC") => true,
            Some("ASC") => false,
            Some(other) => {
                return Err(BadParameter(format!(
                    "The specified parameter SortType is not valid: {other:?} (ASC or DESC)."
                )))
            }
        };
        let filter = Filter {
            ids: list(params, "AndroidInstanceIds"),
            name: get("AndroidInstanceName"),
            app_manage_policy_id: get("AppManagePolicyId"),
            authorized_user_id: get("AuthorizedUserId"),
            biz_region_id: get("BizRegionId"),
            charge_type: get("ChargeType"),
            group_id: get("InstanceGroupId"),
            group_ids: list(params, "InstanceGroupIds"),
            group_name: get("InstanceGroupName"),
            key_pair_id: get("KeyPairId"),
            office_site_ids: list(params, "OfficeSiteIds"),
            private_ip: get("PrivateIpAddress"),
            qos_rule_ids: list(params, "QosRuleIds"),
            status: get("Status"),
            tags: tags(params),
            ignored: ["InstanceVersion", "NodeId", "NodeName", "SaleMode"]
                .iter()
                .filter_map(|k| params.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                .collect(),
        };
        Ok(Query {
            filter,
            sort: Sort { key, descending },
            max_results,
            next_token: get("NextToken"),
        })
    }

    /// Identifies "the same listing": filters and order, not the page size or the
    /// cursor. A token is only valid with the fingerprint it was issued for.
    pub fn fingerprint(&self) -> u64 {
        let digest = sha256_hex(format!("{:?}|{:?}", self.filter, self.sort).as_bytes());
        u64::from_str_radix(&digest[..16], 16).expect("hex")
    }
}

/// `Name.1`, `Name.2`, ... in numeric order. An empty item is none, as an empty
/// single value is no filter.
fn list(params: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    let prefix = format!("{name}.");
    let mut items: Vec<(u32, String)> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| {
            let n = k.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, v.clone()))
        })
        .collect();
    items.sort();
    items.into_iter().map(|(_, v)| v).collect()
}

/// `Tag.N.Key` and `Tag.N.Value` pairs. An empty key or value is none (the SDK
/// sends `Tag.1.Value=` for a tag given with an empty value: "has the key"), and
/// an entry with neither is no filter.
fn tags(params: &BTreeMap<String, String>) -> Vec<(Option<String>, Option<String>)> {
    let mut by_n: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
    for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
        let Some(rest) = k.strip_prefix("Tag.") else {
            continue;
        };
        let Some((n, part)) = rest.split_once('.') else {
            continue;
        };
        let Ok(n) = n.parse() else { continue };
        let entry = by_n.entry(n).or_default();
        match part {
            "Key" => entry.0 = Some(v.clone()),
            "Value" => entry.1 = Some(v.clone()),
            _ => {}
        }
    }
    by_n.into_values()
        .filter(|(key, value)| key.is_some() || value.is_some())
        .collect()
}

/// The instance fields filters look at.
#[derive(Clone, Copy, Debug)]
pub enum Field {
    Id,
    Name,
    Status,
    GroupId,
    GroupName,
    AuthorizedUserId,
    RegionId,
    ChargeType,
    KeyPairId,
    OfficeSiteId,
    NetworkInterfaceIp,
    QosRuleId,
    AppManagePolicyId,
}

/// An instance as filters see it: the typed record the generator builds, or the
/// raw JSON object of an instance changed by churn or by a test (which may hold
/// anything, so a field of the wrong type simply matches nothing).
pub trait Record {
    fn field(&self, f: Field) -> Option<&str>;
    fn has_tag(&self, key: Option<&str>, value: Option<&str>) -> bool;
}

impl Record for InstanceModel {
    fn field(&self, f: Field) -> Option<&str> {
        let v = match f {
            Field::Id => &self.android_instance_id,
            Field::Name => &self.android_instance_name,
            Field::Status => &self.android_instance_status,
            Field::GroupId => &self.android_instance_group_id,
            Field::GroupName => &self.android_instance_group_name,
            Field::AuthorizedUserId => &self.authorized_user_id,
            Field::RegionId => &self.region_id,
            Field::ChargeType => &self.charge_type,
            Field::KeyPairId => &self.key_pair_id,
            Field::OfficeSiteId => &self.office_site_id,
            Field::NetworkInterfaceIp => &self.network_interface_ip,
            Field::QosRuleId => &self.qos_rule_id,
            Field::AppManagePolicyId => {
                return self
                    .app_manage_policy
                    .as_ref()?
                    .app_manage_policy_id
                    .as_deref()
            }
        };
        v.as_deref()
    }

    fn has_tag(&self, key: Option<&str>, value: Option<&str>) -> bool {
        self.tags.iter().flatten().any(|t| {
            key.is_none_or(|k| t.key.as_deref() == Some(k))
                && value.is_none_or(|v| t.value.as_deref() == Some(v))
        })
    }
}

impl Record for Map<String, Value> {
    fn field(&self, f: Field) -> Option<&str> {
        let name = match f {
            Field::Id => "AndroidInstanceId",
            Field::Name => "AndroidInstanceName",
            Field::Status => "AndroidInstanceStatus",
            Field::GroupId => "AndroidInstanceGroupId",
            Field::GroupName => "AndroidInstanceGroupName",
            Field::AuthorizedUserId => "AuthorizedUserId",
            Field::RegionId => "RegionId",
            Field::ChargeType => "ChargeType",
            Field::KeyPairId => "KeyPairId",
            Field::OfficeSiteId => "OfficeSiteId",
            Field::NetworkInterfaceIp => "NetworkInterfaceIp",
            Field::QosRuleId => "QosRuleId",
            Field::AppManagePolicyId => {
                return self
                    .get("AppManagePolicy")?
                    .get("AppManagePolicyId")?
                    .as_str()
            }
        };
        self.get(name)?.as_str()
    }

    fn has_tag(&self, key: Option<&str>, value: Option<&str>) -> bool {
        let Some(tags) = self.get("Tags").and_then(Value::as_array) else {
            return false;
        };
        tags.iter().any(|t| {
            key.is_none_or(|k| t.get("Key").and_then(Value::as_str) == Some(k))
                && value.is_none_or(|v| t.get("Value").and_then(Value::as_str) == Some(v))
        })
    }
}

impl Filter {
    /// True when only the filters the generator can answer cheaply are set
    /// (region, billing, status, ids), so most instances are decided without
    /// building them.
    pub fn needs_full_record(&self) -> bool {
        let cheap_only = Filter {
            ids: self.ids.clone(),
            biz_region_id: self.biz_region_id.clone(),
            charge_type: self.charge_type.clone(),
            status: self.status.clone(),
            ignored: self.ignored.clone(),
            ..Filter::default()
        };
        *self != cheap_only
    }

    pub fn is_empty(&self) -> bool {
        *self
            == Filter {
                ignored: self.ignored.clone(),
                ..Filter::default()
            }
    }

    pub fn matches(&self, r: &impl Record) -> bool {
        let eq =
            |want: &Option<String>, f: Field| want.as_deref().is_none_or(|w| r.field(f) == Some(w));
        let any_of = |want: &[String], f: Field| {
            want.is_empty() || r.field(f).is_some_and(|v| want.iter().any(|w| w == v))
        };
        any_of(&self.ids, Field::Id)
            && eq(&self.name, Field::Name)
            && eq(&self.app_manage_policy_id, Field::AppManagePolicyId)
            && eq(&self.authorized_user_id, Field::AuthorizedUserId)
            && eq(&self.biz_region_id, Field::RegionId)
            && eq(&self.charge_type, Field::ChargeType)
            && eq(&self.group_id, Field::GroupId)
            && any_of(&self.group_ids, Field::GroupId)
            && eq(&self.group_name, Field::GroupName)
            && eq(&self.key_pair_id, Field::KeyPairId)
            && any_of(&self.office_site_ids, Field::OfficeSiteId)
            && eq(&self.private_ip, Field::NetworkInterfaceIp)
            && any_of(&self.qos_rule_ids, Field::QosRuleId)
            && eq(&self.status, Field::Status)
            && self
                .tags
                .iter()
                .all(|(k, v)| r.has_tag(k.as_deref(), v.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::Tag;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn arrays_and_tags_are_unflattened_in_numeric_order() {
        let q = Query::parse(&params(&[
            ("AndroidInstanceIds.10", "j"),
            ("AndroidInstanceIds.2", "b"),
            ("AndroidInstanceIds.1", "a"),
            ("Tag.1.Key", "env"),
            ("Tag.1.Value", "prod"),
            ("Tag.2.Key", "team"),
        ]))
        .unwrap();
        assert_eq!(q.filter.ids, ["a", "b", "j"]);
        assert_eq!(
            q.filter.tags,
            [
                (Some("env".into()), Some("prod".into())),
                (Some("team".into()), None)
            ]
        );
        assert_eq!(q.max_results, 100);
        assert_eq!(
            q.sort,
            Sort {
                key: SortKey::CreationTime,
                descending: true
            }
        );
    }

    #[test]
    fn max_results_must_be_an_integer_from_1_to_100() {
        for bad in ["0", "101", "abc", "-1", "1.5", ""] {
            let err = Query::parse(&params(&[("MaxResults", bad)])).unwrap_err();
            assert!(err.0.contains("MaxResults"), "{bad}");
        }
        for good in ["1", "37", "100"] {
            assert!(Query::parse(&params(&[("MaxResults", good)])).is_ok());
        }
    }

    #[test]
    fn empty_values_filter_nothing() {
        let q = Query::parse(&params(&[
            ("Status", ""),
            ("NextToken", ""),
            ("BizRegionId", ""),
            ("AndroidInstanceIds.1", ""),
            ("Tag.2.Key", ""),
        ]))
        .unwrap();
        assert!(q.filter.is_empty());
        assert_eq!(q.next_token, None);
        // A tag given with an empty value is a test of its key alone.
        let q = Query::parse(&params(&[
            ("Tag.1.Key", "env"),
            ("Tag.1.Value", ""),
            ("AndroidInstanceIds.1", "acp-1"),
            ("AndroidInstanceIds.2", ""),
        ]))
        .unwrap();
        assert_eq!(q.filter.tags, [(Some("env".into()), None)]);
        assert_eq!(q.filter.ids, ["acp-1"]);
    }

    #[test]
    fn sort_values_are_checked() {
        assert!(Query::parse(&params(&[("SortKey", "Name")])).is_err());
        assert!(Query::parse(&params(&[("SortType", "asc")])).is_err());
        let q = Query::parse(&params(&[("SortKey", "ExpiredTime"), ("SortType", "ASC")])).unwrap();
        assert_eq!(q.sort.key, SortKey::ExpiredTime);
        assert!(!q.sort.descending);
    }

    #[test]
    fn fingerprint_ignores_page_size_and_cursor_only() {
        let a = Query::parse(&params(&[("Status", "RUNNING"), ("MaxResults", "5")])).unwrap();
        let b = Query::parse(&params(&[("Status", "RUNNING"), ("NextToken", "x")])).unwrap();
        let c = Query::parse(&params(&[("Status", "STOPPED")])).unwrap();
        let d = Query::parse(&params(&[("Status", "RUNNING"), ("SortType", "ASC")])).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), d.fingerprint());
    }

    #[test]
    fn typed_and_raw_records_match_alike() {
        let model = InstanceModel {
            android_instance_id: Some("acp-1".into()),
            android_instance_status: Some("RUNNING".into()),
            tags: Some(vec![Tag::new("env", "prod"), Tag::new("team", "qa")]),
            ..Default::default()
        };
        let raw = serde_json::to_value(&model)
            .unwrap()
            .as_object()
            .unwrap()
            .clone();
        let cases = [
            (&[("Status", "RUNNING")][..], true),
            (&[("Status", "STOPPED")][..], false),
            (
                &[
                    ("Tag.1.Key", "env"),
                    ("Tag.1.Value", "prod"),
                    ("Tag.2.Key", "team"),
                ][..],
                true,
            ),
            (&[("Tag.1.Key", "env"), ("Tag.1.Value", "dev")][..], false),
            (
                &[
                    ("AndroidInstanceIds.1", "acp-2"),
                    ("AndroidInstanceIds.2", "acp-1"),
                ][..],
                true,
            ),
            (&[("KeyPairId", "kp-1")][..], false),
        ];
        for (p, want) in cases {
            let q = Query::parse(&params(p)).unwrap();
            assert_eq!(q.filter.matches(&model), want, "{p:?}");
            assert_eq!(q.filter.matches(&raw), want, "{p:?} raw");
        }
    }
}
