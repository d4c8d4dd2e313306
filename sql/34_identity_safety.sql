-- Identity merge safety: a run that fails in any phase (timeout while reading or resolving, memory
-- limit, a bad row discovered late, an error while writing) leaves the previous results intact.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET client_min_messages = warning;
TRUNCATE cdp.persons, cdp.identity_map, cdp.person_identifiers, cdp.identity_cuts, cdp.merge_history,
         cdp.merge_runs, cdp.identity_links, cdp.identity_tombstones RESTART IDENTITY;
ALTER SEQUENCE cdp.person_id_seq RESTART;

CREATE TABLE obs (source text, source_key text, id_type text, id_value text, observed_at timestamptz);
INSERT INTO obs SELECT 'shop', 'o' || g, 'customer_id', (g % 500 + 1)::text, '2024-01-01' FROM generate_series(1, 2000) g;
CALL cdp.merge_identities('obs');
CREATE TABLE snapshot AS
  SELECT (SELECT count(*) FROM cdp.merge_runs) AS runs,
         (SELECT md5(string_agg(source || source_key || person_id, ',' ORDER BY source, source_key))
            FROM cdp.identity_map) AS map,
         (SELECT md5(string_agg(id_type || id_value || coalesce(person_id, 0), ',' ORDER BY id_type, id_value))
            FROM cdp.person_identifiers) AS identifiers,
         (SELECT md5(string_agg(person_id || ':' || records, ',' ORDER BY person_id)) FROM cdp.persons) AS persons,
         (SELECT count(*) FROM cdp.identity_links) AS links,
         (SELECT count(*) FROM cdp.merge_history) AS history;
CREATE VIEW unchanged AS
  SELECT s.runs = (SELECT count(*) FROM cdp.merge_runs) AS runs,
         s.map = (SELECT md5(string_agg(source || source_key || person_id, ',' ORDER BY source, source_key))
                    FROM cdp.identity_map) AS map,
         s.identifiers = (SELECT md5(string_agg(id_type || id_value || coalesce(person_id, 0), ','
                                              ORDER BY id_type, id_value)) FROM cdp.person_identifiers) AS identifiers,
         s.persons = (SELECT md5(string_agg(person_id || ':' || records, ',' ORDER BY person_id))
                        FROM cdp.persons) AS persons,
         s.links = (SELECT count(*) FROM cdp.identity_links) AS links,
         s.history = (SELECT count(*) FROM cdp.merge_history) AS history
    FROM snapshot s;

-- A much larger input that would merge everybody (one shared cookie per pair of customers).
CREATE TABLE big_obs AS
  SELECT 'web' AS source, 's' || g AS source_key, 'anonymous_id' AS id_type, 'ck' || (g / 2) AS id_value,
         '2024-02-01'::timestamptz AS observed_at FROM generate_series(1, 200000) g
  UNION ALL SELECT 'web', 's' || g, 'customer_id', (g % 500)::text, '2024-02-01' FROM generate_series(1, 200000) g;
ANALYZE big_obs;

-- 1. statement_timeout fires while the run is under way.
SET statement_timeout = '100ms';
CALL cdp.merge_identities('big_obs', true);
RESET statement_timeout;
SELECT * FROM unchanged;

-- 2. The memory limit (maintenance_work_mem) is exceeded: 54000 with a hint, nothing written.
SET maintenance_work_mem = '1MB';
\set VERBOSITY default
CALL cdp.merge_identities('big_obs', true);
RESET maintenance_work_mem;
SELECT * FROM unchanged;

-- 2b. Phones are normalised (libphonenumber) on a worker thread while the observations are read: a
-- statement_timeout early in the read, one later (the read over, the worker still busy or about done),
-- and the memory limit, all stop that thread cleanly; the backend lives on and nothing is written.
CREATE TABLE phone_obs AS
  SELECT 'crm' AS source, 'c' || g AS source_key, 'phone' AS id_type,
         '020 7' || substr(lpad(g::text, 7, '0'), 1, 3) || ' ' || substr(lpad(g::text, 7, '0'), 4) AS id_value,
         '2024-02-01'::timestamptz AS observed_at FROM generate_series(1, 200000) g;
ANALYZE phone_obs;
UPDATE cdp.identity_settings SET default_phone_region = 'GB';
SET statement_timeout = '150ms';
CALL cdp.merge_identities('phone_obs', true);
SET statement_timeout = '1s';
CALL cdp.merge_identities('phone_obs', true);
RESET statement_timeout;
SET maintenance_work_mem = '1MB';
CALL cdp.merge_identities('phone_obs', true);
RESET maintenance_work_mem;
UPDATE cdp.identity_settings SET default_phone_region = 'US';
SELECT * FROM unchanged;

