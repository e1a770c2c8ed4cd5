-- Current disks of each instance, one row per entry of the API's Disks array.
CREATE TABLE ecp.instance_disks (
    instance_id  text NOT NULL REFERENCES ecp.instances (instance_id),
    disk_index   integer NOT NULL CHECK (disk_index >= 0),
    disk_type    text,
    disk_size_gb integer,
    PRIMARY KEY (instance_id, disk_index)
);

COMMENT ON TABLE ecp.instance_disks IS 'Current disks of each instance (history: instance_versions.disks).';
COMMENT ON COLUMN ecp.instance_disks.instance_id IS 'The instance (ecp.instances).';
COMMENT ON COLUMN ecp.instance_disks.disk_index IS '0-based position in the API''s Disks array.';
COMMENT ON COLUMN ecp.instance_disks.disk_type IS 'Disk type, e.g. SYSTEM or DATA (API DiskType).';
COMMENT ON COLUMN ecp.instance_disks.disk_size_gb IS 'Disk size in GB (API DiskSize).';
