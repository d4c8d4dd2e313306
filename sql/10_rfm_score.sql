-- cdp.rfm_score (window function), cdp.rfm_breaks (aggregate) and cdp.rfm_bucket.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET timezone = 'UTC';

CREATE TEMP TABLE tied (id int, v double precision);
INSERT INTO tied VALUES (1, 1), (2, 1), (3, 1), (4, 2), (5, 3), (6, 3), (7, 4), (8, 5), (9, 5), (10, 5), (11, NULL);

-- Ties share a score; NULL scores NULL and is not counted; five distinct values use all five scores.
SELECT id, v, cdp.rfm_score(v) OVER () AS score FROM tied ORDER BY id;

-- The same values as every supported type (timestamptz: a later time scores higher).
SELECT id,
       cdp.rfm_score(v::numeric) OVER () AS num,
       cdp.rfm_score(v::bigint) OVER () AS big,
       cdp.rfm_score(timestamptz '2024-01-01' + v * interval '1 day') OVER () AS ts,
       cdp.rfm_score(-v) OVER () AS negated
  FROM tied ORDER BY id;

-- bins 1, 3 and 100 (fewer distinct values than bins: scores stay empty, order is kept).
SELECT id, cdp.rfm_score(v, 1) OVER () AS b1, cdp.rfm_score(v, 3) OVER () AS b3,
       cdp.rfm_score(v, 100) OVER () AS b100
  FROM tied ORDER BY id;

-- The window's ORDER BY and frame do not change the scores.
SELECT count(*) AS rows_differing
  FROM (SELECT id, cdp.rfm_score(v) OVER () a,
               cdp.rfm_score(v) OVER (ORDER BY v DESC, id) b,
               cdp.rfm_score(v) OVER (ORDER BY id ROWS BETWEEN CURRENT ROW AND CURRENT ROW) c
          FROM tied) x
 WHERE a IS DISTINCT FROM b OR a IS DISTINCT FROM c;

-- Partitions are scored independently; an all-NULL partition gives NULL scores.
SELECT g, id, v, cdp.rfm_score(v, 2) OVER (PARTITION BY g) AS score
  FROM (VALUES ('a', 1, 10.0), ('a', 2, 20.0), ('a', 3, 30.0), ('a', 4, 40.0),
               ('b', 5, 7.0), ('b', 6, 7.0), ('c', 7, NULL)) t(g, id, v)
 ORDER BY g, id;

-- No ties and n divisible by bins: exactly equal bins, identical to ntile.
SELECT score, count(*) FROM (SELECT cdp.rfm_score(i::bigint) OVER () score FROM generate_series(1, 1000) i) x
 GROUP BY score ORDER BY score;
SELECT count(*) AS differs_from_ntile
  FROM (SELECT cdp.rfm_score(i::bigint, 8) OVER () s, ntile(8) OVER (ORDER BY i) n FROM generate_series(1, 800) i) x
 WHERE s <> n;
SELECT score, count(*) FROM (SELECT cdp.rfm_score(i::bigint, 100) OVER () score FROM generate_series(1, 1000) i) x
 GROUP BY score HAVING count(*) <> 10;

-- Heavy skew: half the values equal (one-time buyers). The tie takes score 1 alone and the rest
-- is spread evenly, not left to one thin score.
SELECT score, count(*), min(v), max(v)
  FROM (SELECT v, cdp.rfm_score(v) OVER () score
          FROM (SELECT 1::bigint v FROM generate_series(1, 50) UNION ALL SELECT i::bigint FROM generate_series(2, 51) i) t) x
 GROUP BY score ORDER BY score;
-- ... and the mirror image (the tie at the top).
SELECT score, count(*), min(v), max(v)
  FROM (SELECT v, cdp.rfm_score(v) OVER () score
          FROM (SELECT 100::bigint v FROM generate_series(1, 50) UNION ALL SELECT i::bigint FROM generate_series(1, 50) i) t) x
 GROUP BY score ORDER BY score;

