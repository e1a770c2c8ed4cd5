//! The seeded fleet generator: instance number `index` of the fleet `seed` is a pure
//! function of `(seed, index)`, so a fleet of a million instances costs no memory
//! until someone changes an instance. A few attributes (id, region, billing,
//! creation and expiry time) come from their own cheap hashes, so filters and sort
//! keys can be evaluated without building the whole 53-field record.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::api::model::{AppManagePolicy, Disk, DisplayConfig, InstanceModel, PhoneDataInfo, Tag};

/// The six business regions the docs enumerate, with the names the console shows.
pub const DEFAULT_REGIONS: [(&str, &str); 6] = [
    ("cn-hangzhou", "China (Hangzhou)"),
    ("cn-shanghai", "China (Shanghai)"),
    ("cn-shenzhen", "China (Shenzhen)"),
    ("cn-beijing", "China (Beijing)"),
    ("cn-hongkong", "China (Hong Kong)"),
    ("ap-southeast-1", "Singapore"),
];

pub fn region_name(region: &str) -> String {
    DEFAULT_REGIONS
        .iter()
        .find(|(id, _)| *id == region)
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| region.to_owned())
}

/// The base fleet's creation times are spread over these four years; instances
/// created later by churn continue the same schedule, so creation time always
/// grows with the index (the default sort is then plain index order).
const CREATED_FROM: i64 = 1_622_505_600; // 2021-06-01T00:00:00Z
const CREATED_SPAN_SECS: i64 = 4 * 365 * 86_400;

/// splitmix64's finaliser: a bijection on u64, so distinct inputs never collide.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Stream `salt` of instance `index`: independent hashes for independent attributes.
fn hash(seed: u64, index: u64, salt: u64) -> u64 {
    mix(mix(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_add(index))
}

/// A tiny deterministic RNG (splitmix64). Hand-rolled so that the same seed gives
/// the same fleet whatever version of `rand` is in the lock file.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `items` are `(value, weight)`.
    pub fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u64 = items.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut roll = self.below(total);
        for (item, w) in items {
            if roll < u64::from(*w) {
                return item;
            }
            roll -= u64::from(*w);
        }
        &items[items.len() - 1].0
    }

    pub fn alnum(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..len)
            .map(|_| CHARS[self.below(36) as usize] as char)
            .collect()
    }
}

fn base36(mut n: u64, width: usize) -> String {
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = CHARS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).expect("ascii")
}

/// The fleet's shape: what `(seed, index)` is interpreted against.
#[derive(Clone, Debug)]
pub struct Generator {
    pub seed: u64,
    pub regions: Vec<String>,
    /// Seconds between consecutive creation times.
    spacing: i64,
}

/// What can be known about an instance without generating it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cheap {
    pub region: usize,
    pub prepaid: bool,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds, `None` for pay-as-you-go instances (they never expire).
    pub expires: Option<i64>,
    /// Cheap too, because `Status` is the filter crawlers use most after the region.
    pub status: &'static str,
}

/// Lifecycle states and how common they are in a live fleet.
const STATUS_WEIGHTS: [(&str, u32); 14] = [
    ("RUNNING", 850),
    ("STOPPED", 80),
    ("STARTING", 10),
    ("STOPPING", 8),
    ("REBOOTING", 8),
    ("CREATING", 6),
    ("RESETTING", 4),
    ("BACKUPING", 5),
    ("BACKUP_FAILED", 3),
    ("RECOVERING", 3),
    ("RECOVER_FAILED", 2),
    ("FAILED", 5),
    ("UNAVAILABLE", 4),
    ("DELETING", 2),
];

impl Generator {
    pub fn new(seed: u64, regions: Vec<String>, base_instances: usize) -> Self {
        let spacing = (CREATED_SPAN_SECS / base_instances.max(1) as i64).max(1);
        Generator {
            seed,
            regions,
            spacing,
        }
    }

    /// `acp-` + 17 lowercase alphanumerics: 13 from a bijection of the index (so ids
    /// are unique by construction), 4 from another hash (so they look random).
    pub fn id(&self, index: u64) -> String {
        let unique = mix(index ^ mix(self.seed));
        let tail = hash(self.seed, index, 1) % 36u64.pow(4);
        format!("acp-{}{}", base36(unique, 13), base36(tail, 4))
    }

