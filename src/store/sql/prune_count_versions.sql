SELECT count(*) FROM ecp.instance_versions WHERE valid_to < $1
