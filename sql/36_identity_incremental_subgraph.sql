-- Identity merge, incremental runs over a subgraph: with the rules unchanged, a run re-resolves only the
-- persons its new links touch (merge_runs.resolved_links < links), and the result is still exactly a full
-- rebuild's: same map (same ids), same identifier rows, same cuts, same totals. Randomised input with hubs
-- crossing their threshold, per-type conflicts, junk and invalid values, in several batches.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET client_min_messages = warning;
BEGIN;  -- rolled back at the end (rules are changed below)
TRUNCATE cdp.persons, cdp.identity_map, cdp.person_identifiers, cdp.identity_cuts, cdp.merge_history,
         cdp.merge_runs, cdp.identity_links, cdp.identity_tombstones RESTART IDENTITY;
UPDATE cdp.identifier_types SET hub_threshold = 6 WHERE id_type = 'device_id';
SELECT setseed(0.36);

CREATE TABLE obs (source text, source_key text, id_type text, id_value text, observed_at timestamptz);
-- n new records of random people (1..people), plus `relinks` new links on records of earlier batches.
CREATE PROCEDURE add_batch(batch integer, n integer, relinks integer, people integer)
LANGUAGE plpgsql AS $$
DECLARE
  at timestamptz := timestamptz '2024-01-01' + batch * interval '1 day';
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS batch_records (source text, source_key text, p integer, q integer);
  TRUNCATE batch_records;
  INSERT INTO batch_records
  SELECT (ARRAY['shop', 'web', 'app'])[1 + floor(random() * 3)::int], 'b' || batch || '-' || i,
         1 + floor(random() * people)::int, 1 + floor(random() * people)::int
    FROM generate_series(1, n) i;
  INSERT INTO batch_records
  SELECT source, source_key, 1 + floor(random() * people)::int, 1 + floor(random() * people)::int
    FROM (SELECT DISTINCT source, source_key FROM obs) o ORDER BY random() LIMIT relinks;
  INSERT INTO obs
  SELECT source, source_key, t, v, at FROM batch_records, LATERAL (
    SELECT 'customer_id', 'c' || p WHERE random() < 0.3
    UNION ALL SELECT 'customer_id', 'c' || q WHERE random() < 0.01          -- a conflicting account
    UNION ALL SELECT 'email', 'E' || p || '@Mail.com' WHERE random() < 0.5
    UNION ALL SELECT 'anonymous_id', 'ck' || (p * 3 + floor(random() * 3)::int) WHERE random() < 0.5
    UNION ALL SELECT 'device_id', 'DEV-' || (p * 2 + floor(random() * 2)::int) WHERE random() < 0.2
    UNION ALL SELECT 'device_id', 'shared-' || floor(random() * 15)::int WHERE random() < 0.04  -- hubs above 6
    UNION ALL SELECT 'phone', 'call me ' || p WHERE random() < 0.02         -- invalid
    UNION ALL SELECT 'email', 'test@test.com' WHERE random() < 0.03          -- blocklisted
    UNION ALL SELECT 'loyalty_id', 'L' || p WHERE random() < 0.1
  ) AS ids(t, v);
END $$;

-- Runs a full rebuild after the current state and counts every difference from it: map rows (with ids),
-- identifier rows, cuts, and the totals of the run before it. 0 = the incremental state was exact.
CREATE FUNCTION differences_from_full_rebuild() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  diffs bigint;
  last_run bigint := (SELECT max(run_id) FROM cdp.merge_runs);