    pub fn cheap(&self, index: u64) -> Cheap {
        let h = hash(self.seed, index, 2);
        let region = (h % self.regions.len().max(1) as u64) as usize;
        let prepaid = (h >> 20) % 10 < 6;
        let jitter = ((h >> 32) % self.spacing as u64) as i64;
        let created = CREATED_FROM + index as i64 * self.spacing + jitter;
        let expires = prepaid.then(|| {
            let months = 1 + ((h >> 40) % 48) as i64;
            created + months * 30 * 86_400 + ((h >> 50) % 86_400) as i64
        });
        let status = *Rng::new(hash(self.seed, index, 5)).weighted(&STATUS_WEIGHTS);
        Cheap {
            region,
            prepaid,
            created,
            expires,
            status,
        }
    }

    /// The whole record of instance `index`.
    pub fn instance(&self, index: u64) -> InstanceModel {
        let cheap = self.cheap(index);
        let region = self
            .regions
            .get(cheap.region)
            .cloned()
            .unwrap_or_else(|| "cn-hangzhou".to_owned());
        let mut rng = Rng::new(hash(self.seed, index, 3));
        let group = self.group(cheap.region, &region, rng.below(GROUPS_PER_REGION));
        let status = cheap.status;
        let seq = index % 100_000;
        let created = utc(cheap.created);
        let modified = created + Duration::seconds(rng.below(200 * 86_400) as i64);
        let user = rng
            .chance(0.55)
            .then(|| format!("{}{}", rng.pick(USERS), rng.below(90) + 10));
        let public_ip = rng.chance(0.12).then(|| {
            format!(
                "47.{}.{}.{}",
                90 + rng.below(30),
                rng.below(256),
                1 + rng.below(254)
            )
        });
        let session = match status {
            "RUNNING" => *rng.weighted(&[("connect", 6), ("disconnect", 3), ("", 1)]),
            _ => "",
        };
        let rate = if status == "BACKUPING" || status == "RECOVERING" {
            rng.below(100) as i32
        } else {
            100
        };
        let error_code = match status {
            "BACKUP_FAILED" | "RECOVER_FAILED" => {
                *rng.pick(&["FilePathNotFound", "OssQuotaExceeded", "InternalError"])
            }
            _ => "",
        };
        let matrix = rng.chance(0.2);
        InstanceModel {
            android_instance_group_id: Some(group.id.clone()),
            android_instance_group_name: Some(group.name.clone()),
            android_instance_id: Some(self.id(index)),
            android_instance_name: Some(format!("{}-{seq:05}", group.name)),
            android_instance_status: Some(status.to_owned()),
            app_instance_group_id: Some(group.app_instance_group_id.clone()),
            app_instance_id: Some(format!("ai-{}", rng.alnum(17))),
            app_manage_policy: Some(AppManagePolicy {
                app_manage_policy_id: Some(group.policy_id.clone()),
                app_manage_policy_name: Some(group.policy_name.clone()),
            }),
            authorized_user_id: Some(user.clone().unwrap_or_default()),
            bandwidth_package_id: Some(group.bandwidth_package_id.clone()),
            bandwidth_package_type: Some("cbwp_ecd".to_owned()),
            bind_user_id: Some(user.unwrap_or_default()),
            biz_image_type: Some(if rng.chance(0.02) { "null" } else { "" }.to_owned()),
            biz_tags: Some(if rng.chance(0.3) {
                vec![Tag::new("releaseFlag", *rng.pick(&["on", "off"]))]
            } else {
                Vec::new()
            }),
            channel: Some(if rng.chance(0.1) { "CLOUDPHONE" } else { "" }.to_owned()),
            charge_type: Some(if cheap.prepaid { "PrePaid" } else { "PostPaid" }.to_owned()),
            cpu: Some(group.spec.1.to_owned()),
            disks: Some(disks(&mut rng)),
            display_config: Some(group.display.clone()),
            down_bandwidth_limit: Some(*rng.pick(&[10, 30, 50, 100])),
            error_code: Some(error_code.to_owned()),
            gmt_create: Some(created.format("%Y-%m-%d %H:%M:%S").to_string()),
            gmt_expired: Some(
                cheap
                    .expires
                    .map(|e| utc(e).format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default(),
            ),
            gmt_modified: Some(modified.format("%Y-%m-%d %H:%M:%S").to_string()),
            image_id: Some(group.image_id.clone()),
            image_version: Some(group.image_version.clone()),
            instance_type: Some(group.spec.0.to_owned()),
            internet_status: Some(
                (*rng.weighted(&[
                    ("AVAILABLE", 95),
                    ("UPDATING", 2),
                    ("UNAVAILABLE", 2),
                    ("INIT", 1),
                ]))
                .to_owned(),
            ),
            key_pair_id: Some(group.key_pair_id.clone()),
            memory: Some(group.spec.2),
            // The group's subnet is a /24 (three octets); the host part completes it.
            network_interface_ip: Some(format!("{}.{}", group.subnet, 2 + rng.below(252))),
            network_interface_ipv6_address: Some(
                if rng.chance(0.01) { "null" } else { "" }.to_owned(),
            ),
            network_type: Some("network_pro_ecd".to_owned()),
            office_site_id: Some(group.office_site_id.clone()),
            package_id: Some(String::new()),
            persistent_app_instance_id: Some(if session == "connect" {
                format!("p-{}", rng.alnum(14))
            } else {
                String::new()
            }),
            phone_data_info: Some(if matrix {
                PhoneDataInfo {
                    phone_data_id: Some(format!("pd-{}", rng.alnum(15))),
                    phone_data_volume: Some(*rng.pick(&[20, 50, 100])),
                }
            } else {
                PhoneDataInfo {
                    phone_data_id: Some(String::new()),
                    phone_data_volume: Some(0),
                }
            }),
            policy_group_id: Some(group.policy_group_id.clone()),
            public_ip_address: Some(public_ip.unwrap_or_default()),
            public_ipv6_address: Some(String::new()),
            qos_rule_id: Some(group.qos_rule_id.clone()),
            rate: Some(rate),
            region_id: Some(region.clone()),
            rendering_type: Some(group.rendering.to_owned()),
            server_status: Some(if matrix { "RUNNING" } else { "" }.to_owned()),
            server_type: Some(if matrix { "cpm.gx7.10xlarge" } else { "" }.to_owned()),
            session_status: Some(session.to_owned()),
            stream_mode: Some(i32::from(matrix)),
            system_version: Some(group.system_version.to_owned()),
            tags: Some(tags(&mut rng)),
            up_bandwidth_limit: Some(*rng.pick(&[5, 10, 20])),
            v_switch_id: Some(group.v_switch_id.clone()),
            zone_id: Some(group.zone_id.clone()),
        }
    }

    /// Groups are shared by many instances: a group fixes the spec, image, network
    /// and policies, as real instance groups do.
    fn group(&self, region_index: usize, region: &str, g: u64) -> Group {
        let mut rng = Rng::new(hash(self.seed, region_index as u64 * 1000 + g, 4));
        let spec = *rng.pick(&SPECS);
        let purpose = rng.pick(&["game", "qa", "shop", "live", "social", "ads", "farm"]);
        let env = rng.pick(&["prod", "staging", "test"]);
        let zones = zones(region);
        let (width, height, dpi) =
            *rng.pick(&[(720, 1280, 320), (1080, 1920, 480), (1080, 2400, 440)]);
        let has_qos = rng.chance(0.3);
        let has_key = rng.chance(0.6);
        Group {
            id: format!("ag-{}", rng.alnum(16)),
            name: format!("{purpose}-{env}-{g:02}"),
            app_instance_group_id: format!("aig-{}", rng.alnum(18)),
            spec,
            display: DisplayConfig {
                dpi: Some(dpi),
                fps: Some(*rng.pick(&[30, 60])),
                lock_resolution: Some(rng.pick(&["on", "off"]).to_string()),
                resolution_height: Some(height),
                resolution_width: Some(width),
            },
            image_id: format!("imgc-{}", rng.alnum(17)),
            image_version: format!(
                "3.{}.{}.{}",
                4 + rng.below(3),
                rng.below(10),
                800 + rng.below(200)
            ),
            system_version: rng.pick::<&str>(&["Android 11", "Android 12", "Android 14"]),
            office_site_id: format!("{region}+dir-{:010}", rng.below(10_000_000_000)),
            subnet: format!(
                "{}.{}",
                rng.pick(&["10.0", "172.16", "192.168"]),
                rng.below(4)
            ),
            zone_id: format!("{region}-{}", rng.pick(zones)),
            v_switch_id: format!("vsw-{}", rng.alnum(22)),
            key_pair_id: if has_key {
                format!("kp-{}", rng.alnum(15))
            } else {
                String::new()
            },
            qos_rule_id: if has_qos {
                format!("qos-{}", rng.alnum(15))
            } else {
                String::new()
            },
            policy_id: format!("amp-{}", rng.alnum(15)),
            policy_name: format!("{purpose}-apps"),
            policy_group_id: format!("pg-{}", rng.alnum(15)),
            bandwidth_package_id: format!("np-{}", rng.alnum(16)),
            rendering: rng.pick::<&str>(&["local", "remote"]),
        }
    }

    /// Every group id of a region, in order (for tests and filters).
    pub fn group_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (ri, region) in self.regions.iter().enumerate() {
            for g in 0..GROUPS_PER_REGION {
                out.push(self.group(ri, region, g).id);
            }
        }
        out
    }
}

