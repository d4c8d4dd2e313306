-- Segment maps: cdp.rfm_segment_rules, cdp.rfm_segment, cdp.rfm_segment_map_gaps.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;

-- The shipped maps and their segments.
SELECT segment_map, count(*) AS cells, count(DISTINCT segment) AS segments, bool_and(builtin) AS builtin
  FROM cdp.rfm_segment_rules GROUP BY segment_map ORDER BY segment_map;
-- Both cover all 125 cells.
SELECT 'default' AS map, count(*) AS gaps FROM cdp.rfm_segment_map_gaps('default')
UNION ALL
SELECT 'score_tiers', count(*) FROM cdp.rfm_segment_map_gaps('score_tiers');

-- The default map: the recency x frequency grid (m only splits Hibernating from Lost).
SELECT r, f, string_agg(DISTINCT segment, ' / ' ORDER BY segment) AS segments
  FROM cdp.rfm_segment_rules WHERE segment_map = 'default'
 GROUP BY r, f ORDER BY r DESC, f;
SELECT segment, count(*) AS cells FROM cdp.rfm_segment_rules WHERE segment_map = 'default'
 GROUP BY segment ORDER BY segment;
SELECT r, f, m FROM cdp.rfm_segment_rules WHERE segment_map = 'default' AND segment = 'Lost' ORDER BY r, f, m;

-- The score-tier map: r + f + m.
SELECT segment, min(r + f + m) AS lowest_sum, max(r + f + m) AS highest_sum, count(*) AS cells
  FROM cdp.rfm_segment_rules WHERE segment_map = 'score_tiers' GROUP BY segment ORDER BY lowest_sum;

-- Lookups.
SELECT cdp.rfm_segment(5, 5, 5) AS top, cdp.rfm_segment(5, 1, 3) AS new_customer, cdp.rfm_segment(1, 5, 5) AS cannot_lose,
       cdp.rfm_segment(1, 1, 1) AS lost, cdp.rfm_segment(1, 1, 5) AS hibernating_big_spender,
       cdp.rfm_segment(3, 3, 3, 'score_tiers') AS tier, cdp.rfm_segment(NULL, 1, 1) AS null_score;

-- Every cell of both maps through the function agrees with the table, also in a parallel worker
-- (the function reads the map once per statement, alternating maps included).
CREATE TABLE rfm_cells AS
SELECT map, r, f, m FROM (VALUES ('default'), ('score_tiers')) maps(map),
       generate_series(1, 5) r, generate_series(1, 5) f, generate_series(1, 5) m;
SELECT count(*) AS cells, count(*) FILTER (WHERE cdp.rfm_segment(c.r, c.f, c.m, c.map) IS DISTINCT FROM s.segment) AS mismatches
  FROM rfm_cells c JOIN cdp.rfm_segment_rules s ON (s.segment_map, s.r, s.f, s.m) = (c.map, c.r, c.f, c.m);
SET force_parallel_mode = regress; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
SELECT count(*) AS cells, count(*) FILTER (WHERE cdp.rfm_segment(c.r, c.f, c.m, c.map) IS DISTINCT FROM
         (SELECT s.segment FROM cdp.rfm_segment_rules s WHERE (s.segment_map, s.r, s.f, s.m) = (c.map, c.r, c.f, c.m))) AS mismatches
  FROM rfm_cells c;
RESET force_parallel_mode; RESET parallel_setup_cost; RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size; RESET max_parallel_workers_per_gather;
DROP TABLE rfm_cells;

-- A user's map with holes: the gap check lists exactly the uncovered cells; lookups there give NULL.
INSERT INTO cdp.rfm_segment_rules (segment_map, r, f, m, segment)
SELECT 'vip_only', r, f, m, CASE WHEN f = 5 THEN 'VIP' ELSE 'Everyone else' END
  FROM generate_series(1, 5) r, generate_series(1, 5) f, generate_series(1, 5) m
 WHERE NOT (r = 1 AND m IN (2, 4)) AND NOT (r = 5 AND f = 5 AND m = 5);
SELECT * FROM cdp.rfm_segment_map_gaps('vip_only');
SELECT cdp.rfm_segment(1, 3, 2, 'vip_only') AS uncovered, cdp.rfm_segment(2, 5, 2, 'vip_only') AS covered;

-- Editing a rule of one's own map takes effect at once.
UPDATE cdp.rfm_segment_rules SET segment = 'Top VIP' WHERE segment_map = 'vip_only' AND (r, f, m) = (4, 5, 5);
SELECT cdp.rfm_segment(4, 5, 5, 'vip_only');
INSERT INTO cdp.rfm_segment_rules (segment_map, r, f, m, segment) VALUES ('vip_only', 5, 5, 5, 'Top VIP');
SELECT count(*) AS gaps_left FROM cdp.rfm_segment_map_gaps('vip_only');

-- Shipped maps are read-only (pg_dump keeps only users' rows); copy one to customise it.
\set VERBOSITY sqlstate
UPDATE cdp.rfm_segment_rules SET segment = 'Stars' WHERE segment_map = 'default' AND (r, f, m) = (5, 5, 5);
DELETE FROM cdp.rfm_segment_rules WHERE segment_map = 'default';
INSERT INTO cdp.rfm_segment_rules (segment_map, r, f, m, segment, builtin) VALUES ('mine', 1, 1, 1, 'x', true);
TRUNCATE cdp.rfm_segment_rules;
\set VERBOSITY default
SELECT cdp.rfm_copy_segment_map('default', 'my_default');
UPDATE cdp.rfm_segment_rules SET segment = 'Stars' WHERE segment_map = 'my_default' AND (r, f, m) = (5, 5, 5);
SELECT cdp.rfm_segment(5, 5, 5) AS shipped, cdp.rfm_segment(5, 5, 5, 'my_default') AS copy,
       cdp.rfm_segment(5, 4, 5, 'my_default') AS unchanged;

-- The map is cached for one statement only: a PL/pgSQL loop (whose expression state lives on)
-- sees a rule changed by the statement before.
DO $$
BEGIN
  FOR i IN 1..2 LOOP
    RAISE NOTICE 'pass %: %', i, cdp.rfm_segment(5, 5, 5, 'my_default');
    UPDATE cdp.rfm_segment_rules SET segment = 'Stars ' || i WHERE segment_map = 'my_default' AND (r, f, m) = (5, 5, 5);
  END LOOP;
END $$;

-- pg_dump keeps the users' maps and only them.
SELECT c.relname, e.extcondition[t.n] AS dump_condition
  FROM pg_extension e CROSS JOIN LATERAL unnest(e.extconfig) WITH ORDINALITY AS t(oid, n)
  JOIN pg_class c ON c.oid = t.oid
 WHERE e.extname = 'pg_cdp' AND c.relname = 'rfm_segment_rules';
SELECT segment_map, count(*) FROM cdp.rfm_segment_rules WHERE NOT builtin GROUP BY 1 ORDER BY 1;

DELETE FROM cdp.rfm_segment_rules WHERE segment_map IN ('vip_only', 'my_default');
SELECT segment_map, count(*) FROM cdp.rfm_segment_rules GROUP BY 1 ORDER BY 1;
