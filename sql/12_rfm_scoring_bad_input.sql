-- Bad input for RFM scoring and segments: each case ends in a documented result or an ERROR whose
-- SQLSTATE is shown (VERBOSITY sqlstate prints "ERROR:  <SQLSTATE>").
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
CREATE TEMP TABLE v (x double precision);
INSERT INTO v VALUES (1), (2), (3);

\set VERBOSITY sqlstate
-- bins outside 1..100, NULL, or changing within a partition: 22023.
SELECT cdp.rfm_score(x, 0) OVER () FROM v;
SELECT cdp.rfm_score(x, 101) OVER () FROM v;
SELECT cdp.rfm_score(x, -5) OVER () FROM v;
SELECT cdp.rfm_score(x, NULL) OVER () FROM v;
SELECT cdp.rfm_score(x, x::int + 2) OVER () FROM v;
SELECT cdp.rfm_breaks(x, 0) FROM v;
SELECT cdp.rfm_breaks(x, 101) FROM v;
SELECT cdp.rfm_breaks(x, NULL) FROM v;
SELECT cdp.rfm_breaks(x, x::int + 2) FROM v;
-- NaN is not a measurable value: 22023 (double precision and numeric, in every function).
SELECT cdp.rfm_score(x) OVER () FROM (VALUES (1::float8), ('NaN')) t(x);
SELECT cdp.rfm_score(x) OVER () FROM (VALUES (1::numeric), ('NaN')) t(x);
SELECT cdp.rfm_breaks(x) FROM (VALUES (1::float8), ('NaN')) t(x);
SELECT cdp.rfm_breaks(x) FROM (VALUES (1::numeric), ('NaN')) t(x);
SELECT cdp.rfm_bucket('NaN'::float8, '{1,2}');
SELECT cdp.rfm_bucket('NaN'::numeric, '{1,2}');
SELECT cdp.rfm_bucket(1::float8, '{1,NaN}');
SELECT cdp.rfm_bucket(1::numeric, '{1,NaN}');
-- Bad breaks: 22023.
SELECT cdp.rfm_bucket(1::float8, '{}');
SELECT cdp.rfm_bucket(1::float8, '{NULL,NULL}');
SELECT cdp.rfm_bucket(1::bigint, '{3,2}');
SELECT cdp.rfm_bucket(1::numeric, '{1,NULL,5,NULL,4}');
SELECT cdp.rfm_bucket(now(), ARRAY[now() + interval '1 day', now()]);
SELECT cdp.rfm_bucket(1::float8, '{{1,2},{3,4}}');
SELECT cdp.rfm_bucket(1::float8, array_fill(1::float8, ARRAY[101]));
-- Segments: score outside 1..5 -> 22023; unknown map -> 42704; NULL map -> 22004.
SELECT cdp.rfm_segment(0, 3, 3);
SELECT cdp.rfm_segment(3, 6, 3);
SELECT cdp.rfm_segment(3, 3, 3, 'no_such_map');
SELECT cdp.rfm_segment(3, 3, 3, NULL);
SELECT * FROM cdp.rfm_segment_map_gaps('no_such_map');
SELECT cdp.rfm_copy_segment_map('no_such_map', 'x');
SELECT cdp.rfm_copy_segment_map('default', 'score_tiers');
-- Rows that break the table's rules: 23514 (check) and 23505 (duplicate cell).
INSERT INTO cdp.rfm_segment_rules (segment_map, r, f, m, segment) VALUES ('mine', 6, 1, 1, 'x');
INSERT INTO cdp.rfm_segment_rules (segment_map, r, f, m, segment) VALUES ('mine', 1, 1, 1, '');
INSERT INTO cdp.rfm_segment_rules (segment_map, r, f, m, segment) VALUES ('default', 1, 1, 1, 'x');
-- More values than the memory limit (the larger of work_mem and maintenance_work_mem): 54000.
SET maintenance_work_mem = '1MB'; SET work_mem = '1MB';
SELECT count(s) FROM (SELECT cdp.rfm_score(i) OVER () s FROM generate_series(1, 100000) i) x;
SELECT cdp.rfm_breaks(i::numeric) FROM generate_series(1, 100000) i;
SELECT count(s) FROM (SELECT cdp.rfm_score(i) OVER () s FROM generate_series(1, 10000) i) x;
-- Wide numerics: the window keeps a copy of each value, which counts against the limit too
-- (20000 values of 1000 digits are ~10 MB of copies; 1000 of them fit).
SELECT count(s) FROM (SELECT cdp.rfm_score(repeat('9', 1000)::numeric + i) OVER () s FROM generate_series(1, 20000) i) x;
SELECT count(s) FROM (SELECT cdp.rfm_score(repeat('9', 1000)::numeric + i) OVER () s FROM generate_series(1, 1000) i) x;
RESET maintenance_work_mem; RESET work_mem;
\set VERBOSITY default

-- The message, detail and hint users see for the common mistakes.
SELECT cdp.rfm_score(x, 0) OVER () FROM v;
SELECT cdp.rfm_score(x, x::int + 2) OVER () FROM v;
SELECT cdp.rfm_bucket(1::bigint, '{3,2}');
\set SHOW_CONTEXT never
SELECT cdp.rfm_segment(3, 3, 3, 'no_such_map');
\set SHOW_CONTEXT errors
SET maintenance_work_mem = '1MB'; SET work_mem = '1MB';
SELECT cdp.rfm_breaks(i::float8) FROM generate_series(1, 100000) i;
RESET maintenance_work_mem; RESET work_mem;

-- Documented results, not errors: NULL values score NULL; NULL breaks array -> NULL; no values ->
-- NULL breaks; infinities are ordinary values; a map cell that is not covered -> NULL.
SELECT x, cdp.rfm_score(x) OVER () FROM (VALUES (NULL::float8), ('Infinity'), ('-Infinity')) t(x) ORDER BY x;
SELECT cdp.rfm_bucket(NULL::float8, '{1,2}') AS null_value, cdp.rfm_bucket(1::float8, NULL) AS null_breaks;
SELECT cdp.rfm_breaks(x) FROM v WHERE x > 10;
SELECT cdp.rfm_segment(1, 1, NULL);

-- The session is still healthy after every error above.
SELECT cdp.rfm_score(x) OVER () FROM v ORDER BY 1;