const GROUPS_PER_REGION: u64 = 12;

/// (InstanceType, Cpu, Memory in MiB).
const SPECS: [(&str, &str, i32); 5] = [
    ("acp.basic.small", "2", 4096),
    ("acp.basic.middle", "4", 8192),
    ("acp.basic.large", "8", 16384),
    ("acp.perf.large", "8", 32768),
    ("acp.perf.xlarge", "16", 65536),
];

const USERS: &[&str] = &[
    "alice",
    "bob",
    "chen.wei",
    "li.na",
    "wang.fang",
    "zhang.min",
    "kumar",
    "sato",
    "nguyen",
    "maria",
    "omar",
    "liu.yang",
];

struct Group {
    id: String,
    name: String,
    app_instance_group_id: String,
    spec: (&'static str, &'static str, i32),
    display: DisplayConfig,
    image_id: String,
    image_version: String,
    system_version: &'static str,
    office_site_id: String,
    subnet: String,
    zone_id: String,
    v_switch_id: String,
    key_pair_id: String,
    qos_rule_id: String,
    policy_id: String,
    policy_name: String,
    policy_group_id: String,
    bandwidth_package_id: String,
    rendering: &'static str,
}

fn zones(region: &str) -> &'static [&'static str] {
    match region {
        "cn-hangzhou" => &["h", "i", "j", "k"],
        "cn-shanghai" => &["l", "m", "n"],
        "cn-shenzhen" => &["c", "d", "e"],
        "cn-beijing" => &["h", "i", "k", "l"],
        "cn-hongkong" => &["b", "c", "d"],
        _ => &["a", "b", "c"],
    }
}