-- 2c. A full rebuild resolves its graph on a worker thread while the backend stores the links: an error
-- while storing (a trigger on identity_links refuses the first insert) and a cancel then (statement_timeout
-- during a slow insert) stop that thread cleanly; the backend lives on and nothing is written.
CREATE FUNCTION refuse_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'links are read-only today'; END $$;
CREATE TRIGGER refuse_links BEFORE INSERT ON cdp.identity_links FOR EACH STATEMENT EXECUTE FUNCTION refuse_links();
\set VERBOSITY terse
CALL cdp.merge_identities('big_obs', true);
DROP TRIGGER refuse_links ON cdp.identity_links;
CREATE FUNCTION slow_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_catalog.pg_sleep(30); RETURN NULL; END $$;
CREATE TRIGGER slow_links BEFORE INSERT ON cdp.identity_links FOR EACH STATEMENT EXECUTE FUNCTION slow_links();
SET statement_timeout = '3s';
CALL cdp.merge_identities('big_obs', true);
RESET statement_timeout;
\set VERBOSITY default
DROP TRIGGER slow_links ON cdp.identity_links;
DROP FUNCTION refuse_links(), slow_links();
SELECT * FROM unchanged;

-- 3. A bad row found only at the end of the input (an unknown id_type), after all else was read.
CREATE TABLE late_bad AS SELECT * FROM big_obs
  UNION ALL SELECT 'web', 'last', 'fax', '555', '2024-02-02';
CALL cdp.merge_identities('late_bad', true);
SELECT * FROM unchanged;

-- 4. An error in the last write of a run (a trigger on merge_history refuses the row).
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'history is read-only today'; END $$;
CREATE TRIGGER refuse BEFORE INSERT ON cdp.merge_history FOR EACH ROW EXECUTE FUNCTION refuse();
INSERT INTO obs VALUES ('shop', 'join', 'customer_id', '1', '2024-03-01'), ('shop', 'join', 'customer_id', '2', '2024-03-01');
UPDATE cdp.identifier_types SET max_per_person = NULL WHERE id_type = 'customer_id';
CALL cdp.merge_identities('obs');
SELECT * FROM unchanged;
DROP TRIGGER refuse ON cdp.merge_history;
DROP FUNCTION refuse();
UPDATE cdp.identifier_types SET max_per_person = 1 WHERE id_type = 'customer_id';

-- 5. Inside an explicit transaction the caller decides: ROLLBACK undoes a successful run entirely.
BEGIN;
CALL cdp.merge_identities('big_obs', true);
SELECT count(*) > 2000 AS big_map_visible_inside FROM cdp.identity_map;
ROLLBACK;
SELECT * FROM unchanged;

-- After all that, a normal run still works and picks up where the last successful one left off.
CALL cdp.merge_identities('obs');
SELECT row_number() OVER (ORDER BY run_id) AS run, new_observations, merges, cut_links FROM cdp.merge_runs ORDER BY run_id;
SELECT count(DISTINCT person_id) AS persons FROM cdp.identity_map WHERE source = 'shop';


-- A full rebuild over a different, much smaller relation replaces nearly everything (the tables are
-- rewritten rather than deleted from key by key); the result stays consistent.
CALL cdp.merge_identities('big_obs', true);
CREATE TABLE small_obs AS SELECT * FROM obs WHERE source_key IN ('o1', 'o501', 'o2');
CALL cdp.merge_identities('small_obs', true);
SELECT source_key, dense_rank() OVER (ORDER BY person_id) AS person FROM cdp.identity_map ORDER BY 1;
SELECT count(*) AS persons, sum(records) AS records,
       count(*) FILTER (WHERE NOT EXISTS (SELECT FROM cdp.identity_map m WHERE m.person_id = p.person_id)) AS orphans
  FROM cdp.persons p;
SELECT id_type, id_value, records FROM cdp.person_identifiers ORDER BY 1, 2;
SELECT kind, count(*) FROM cdp.merge_history WHERE run_id = (SELECT max(run_id) FROM cdp.merge_runs) GROUP BY kind;
DROP TABLE small_obs;

RESET client_min_messages;
DROP VIEW unchanged;
DROP TABLE obs, big_obs, phone_obs, late_bad, snapshot;
