-- Change rows observed before the horizon.
DELETE FROM ecp.instance_changes WHERE observed_at < $1