BEGIN
  CREATE TEMP TABLE map_before AS SELECT * FROM cdp.identity_map;
  CREATE TEMP TABLE identifiers_before AS SELECT * FROM cdp.person_identifiers;
  CREATE TEMP TABLE cuts_before AS SELECT id_type, id_value, source, source_key, conflict_type, identifier_person,
                                          record_person FROM cdp.identity_cuts;
  CREATE TEMP TABLE persons_before AS SELECT person_id, records FROM cdp.persons;
  CALL cdp.merge_identities('obs', full_rebuild => true);
  SELECT (SELECT count(*) FROM map_before b FULL JOIN cdp.identity_map a USING (source, source_key)
           WHERE a.person_id IS DISTINCT FROM b.person_id)
       + (SELECT count(*) FROM (SELECT * FROM identifiers_before EXCEPT SELECT * FROM cdp.person_identifiers
                                UNION ALL
                                SELECT * FROM cdp.person_identifiers EXCEPT SELECT * FROM identifiers_before) d)
       + (SELECT count(*) FROM (SELECT * FROM cuts_before EXCEPT SELECT id_type, id_value, source, source_key,
                                  conflict_type, identifier_person, record_person FROM cdp.identity_cuts
                                UNION ALL
                                SELECT id_type, id_value, source, source_key, conflict_type, identifier_person,
                                       record_person FROM cdp.identity_cuts EXCEPT SELECT * FROM cuts_before) d)
       + (SELECT count(*) FROM (SELECT * FROM persons_before EXCEPT SELECT person_id, records FROM cdp.persons
                                UNION ALL
                                SELECT person_id, records FROM cdp.persons EXCEPT SELECT * FROM persons_before) d)
       + (SELECT count(*) FROM cdp.merge_runs i, cdp.merge_runs f
           WHERE i.run_id = last_run AND f.run_id = (SELECT max(run_id) FROM cdp.merge_runs)
             AND (i.links, i.records, i.identifiers, i.persons, i.cut_links, i.excluded)
                 IS DISTINCT FROM (f.links, f.records, f.identifiers, f.persons, f.cut_links, f.excluded))
       + (SELECT count(*) FROM cdp.merge_runs f WHERE f.run_id = (SELECT max(run_id) FROM cdp.merge_runs)
             AND (f.merges, f.splits, f.new_persons) <> (0, 0, 0))
    INTO diffs;
  DROP TABLE map_before, identifiers_before, cuts_before, persons_before;
  RETURN diffs;
END $$;

-- A first load, then four incremental batches in a row (~4% new records each, plus new links on old records).
CALL add_batch(0, 1500, 0, 1200);
-- A television shared by four people: it links them (4 <= 6) until batch 4 adds three more records.
INSERT INTO obs SELECT 'web', 'tv-' || g, 'device_id', 'TV-1', '2024-01-01' FROM generate_series(1, 4) g;
INSERT INTO obs SELECT 'web', 'tv-' || g, 'email', 'viewer' || g || '@mail.com', '2024-01-01' FROM generate_series(1, 4) g;
CALL cdp.merge_identities('obs');
SELECT count(DISTINCT person_id) AS tv_persons FROM cdp.identity_map WHERE source_key LIKE 'tv-%';
CALL add_batch(1, 60, 15, 1200);
CALL cdp.merge_identities('obs');
CALL add_batch(2, 60, 15, 1200);
CALL cdp.merge_identities('obs');
CALL add_batch(3, 60, 15, 1200);
CALL cdp.merge_identities('obs');
CALL add_batch(4, 60, 15, 1300);
INSERT INTO obs SELECT 'web', 'tv-' || g, 'device_id', 'tv-1', '2024-01-05' FROM generate_series(5, 7) g;
CALL cdp.merge_identities('obs');
SELECT count(DISTINCT person_id) AS tv_persons FROM cdp.identity_map WHERE source_key LIKE 'tv-%' AND source_key < 'tv-5';
SELECT status, reason, records FROM cdp.person_identifiers WHERE id_type = 'device_id' AND id_value = 'tv-1';
-- Every incremental run re-resolved a small part; they saw merges and splits (TV-1 became a hub in run 5).
SELECT run_id, full_rebuild, new_observations, links, resolved_links, resolved_links < links / 5 AS small_part,
       records, persons, merges, splits, new_persons, cut_links, excluded
  FROM cdp.merge_runs ORDER BY run_id;
SELECT differences_from_full_rebuild() AS differences_after_four_batches;

