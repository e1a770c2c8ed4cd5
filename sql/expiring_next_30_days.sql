-- Subscriptions (prepaid instances) expiring in the next 30 days, soonest first.
SELECT instance_id, instance_name, region_id, charge_type, instance_type, expires_at,
       expires_at - now() AS time_left
FROM ecp.current_instances
WHERE expires_at >= now() AND expires_at < now() + interval '30 days'
ORDER BY expires_at, instance_id;
