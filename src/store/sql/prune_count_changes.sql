SELECT count(*) FROM ecp.instance_changes WHERE observed_at < $1