-- Two more batches, each checked against a full rebuild.
CALL add_batch(5, 60, 20, 1300);
CALL cdp.merge_identities('obs');
SELECT resolved_links < links / 2 AS small_part, differences_from_full_rebuild() AS differences
  FROM cdp.merge_runs WHERE run_id = (SELECT max(run_id) FROM cdp.merge_runs);
CALL add_batch(6, 60, 20, 1300);
CALL cdp.merge_identities('obs');
SELECT resolved_links < links / 2 AS small_part, differences_from_full_rebuild() AS differences
  FROM cdp.merge_runs WHERE run_id = (SELECT max(run_id) FROM cdp.merge_runs);

-- A run with nothing new re-resolves nothing and changes nothing.
CALL cdp.merge_identities('obs');
SELECT new_observations, resolved_links, merges, splits, new_persons, jitter,
       links = lag(links) OVER w AND persons = lag(persons) OVER w AS same_totals
  FROM cdp.merge_runs WINDOW w AS (ORDER BY run_id) ORDER BY run_id DESC LIMIT 1;

-- The session's settings, which a run changes for some statements and puts back.
SELECT current_setting('enable_seqscan') || current_setting('enable_indexscan') || current_setting('work_mem') ||
       current_setting('jit') AS settings_before \gset
-- Stored links are read back by the hash of their record's key: a record whose key shares that hash with a
-- touched record's comes back too, and stays out of the run (its 1 link is not resolved, its person stays).
-- Two such keys (hashtext's values depend on the platform's byte order, so they are searched for here):
SELECT min(k) AS key_a, max(k) AS key_b
  FROM (SELECT 'order-' || i AS k FROM generate_series(1, 400000) i) s
 GROUP BY hashtext(k) HAVING count(*) > 1 ORDER BY min(k) LIMIT 1 \gset
SELECT hashtext(:'key_a') = hashtext(:'key_b') AS same_key_hash;
INSERT INTO obs VALUES ('shop', :'key_a', 'email', 'hash-a@mail.com', '2024-01-07 12:00'),
                       ('shop', :'key_b', 'email', 'hash-b@mail.com', '2024-01-07 12:00');
CALL cdp.merge_identities('obs');
CREATE TEMP TABLE hash_persons AS SELECT source_key, person_id FROM cdp.identity_map WHERE source_key LIKE 'order-%';
INSERT INTO obs VALUES ('shop', :'key_a', 'loyalty_id', 'L-hash', '2024-01-07 13:00');
CALL cdp.merge_identities('obs');
SELECT resolved_links, (SELECT count(*) FROM hash_persons h JOIN cdp.identity_map m USING (source_key, person_id))
       AS same_persons, current_setting('enable_seqscan') || current_setting('enable_indexscan') ||
       current_setting('work_mem') || current_setting('jit') = :'settings_before' AS settings_kept,
       differences_from_full_rebuild() AS differences
  FROM cdp.merge_runs WHERE run_id = (SELECT max(run_id) FROM cdp.merge_runs);

-- Changed rules fall back to re-resolving everything (and still equal a full rebuild).
INSERT INTO cdp.identifier_blocklist (id_type, value) VALUES ('email', 'e1@mail.com');
CALL add_batch(7, 60, 20, 1300);
CALL cdp.merge_identities('obs');
SELECT resolved_links = links AS everything_resolved, differences_from_full_rebuild() AS differences
  FROM cdp.merge_runs WHERE run_id = (SELECT max(run_id) FROM cdp.merge_runs WHERE NOT full_rebuild);

-- A batch touching over a quarter of all records is re-resolved whole (cheaper), and the run leaves the
-- session's planner settings as they were.
CALL add_batch(8, 1500, 0, 1300);
CALL cdp.merge_identities('obs');
SELECT resolved_links = links AS everything_resolved, current_setting('enable_seqscan') ||
       current_setting('enable_indexscan') || current_setting('work_mem') || current_setting('jit')
       = :'settings_before' AS settings_kept
  FROM cdp.merge_runs WHERE run_id = (SELECT max(run_id) FROM cdp.merge_runs);
ROLLBACK;
RESET client_min_messages;
