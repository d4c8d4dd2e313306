-- Profiles: cdp.grant_reader gives a dashboard role the views and nothing else.
-- The snapshot rows are written by hand here (the computation is tested in 40_profiles): this file
-- is about privileges only.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE FUNCTION pg_temp.try(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_cdp_dashboard;
DROP ROLE IF EXISTS regress_cdp_stranger;
RESET client_min_messages;
CREATE ROLE regress_cdp_dashboard;
CREATE ROLE regress_cdp_stranger;

INSERT INTO cdp.profile_refreshes (as_of, refreshed_at, persons, unattributed, orders, currency, person_match,
                                   orders_relation, duration_ms)
VALUES ('2026-06-01 00:00+00', '2026-06-01 01:00+00', 2, 1, 3, NULL, 'identity_map', 'shop.orders', 1),
       ('2026-07-01 00:00+00', '2026-07-01 01:00+00', 2, 1, 4, NULL, 'identity_map', 'shop.orders', 1);
INSERT INTO cdp.profile_snapshots (as_of, person_key, person_id, orders, monetary, average_order_value, recency_days,
                                   r, f, m, rfm_segment, lifecycle_stage, cadence_days, expected_next_order_at,
                                   overdue_ratio, stage_since, first_order_at, last_order_at, identifiers, sources)
VALUES ('2026-06-01 00:00+00', 'person:1', 1, 2, 50, 25, 10, 2, 2, 2, 'Champions', 'active', 20,
        '2026-06-11 00:00+00', 0.5, '2026-05-01 00:00+00', '2026-05-01 00:00+00', '2026-05-22 00:00+00', 3, 2),
       ('2026-06-01 00:00+00', 'customer:77', NULL, 1, 10, 10, 40, 1, 1, 1, 'Hibernating', 'new', NULL,
        '2026-07-01 00:00+00', 0.4, '2026-04-22', '2026-04-22 00:00+00', '2026-04-22 00:00+00', 0, 0),
       ('2026-07-01 00:00+00', 'person:1', 1, 3, 70, 23.33, 5, 2, 2, 2, 'Champions', 'loyal', 20,
        '2026-07-16 00:00+00', 0.25, '2026-06-26 00:00+00', '2026-05-01 00:00+00', '2026-06-26 00:00+00', 3, 2),
       ('2026-07-01 00:00+00', 'customer:77', NULL, 1, 10, 10, 70, 1, 1, 1, 'Hibernating', 'at_risk', NULL,
        '2026-07-01 00:00+00', 1.2, '2026-06-22 00:00+00', '2026-04-22 00:00+00', '2026-04-22 00:00+00', 0, 0);
INSERT INTO cdp.profile_group_totals
SELECT as_of, d.dimension, CASE d.dimension WHEN 'rfm_segment' THEN rfm_segment ELSE lifecycle_stage END,
       count(*), sum(monetary), sum(orders), sum(recency_days), count(recency_days)
  FROM cdp.profile_snapshots, (VALUES ('rfm_segment'), ('lifecycle_stage')) d(dimension)
 GROUP BY 1, 2, 3;

SELECT cdp.grant_reader('regress_cdp_dashboard');
SELECT pg_temp.try($s$SELECT cdp.grant_reader(NULL)$s$);
SELECT pg_temp.try($s$SELECT cdp.grant_reader('regress_cdp_nobody')$s$);

-- What the reader holds: USAGE on the schema, SELECT on the views, no table, no writing routine.
-- (Relations another section grants to PUBLIC, such as the lifecycle policies, are not grant_reader's.)
SELECT c.relname, c.relkind
  FROM pg_class c
 WHERE c.relnamespace = 'cdp'::regnamespace
   AND has_table_privilege('regress_cdp_dashboard', c.oid, 'SELECT')
   AND NOT has_table_privilege('public', c.oid, 'SELECT')
 ORDER BY c.relname;
SELECT count(*) AS relations_reader_can_write
  FROM pg_class c
 WHERE c.relnamespace = 'cdp'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
   AND has_table_privilege('regress_cdp_dashboard', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE');
SELECT p.oid::regprocedure AS routine, p.prokind
  FROM pg_proc p
 WHERE p.pronamespace = 'cdp'::regnamespace
   AND p.proname IN ('configure_orders', 'refresh_profiles', 'grant_reader')
   AND has_function_privilege('regress_cdp_dashboard', p.oid, 'EXECUTE')
 ORDER BY 1;

SET ROLE regress_cdp_dashboard;
-- The views answer with the reader's own rights.
SELECT as_of, person_key, orders, monetary, rfm_segment, lifecycle_stage, identifiers, sources
  FROM cdp.customer_profiles ORDER BY person_key;
SELECT as_of, rfm_segment, customers, customer_share, revenue, revenue_share FROM cdp.segment_summary ORDER BY rfm_segment;
SELECT as_of, lifecycle_stage, customers, revenue FROM cdp.lifecycle_summary ORDER BY lifecycle_stage;
SELECT * FROM cdp.stage_movement ORDER BY from_stage, to_stage;
SELECT * FROM cdp.segment_movement ORDER BY from_segment, to_segment;
SELECT * FROM cdp.segment_flow('2026-06-01 00:00+00', '2026-07-01 00:00+00', 'lifecycle_stage') ORDER BY 1, 2;
SELECT as_of, persons, unattributed FROM cdp.profile_snapshot_list ORDER BY as_of;
SELECT count(*) AS history_rows FROM cdp.profile_history;
-- Raw tables (snapshots, configuration, identity) are out of reach: 42501.
SELECT pg_temp.try($s$SELECT count(*) FROM cdp.profile_snapshots$s$);
SELECT pg_temp.try($s$SELECT count(*) FROM cdp.profile_config$s$);
SELECT pg_temp.try($s$SELECT count(*) FROM cdp.profile_group_totals$s$);
SELECT pg_temp.try(format('SELECT count(*) FROM %s', c.oid::regclass)) AS identity_tables
  FROM pg_class c
 WHERE c.relnamespace = 'cdp'::regnamespace AND c.relkind = 'r'
   AND c.relname IN ('person_identifiers', 'identity_map', 'persons')
 ORDER BY c.relname;
-- Writing is refused: procedures and configuration (42501), direct writes (42501).
SELECT pg_temp.try($s$CALL cdp.refresh_profiles('2026-07-01')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('cdp.profile_history', 'person_key', 'person_key', 'as_of', 'orders')$s$);
SELECT pg_temp.try($s$SELECT cdp.grant_reader('regress_cdp_stranger')$s$);
SELECT pg_temp.try($s$DELETE FROM cdp.customer_profiles$s$);
-- Identity routines (identity merge's section) cannot reveal or rewrite identities for this role either.
SELECT pg_temp.try($s$SELECT cdp.person_id('email', 'ines.roth@mail.de')$s$) LIKE '42501:%' AS person_id_denied;
SELECT pg_temp.try($s$CALL cdp.merge_identities('cdp.profile_history')$s$) LIKE '42501:%' AS merge_denied;
SELECT pg_temp.try($s$INSERT INTO cdp.profile_snapshots (as_of, person_key, orders, monetary, lifecycle_stage, identifiers, sources) VALUES (now(), 'x', 1, 1, 'new', 0, 0)$s$);
RESET ROLE;

-- A role without grant_reader sees nothing.
SET ROLE regress_cdp_stranger;
SELECT pg_temp.try($s$SELECT count(*) FROM cdp.customer_profiles$s$);
RESET ROLE;

DELETE FROM cdp.profile_refreshes;
DELETE FROM cdp.profile_snapshots;
REVOKE ALL ON ALL TABLES IN SCHEMA cdp FROM regress_cdp_dashboard;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cdp FROM regress_cdp_dashboard;
REVOKE ALL ON SCHEMA cdp FROM regress_cdp_dashboard;
DROP ROLE regress_cdp_dashboard;
DROP ROLE regress_cdp_stranger;