-- A constant column scores in the middle; two distinct values with bins = 5 score 2 and 4.
SELECT DISTINCT cdp.rfm_score(7::numeric) OVER () FROM generate_series(1, 10);
SELECT v, cdp.rfm_score(v) OVER () FROM (VALUES (1::bigint), (1), (2), (2)) t(v) ORDER BY v;

-- Infinities and very large numerics are ordinary values.
SELECT v, cdp.rfm_score(v, 4) OVER () FROM (VALUES ('-Infinity'::float8), ('Infinity'), (0), (1e300)) t(v) ORDER BY v;
SELECT v, cdp.rfm_score(v) OVER ()
  FROM (VALUES ('-Infinity'::numeric), ('Infinity'), (1e200), (-1e200), (0), (1e-100)) t(v) ORDER BY v;
SELECT v, cdp.rfm_score(v, 3) OVER ()
  FROM (VALUES ('-infinity'::timestamptz), ('infinity'), ('2024-06-01')) t(v) ORDER BY v;

-- rfm_breaks: the lowest value of each score (NULL where a score is empty), same element type.
SELECT cdp.rfm_breaks(v) AS f8, cdp.rfm_breaks(v::numeric, 3) AS num3, cdp.rfm_breaks(v::bigint, 7) AS big7,
       cdp.rfm_breaks(timestamptz '2024-01-01' + v * interval '1 day', 2) AS ts2
  FROM tied;
SELECT pg_typeof(cdp.rfm_breaks(v::numeric)), pg_typeof(cdp.rfm_breaks(v::bigint)),
       pg_typeof(cdp.rfm_breaks(now() + v * interval '1 day')) FROM tied;
-- No values (or only NULLs): NULL.
SELECT cdp.rfm_breaks(v) FROM tied WHERE v IS NULL;
SELECT cdp.rfm_breaks(v) FROM tied WHERE false;
-- Per group, and as a window aggregate.
SELECT g, cdp.rfm_breaks(v, 2) FROM (VALUES ('a', 1), ('a', 2), ('a', 3), ('b', 5)) t(g, v) GROUP BY g ORDER BY g;
SELECT id, cdp.rfm_breaks(v, 3) OVER () FROM tied WHERE id <= 3 ORDER BY id;

-- rfm_bucket applies thresholds: largest b with breaks[b] <= value, NULL elements skipped,
-- below every threshold -> lowest score that has one; NULL value -> NULL.
SELECT v, cdp.rfm_bucket(v, '{10,NULL,20,20,30}'::float8[]) AS score
  FROM (VALUES (5::float8), (10), (19.5), (20), (29), (30), (1e9), (NULL)) t(v) ORDER BY v;
SELECT cdp.rfm_bucket(1::numeric, '{NULL,NULL,7}'), cdp.rfm_bucket(8::bigint, '{NULL,NULL,7}'),
       cdp.rfm_bucket(timestamptz '2024-03-01', ARRAY[timestamptz '2024-01-01', '2024-02-01', '2024-04-01']),
       cdp.rfm_bucket(2::float8, '[0:2]={1,2,3}');
-- Pinned thresholds from an earlier period applied to new values.
SELECT cdp.rfm_bucket(v, (SELECT cdp.rfm_breaks(x::float8) FROM generate_series(1, 100) x)) AS score, count(*)
  FROM generate_series(-10, 130, 10) v GROUP BY 1 ORDER BY 1;

-- The guarantee: rfm_bucket(v, rfm_breaks(v)) = rfm_score(v) for every row, every type, many bins.
SELECT setseed(0.42);
CREATE TEMP TABLE sample AS
SELECT i, g,
       CASE WHEN i % 37 = 0 THEN NULL ELSE round((random() * random() * 50)::numeric, 1) END AS amount,
       CASE WHEN i % 3 = 0 THEN 1 ELSE (random() * 12)::bigint END AS orders
  FROM generate_series(1, 3000) i, LATERAL (SELECT (i % 4) AS g) gg;
