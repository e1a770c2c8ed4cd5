-- One row per instance ever seen, holding its latest known state: one typed
-- column per scalar API field (names per the SQL interface), the tags and disks as
-- jsonb for BI tools that do not join, and the API record untouched in raw so a
-- field the API adds later is never lost.
CREATE TABLE ecp.instances (
    instance_id                    text PRIMARY KEY,
    instance_name                  text,
    status                         text,
    instance_group_id              text,
    instance_group_name            text,
    app_instance_group_id          text,
    app_instance_id                text,
    app_manage_policy_id           text,
    app_manage_policy_name         text,
    authorized_user_id             text,
    bandwidth_package_id           text,
    bandwidth_package_type         text,
    bind_user_id                   text,
    biz_image_type                 text,
    channel                        text,
    charge_type                    text,
    cpu_cores                      integer,
    memory_mib                     integer,
    display_dpi                    integer,
    display_fps                    integer,
    display_resolution_width       integer,
    display_resolution_height      integer,
    display_lock_resolution        boolean,
    down_bandwidth_limit_mbps      integer,
    up_bandwidth_limit_mbps        integer,
    error_code                     text,
    created_at                     timestamptz,
    modified_at                    timestamptz,
    expires_at                     timestamptz,
    image_id                       text,
    image_version                  text,
    instance_type                  text,
    internet_status                text,
    key_pair_id                    text,
    network_interface_ip           inet,
    network_interface_ipv6_address inet,
    network_type                   text,
    office_site_id                 text,
    package_id                     text,
    persistent_app_instance_id     text,
    phone_data_id                  text,
    phone_data_volume_gib          integer,
    policy_group_id                text,
    public_ip_address              inet,
    public_ipv6_address            inet,
    qos_rule_id                    text,
    rate                           integer,
    region_id                      text,
    rendering_type                 text,
    server_status                  text,
    server_type                    text,
    session_status                 text,
    stream_mode                    integer,
    system_version                 text,
    vswitch_id                     text,
    zone_id                        text,
    tags                           jsonb NOT NULL DEFAULT '{}',
    biz_tags                       jsonb NOT NULL DEFAULT '{}',
    disks                          jsonb NOT NULL DEFAULT '[]',
    raw                            jsonb NOT NULL,
    source                         text NOT NULL DEFAULT 'default',
    biz_region_id                  text NOT NULL,
    version                        integer NOT NULL,
    first_seen_at                  timestamptz NOT NULL,
    last_changed_at                timestamptz NOT NULL,
    last_seen_at                   timestamptz NOT NULL,
    deleted_at                     timestamptz,
    last_run_id                    bigint REFERENCES ecp.sync_runs (run_id)
);

