-- The history: one row per state an instance was in (slowly changing dimension,
-- type 2). A version is valid over [valid_from, valid_to); the current one has
-- valid_to NULL. The EXCLUDE constraint makes the database itself refuse two
-- versions of one instance valid at the same instant, whatever the writer does.
CREATE TABLE ecp.instance_versions (
    instance_id                    text NOT NULL,
    version                        integer NOT NULL CHECK (version >= 1),
    valid_from                     timestamptz NOT NULL,
    valid_to                       timestamptz,
    is_deleted                     boolean NOT NULL DEFAULT false,
    run_id                         bigint NOT NULL REFERENCES ecp.sync_runs (run_id),
    source                         text NOT NULL,
    biz_region_id                  text NOT NULL,
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
    PRIMARY KEY (instance_id, version),
    CONSTRAINT instance_versions_valid_range CHECK (valid_to IS NULL OR valid_to > valid_from),
    CONSTRAINT instance_versions_no_overlap
        EXCLUDE USING gist (instance_id WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&)
);

COMMENT ON TABLE ecp.instance_versions IS 'History of every instance: one row per state, valid over [valid_from, valid_to).';
COMMENT ON COLUMN ecp.instance_versions.version IS 'Version number, 1, 2, ... per instance.';
COMMENT ON COLUMN ecp.instance_versions.valid_from IS 'When the instance was first observed in this state.';
COMMENT ON COLUMN ecp.instance_versions.valid_to IS 'When a later state was first observed; NULL for the current version.';
COMMENT ON COLUMN ecp.instance_versions.is_deleted IS 'True for the version that records the instance''s disappearance (its columns repeat the last known state).';
COMMENT ON COLUMN ecp.instance_versions.run_id IS 'The run that wrote this version.';

-- The remaining columns mean what they mean in ecp.instances: copy those comments.
DO $$
DECLARE c record;
BEGIN
    FOR c IN
        SELECT a.attname, col_description(a.attrelid, a.attnum) AS txt
        FROM pg_attribute a
        WHERE a.attrelid = 'ecp.instances'::regclass AND a.attnum > 0 AND NOT a.attisdropped
    LOOP
        IF EXISTS (SELECT 1 FROM pg_attribute b
                   WHERE b.attrelid = 'ecp.instance_versions'::regclass AND b.attname = c.attname
                     AND col_description(b.attrelid, b.attnum) IS NULL) THEN
            EXECUTE format('COMMENT ON COLUMN ecp.instance_versions.%I IS %L', c.attname, c.txt);
        END IF;
    END LOOP;
END $$;

-- instances_as_of and fleet_daily look versions up by validity.
CREATE INDEX instance_versions_valid_idx ON ecp.instance_versions (valid_from, valid_to);