fn disks(rng: &mut Rng) -> Vec<Disk> {
    let mut out = vec![Disk {
        disk_size: Some(*rng.pick(&[32, 64])),
        disk_type: Some("SYSTEM".to_owned()),
    }];
    for _ in 0..rng.below(3) {
        out.push(Disk {
            disk_size: Some(*rng.pick(&[32, 64, 128, 256])),
            disk_type: Some("DATA".to_owned()),
        });
    }
    out
}

/// Tag keys and the values they take.
pub const TAG_POOL: &[(&str, &[&str])] = &[
    ("env", &["prod", "staging", "dev", "test"]),
    (
        "team",
        &["growth", "infra", "games", "qa", "payments", "ads"],
    ),
    (
        "app",
        &[
            "shop-bot",
            "game-runner",
            "qa-farm",
            "ad-check",
            "live-stream",
        ],
    ),
    (
        "owner",
        &["alice", "bob", "chen.wei", "li.na", "kumar", "maria"],
    ),
    (
        "cost-center",
        &["cc-1001", "cc-1002", "cc-2040", "cc-3100", "cc-4512"],
    ),
    ("project", &["atlas", "hermes", "nova", "orion"]),
    ("tier", &["gold", "silver", "bronze"]),
    ("batch", &["2024-03", "2024-09", "2025-01", "2025-06"]),
    ("purpose", &["regression", "load-test", "demo", "customer"]),
];

