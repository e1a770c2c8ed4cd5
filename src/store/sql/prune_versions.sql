-- Versions that ended before the horizon: valid at no instant >= $1.
DELETE FROM ecp.instance_versions WHERE valid_to < $1
