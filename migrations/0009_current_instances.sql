-- The instances that exist now. last_seen_at comes from the run ledger: an
-- instance still current in its scope was seen by the last applied complete,
-- unfiltered crawl of that scope, so the job never rewrites unchanged rows just to
-- move a timestamp (a run over an unchanged fleet writes no instance row).
CREATE VIEW ecp.current_instances AS
SELECT
    i.instance_id,
    i.instance_name,
    i.status,
    i.instance_group_id,
    i.instance_group_name,
    i.app_instance_group_id,
    i.app_instance_id,
    i.app_manage_policy_id,
    i.app_manage_policy_name,
    i.authorized_user_id,
    i.bandwidth_package_id,
    i.bandwidth_package_type,
    i.bind_user_id,
    i.biz_image_type,
    i.channel,
    i.charge_type,
    i.cpu_cores,
    i.memory_mib,
    i.display_dpi,
    i.display_fps,
    i.display_resolution_width,
    i.display_resolution_height,
    i.display_lock_resolution,
    i.down_bandwidth_limit_mbps,
    i.up_bandwidth_limit_mbps,
    i.error_code,
    i.created_at,
    i.modified_at,
    i.expires_at,
    i.image_id,
    i.image_version,
    i.instance_type,
    i.internet_status,
    i.key_pair_id,
    i.network_interface_ip,
    i.network_interface_ipv6_address,
    i.network_type,
    i.office_site_id,
    i.package_id,
    i.persistent_app_instance_id,
    i.phone_data_id,
    i.phone_data_volume_gib,
    i.policy_group_id,
    i.public_ip_address,
    i.public_ipv6_address,
    i.qos_rule_id,
    i.rate,
    i.region_id,
    i.rendering_type,
    i.server_status,
    i.server_type,
    i.session_status,
    i.stream_mode,
    i.system_version,
    i.vswitch_id,
    i.zone_id,
    i.tags,
    i.biz_tags,
    i.disks,
    i.raw,
    i.source,
    i.biz_region_id,
    i.version,
    i.first_seen_at,
    i.last_changed_at,
    GREATEST(i.last_seen_at, l.last_crawl_at) AS last_seen_at,
    i.deleted_at,
    i.last_run_id
FROM ecp.instances i
LEFT JOIN (
    SELECT s.source, s.biz_region_id, max(s.snapshot_at) AS last_crawl_at
    FROM ecp.sync_run_scopes s
    WHERE s.applied AND s.complete AND NOT s.filtered
    GROUP BY s.source, s.biz_region_id
) l ON l.source = i.source AND l.biz_region_id = i.biz_region_id
WHERE i.deleted_at IS NULL;

COMMENT ON VIEW ecp.current_instances IS 'Instances that exist now (ecp.instances where deleted_at IS NULL), with last_seen_at taken from the run ledger.';
DO $$
DECLARE c record;
BEGIN
    FOR c IN
        SELECT a.attname, col_description(a.attrelid, a.attnum) AS txt
        FROM pg_attribute a
        WHERE a.attrelid = 'ecp.instances'::regclass AND a.attnum > 0 AND NOT a.attisdropped
    LOOP
        IF EXISTS (SELECT 1 FROM pg_attribute b
                   WHERE b.attrelid = 'ecp.current_instances'::regclass AND b.attname = c.attname
                     AND col_description(b.attrelid, b.attnum) IS NULL) THEN
            EXECUTE format('COMMENT ON COLUMN ecp.current_instances.%I IS %L', c.attname, c.txt);
        END IF;
    END LOOP;
END $$;
COMMENT ON COLUMN ecp.current_instances.last_seen_at IS 'When a crawl last returned the instance: the later of the last write of its row and the last applied complete, unfiltered crawl of its scope.';