COMMENT ON TABLE ecp.instances IS 'One row per instance ever seen, with its latest known state. Use ecp.current_instances for the ones that still exist.';
COMMENT ON COLUMN ecp.instances.instance_id IS 'Instance ID (API AndroidInstanceId).';
COMMENT ON COLUMN ecp.instances.instance_name IS 'Instance name (API AndroidInstanceName).';
COMMENT ON COLUMN ecp.instances.status IS 'Lifecycle state as the API reports it, e.g. RUNNING (API AndroidInstanceStatus).';
COMMENT ON COLUMN ecp.instances.instance_group_id IS 'Owning instance group ID (API AndroidInstanceGroupId).';
COMMENT ON COLUMN ecp.instances.instance_group_name IS 'Owning instance group name (API AndroidInstanceGroupName).';
COMMENT ON COLUMN ecp.instances.app_instance_group_id IS 'Delivery group ID (API AppInstanceGroupId).';
COMMENT ON COLUMN ecp.instances.app_instance_id IS 'Physical instance ID (API AppInstanceId).';
COMMENT ON COLUMN ecp.instances.app_manage_policy_id IS 'Bound app allow/deny policy ID (API AppManagePolicy.AppManagePolicyId).';
COMMENT ON COLUMN ecp.instances.app_manage_policy_name IS 'Bound app allow/deny policy name (API AppManagePolicy.AppManagePolicyName).';
COMMENT ON COLUMN ecp.instances.authorized_user_id IS 'User the phone is assigned to (API AuthorizedUserId).';
COMMENT ON COLUMN ecp.instances.bandwidth_package_id IS 'Bandwidth plan ID (API BandwidthPackageId).';
COMMENT ON COLUMN ecp.instances.bandwidth_package_type IS 'Bandwidth plan type (API BandwidthPackageType).';
COMMENT ON COLUMN ecp.instances.bind_user_id IS 'User the phone is bound to (API BindUserId).';
COMMENT ON COLUMN ecp.instances.biz_image_type IS 'Image type (API BizImageType).';
COMMENT ON COLUMN ecp.instances.channel IS 'Order source, e.g. CLOUDPHONE (API Channel).';
COMMENT ON COLUMN ecp.instances.charge_type IS 'PrePaid or PostPaid (API ChargeType).';
COMMENT ON COLUMN ecp.instances.cpu_cores IS 'vCPU count (API Cpu, sent as a string).';
COMMENT ON COLUMN ecp.instances.memory_mib IS 'Memory size in MiB (API Memory).';
COMMENT ON COLUMN ecp.instances.display_dpi IS 'Screen DPI (API DisplayConfig.Dpi).';
COMMENT ON COLUMN ecp.instances.display_fps IS 'Screen frame rate (API DisplayConfig.Fps).';
COMMENT ON COLUMN ecp.instances.display_resolution_width IS 'Screen width in pixels (API DisplayConfig.ResolutionWidth).';
COMMENT ON COLUMN ecp.instances.display_resolution_height IS 'Screen height in pixels (API DisplayConfig.ResolutionHeight).';
COMMENT ON COLUMN ecp.instances.display_lock_resolution IS 'Whether the resolution is locked (API DisplayConfig.LockResolution on/off).';
COMMENT ON COLUMN ecp.instances.down_bandwidth_limit_mbps IS 'Downstream bandwidth cap in Mbit/s (API DownBandwidthLimit).';
COMMENT ON COLUMN ecp.instances.up_bandwidth_limit_mbps IS 'Upstream bandwidth cap in Mbit/s (API UpBandwidthLimit).';
COMMENT ON COLUMN ecp.instances.error_code IS 'Reason of the last backup/restore failure (API ErrorCode).';
COMMENT ON COLUMN ecp.instances.created_at IS 'Creation time (API GmtCreate, read as UTC unless configured otherwise; original text in raw).';
COMMENT ON COLUMN ecp.instances.modified_at IS 'Last modification time (API GmtModified, read like created_at). Volatile by default.';
COMMENT ON COLUMN ecp.instances.expires_at IS 'Subscription expiry (API GmtExpired).';
COMMENT ON COLUMN ecp.instances.image_id IS 'Image ID (API ImageId).';
COMMENT ON COLUMN ecp.instances.image_version IS 'Image version (API ImageVersion).';
COMMENT ON COLUMN ecp.instances.instance_type IS 'Instance spec, e.g. acp.basic.small (API InstanceType).';
COMMENT ON COLUMN ecp.instances.internet_status IS 'Network status INIT/UPDATING/AVAILABLE/UNAVAILABLE (API InternetStatus).';
COMMENT ON COLUMN ecp.instances.key_pair_id IS 'Bound key pair (API KeyPairId).';
COMMENT ON COLUMN ecp.instances.network_interface_ip IS 'NIC IPv4 address (API NetworkInterfaceIp).';
COMMENT ON COLUMN ecp.instances.network_interface_ipv6_address IS 'NIC IPv6 address (API NetworkInterfaceIpv6Address).';
COMMENT ON COLUMN ecp.instances.network_type IS 'Network type (API NetworkType).';
COMMENT ON COLUMN ecp.instances.office_site_id IS 'Network ID (API OfficeSiteId).';
COMMENT ON COLUMN ecp.instances.package_id IS 'AI cloud phone package ID (API PackageId).';
COMMENT ON COLUMN ecp.instances.persistent_app_instance_id IS 'Persistent session ID (API PersistentAppInstanceId).';
COMMENT ON COLUMN ecp.instances.phone_data_id IS 'Independent device storage ID (API PhoneDataInfo.PhoneDataId).';
COMMENT ON COLUMN ecp.instances.phone_data_volume_gib IS 'Independent device storage size in GiB (API PhoneDataInfo.PhoneDataVolume).';
COMMENT ON COLUMN ecp.instances.policy_group_id IS 'Policy group ID (API PolicyGroupId).';
COMMENT ON COLUMN ecp.instances.public_ip_address IS 'Public IPv4 address (API PublicIpAddress).';
COMMENT ON COLUMN ecp.instances.public_ipv6_address IS 'Public IPv6 address (API PublicIpv6Address).';
COMMENT ON COLUMN ecp.instances.qos_rule_id IS 'Premium bandwidth throttling rule (API QosRuleId).';
COMMENT ON COLUMN ecp.instances.rate IS 'Backup/restore progress in percent (API Rate). Volatile by default.';
COMMENT ON COLUMN ecp.instances.region_id IS 'Region of the instance (API RegionId).';
COMMENT ON COLUMN ecp.instances.rendering_type IS 'Rendering type (API RenderingType).';
COMMENT ON COLUMN ecp.instances.server_status IS 'Matrix status (API ServerStatus).';
COMMENT ON COLUMN ecp.instances.server_type IS 'Matrix spec (API ServerType).';
COMMENT ON COLUMN ecp.instances.session_status IS 'Streaming session state (API SessionStatus). Volatile by default.';
COMMENT ON COLUMN ecp.instances.stream_mode IS 'Matrix streaming mode (API StreamMode).';
COMMENT ON COLUMN ecp.instances.system_version IS 'Android version (API SystemVersion).';
COMMENT ON COLUMN ecp.instances.vswitch_id IS 'VPC vSwitch ID (API VSwitchId).';
COMMENT ON COLUMN ecp.instances.zone_id IS 'Zone (API ZoneId).';
COMMENT ON COLUMN ecp.instances.tags IS 'User tags (API Tags) as one object {"key": "value"}.';
COMMENT ON COLUMN ecp.instances.biz_tags IS 'System/business tags (API BizTags) as one object {"key": "value"}.';
COMMENT ON COLUMN ecp.instances.disks IS 'Disks (API Disks) as an array of {"disk_type", "disk_size_gb"} in API order.';
COMMENT ON COLUMN ecp.instances.raw IS 'The instance exactly as the API last returned it, unknown fields included.';
COMMENT ON COLUMN ecp.instances.source IS 'Account alias the instance was crawled under.';
COMMENT ON COLUMN ecp.instances.biz_region_id IS 'Business region of the crawl scope that returned the instance.';
COMMENT ON COLUMN ecp.instances.version IS 'Number of the instance''s current version in ecp.instance_versions.';
COMMENT ON COLUMN ecp.instances.first_seen_at IS 'When a crawl first returned the instance.';
COMMENT ON COLUMN ecp.instances.last_changed_at IS 'When a tracked field last changed (the current version''s valid_from).';
COMMENT ON COLUMN ecp.instances.last_seen_at IS 'When this row was last written from a crawl. Unchanged instances are not rewritten: read last_seen_at from ecp.current_instances.';
COMMENT ON COLUMN ecp.instances.deleted_at IS 'NULL while the instance exists; when a complete crawl of its scope stopped returning it.';
COMMENT ON COLUMN ecp.instances.last_run_id IS 'The run that last wrote this row.';

-- Deletion detection and current_instances read the live instances of one scope.
CREATE INDEX instances_scope_live_idx ON ecp.instances (source, biz_region_id) WHERE deleted_at IS NULL;
-- "Deleted in the last N days".
CREATE INDEX instances_deleted_at_idx ON ecp.instances (deleted_at) WHERE deleted_at IS NOT NULL;
-- "Expiring in the next N days".
CREATE INDEX instances_expires_at_idx ON ecp.instances (expires_at) WHERE deleted_at IS NULL;