fn tags(rng: &mut Rng) -> Vec<Tag> {
    let count = *rng.weighted(&[
        (0usize, 10),
        (1, 15),
        (2, 25),
        (3, 20),
        (4, 12),
        (5, 8),
        (6, 5),
        (7, 3),
        (8, 2),
    ]);
    let mut keys: Vec<usize> = (0..TAG_POOL.len()).collect();
    // Partial Fisher-Yates: the first `count` keys, distinct.
    for i in 0..count {
        let j = i + rng.below((keys.len() - i) as u64) as usize;
        keys.swap(i, j);
    }
    let mut chosen: Vec<usize> = keys[..count].to_vec();
    chosen.sort_unstable();
    chosen
        .into_iter()
        .map(|k| {
            let (key, values) = TAG_POOL[k];
            Tag::new(key, *rng.pick(values))
        })
        .collect()
}

pub fn utc(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator() -> Generator {
        let regions = DEFAULT_REGIONS
            .iter()
            .map(|(r, _)| (*r).to_owned())
            .collect();
        Generator::new(7, regions, 1000)
    }

    #[test]
    fn same_seed_and_index_give_the_same_instance() {
        let (a, b) = (generator(), generator());
        for i in [0, 1, 999, 5000] {
            assert_eq!(a.instance(i), b.instance(i));
        }
        let other = Generator::new(8, a.regions.clone(), 1000);
        assert_ne!(a.instance(3), other.instance(3));
    }

    #[test]
    fn every_field_is_filled_with_the_documented_formats() {
        let g = generator();
        for i in 0..200 {
            let v = serde_json::to_value(g.instance(i)).unwrap();
            let obj = v.as_object().unwrap();
            assert_eq!(obj.len(), 53, "instance {i}");
            let id = obj["AndroidInstanceId"].as_str().unwrap();
            assert_eq!(id.len(), 4 + 17);
            assert!(id[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
            assert!(obj["Cpu"].is_string());
            assert!(obj["Memory"].is_number());
            assert_eq!(obj["GmtCreate"].as_str().unwrap().len(), 19);
            let disks = obj["Disks"].as_array().unwrap();
            assert!((1..=3).contains(&disks.len()));
            assert_eq!(disks[0]["DiskType"], "SYSTEM");
            assert!(obj["Tags"].as_array().unwrap().len() <= 8);
            let expired = obj["GmtExpired"].as_str().unwrap();
            match obj["ChargeType"].as_str().unwrap() {
                "PrePaid" => assert!(expired.ends_with('Z')),
                _ => assert_eq!(expired, ""),
            }
        }
    }

    #[test]
    fn ids_are_unique_and_creation_time_grows_with_the_index() {
        let g = generator();
        let ids: std::collections::HashSet<String> = (0..5000).map(|i| g.id(i)).collect();
        assert_eq!(ids.len(), 5000);
        for i in 0..4999 {
            assert!(g.cheap(i).created < g.cheap(i + 1).created);
        }
    }

    #[test]
    fn cheap_attributes_agree_with_the_full_record() {
        let g = generator();
        for i in 0..100 {
            let (c, m) = (g.cheap(i), g.instance(i));
            assert_eq!(m.region_id.as_deref(), Some(g.regions[c.region].as_str()));
            assert_eq!(m.charge_type.as_deref() == Some("PrePaid"), c.prepaid);
            assert_eq!(m.android_instance_id, Some(g.id(i)));
            assert_eq!(m.android_instance_status.as_deref(), Some(c.status));
        }
    }
}