SELECT bins,
       count(*) FILTER (WHERE cdp.rfm_bucket(amount::float8, b_f8) IS DISTINCT FROM s_f8) AS f8_mismatch,
       count(*) FILTER (WHERE cdp.rfm_bucket(amount, b_num) IS DISTINCT FROM s_num) AS num_mismatch,
       count(*) FILTER (WHERE cdp.rfm_bucket(orders, b_int) IS DISTINCT FROM s_int) AS int_mismatch,
       count(*) FILTER (WHERE cdp.rfm_bucket(timestamptz '2024-01-01' + orders * interval '1 hour', b_ts)
                              IS DISTINCT FROM s_ts) AS ts_mismatch,
       count(DISTINCT s_num) AS amount_scores_used
  FROM (SELECT bins, amount, orders,
               cdp.rfm_score(amount::float8, bins) OVER w AS s_f8, cdp.rfm_breaks(amount::float8, bins) OVER w AS b_f8,
               cdp.rfm_score(amount, bins) OVER w AS s_num, cdp.rfm_breaks(amount, bins) OVER w AS b_num,
               cdp.rfm_score(orders, bins) OVER w AS s_int, cdp.rfm_breaks(orders, bins) OVER w AS b_int,
               cdp.rfm_score(timestamptz '2024-01-01' + orders * interval '1 hour', bins) OVER w AS s_ts,
               cdp.rfm_breaks(timestamptz '2024-01-01' + orders * interval '1 hour', bins) OVER w AS b_ts
          FROM sample, (VALUES (1), (3), (5), (10), (100)) b(bins)
        WINDOW w AS (PARTITION BY bins, g)) x
 GROUP BY bins ORDER BY bins;
-- The same with the thresholds from a subquery.
SELECT count(*) AS mismatches
  FROM (SELECT amount, cdp.rfm_score(amount) OVER () s FROM sample) x
 WHERE cdp.rfm_bucket(amount, (SELECT cdp.rfm_breaks(amount) FROM sample)) IS DISTINCT FROM s;

-- Scoring rules on the sample: ties share a score and a larger value never scores lower.
SELECT count(*) AS violations
  FROM (SELECT amount, cdp.rfm_score(amount) OVER () s FROM sample WHERE amount IS NOT NULL) a
  JOIN (SELECT amount, cdp.rfm_score(amount) OVER () s FROM sample WHERE amount IS NOT NULL) b
    ON a.amount <= b.amount AND a.s > b.s OR a.amount = b.amount AND a.s <> b.s;

-- Under a forced parallel plan the results are the same (rfm_breaks has no combine function, so it
-- aggregates above the Gather; rfm_score runs above it too).
CREATE TABLE rfm_parallel AS SELECT i, ((i * 7919 % 1000) / 10.0)::numeric(6, 1) AS amount FROM generate_series(1, 20000) i;
ANALYZE rfm_parallel;
CREATE TEMP TABLE serial_result AS
SELECT (SELECT cdp.rfm_breaks(amount) FROM rfm_parallel) AS breaks,
       (SELECT sum(s * i) FROM (SELECT i, cdp.rfm_score(amount) OVER () s FROM rfm_parallel) x) AS checksum;
SET force_parallel_mode = regress; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT cdp.rfm_breaks(amount) FROM rfm_parallel;
SELECT (SELECT cdp.rfm_breaks(amount) FROM rfm_parallel) = breaks AS same_breaks,
       (SELECT sum(s * i) FROM (SELECT i, cdp.rfm_score(amount) OVER () s FROM rfm_parallel) x) = checksum AS same_scores,
       breaks
  FROM serial_result;
RESET force_parallel_mode; RESET parallel_setup_cost; RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size; RESET max_parallel_workers_per_gather;
DROP TABLE rfm_parallel;
