-- Checks the planted traps against cdp.merge_identities' result (docs/identity_bench.md):
--   psql -v schema=bench_identity -v increment=false -f bench/identity_checks.sql
-- Prints one "PASS|FAIL <check>: <detail>" line per check. :increment = true when the increment's
-- records have been merged too (they are then expected in cdp.identity_map).
\set ON_ERROR_STOP on
\if :{?schema} \else \set schema bench_identity \endif
\if :{?increment} \else \set increment false \endif
SET search_path = :"schema", pg_catalog;
SET work_mem = '256MB';
\pset format unaligned
\pset tuples_only on

CREATE TEMP TABLE check_map AS
SELECT t.source, t.source_key, t.person AS planted, t.trap, m.person_id
  FROM truth t LEFT JOIN cdp.identity_map m USING (source, source_key)
 WHERE :increment OR NOT t.increment;
ANALYZE check_map;

CREATE TEMP TABLE check_results (n serial, ok boolean, name text, detail text);

-- Every record has a person.
INSERT INTO check_results (ok, name, detail)
SELECT count(*) FILTER (WHERE person_id IS NULL) = 0, 'every record mapped',
       format('%s records, %s without a person', count(*), count(*) FILTER (WHERE person_id IS NULL))
  FROM check_map;

-- No false merge anywhere: a cdp person never holds records of two planted people. Junk values, hubs and
-- conflicting accounts are the planted ways two people could be glued together.
INSERT INTO check_results (ok, name, detail)
SELECT count(*) = 0, 'no person mixes two planted people (junk, hubs, conflicts)',
       format('%s persons mix people; by trap of their records: %s', count(*),
              coalesce((SELECT string_agg(trap || '=' || c, ', ' ORDER BY trap)
                          FROM (SELECT trap, count(DISTINCT person_id) AS c FROM check_map
                                 WHERE person_id IN (SELECT person_id FROM check_map GROUP BY person_id
                                                      HAVING count(DISTINCT planted) > 1)
                                 GROUP BY trap) x), '-'))
  FROM (SELECT person_id FROM check_map WHERE person_id IS NOT NULL GROUP BY person_id
        HAVING count(DISTINCT planted) > 1) bad;

-- Junk values link nobody: cdp.person_id() of each planted junk spelling is NULL, and it is recorded as
-- excluded (blocklisted or invalid).
INSERT INTO check_results (ok, name, detail)
SELECT count(*) FILTER (WHERE cdp.person_id(id_type, id_value) IS NOT NULL) = 0, 'junk values link nobody',
       format('%s junk spellings, %s resolve to a person; records carrying junk: %s',
              count(*), count(*) FILTER (WHERE cdp.person_id(id_type, id_value) IS NOT NULL),
              (SELECT count(*) FROM check_map WHERE trap = 'junk'))
  FROM planted WHERE trap = 'junk';

-- Hubs link nobody: each kiosk device / till email resolves to no person and is excluded as a hub.
INSERT INTO check_results (ok, name, detail)
SELECT count(*) FILTER (WHERE cdp.person_id(p.id_type, p.id_value) IS NOT NULL OR i.reason IS DISTINCT FROM 'hub') = 0,
       'hubs link nobody',
       format('%s hub values (%s records each planted), %s resolve to a person, %s not excluded as hub',
              count(*), (SELECT count(*) FROM check_map WHERE trap IN ('device_hub', 'email_hub')) / greatest(count(*), 1),
              count(*) FILTER (WHERE cdp.person_id(p.id_type, p.id_value) IS NOT NULL),
              count(*) FILTER (WHERE i.reason IS DISTINCT FROM 'hub'))
  FROM planted p
  LEFT JOIN cdp.person_identifiers i ON i.id_type = p.id_type AND i.id_value = lower(p.id_value)
 WHERE p.trap IN ('device_hub', 'email_hub');

-- Conflicting accounts stay apart: the two customer_ids of each bridged pair belong to two persons.
INSERT INTO check_results (ok, name, detail)
SELECT count(*) FILTER (WHERE pa IS NULL OR pb IS NULL OR pa = pb) = 0, 'conflicting accounts stay apart',
       format('%s bridged pairs (household phone or family email), %s merged, %s unresolved',
              count(*), count(*) FILTER (WHERE pa = pb), count(*) FILTER (WHERE pa IS NULL OR pb IS NULL))
  FROM (SELECT a.grp, cdp.person_id(a.id_type, a.id_value) AS pa, cdp.person_id(b.id_type, b.id_value) AS pb
          FROM planted a JOIN planted b ON b.grp = a.grp AND b.trap = 'conflict_b'
         WHERE a.trap = 'conflict_a') x;

-- Format variants merge: for every ordinary planted person, the records carrying one of their emails (in
-- whatever spelling) are one person, and likewise for phones.
INSERT INTO check_results (ok, name, detail)
SELECT count(*) FILTER (WHERE persons > 1) = 0, 'format variants merge (' || id_type || ')',
       format('%s planted people with an %s, %s of them written in 2+ spellings; %s split over 2+ persons',
              count(*), id_type, count(*) FILTER (WHERE spellings > 1), count(*) FILTER (WHERE persons > 1))
  FROM (SELECT o.id_type, c.planted, count(DISTINCT o.id_value) AS spellings, count(DISTINCT c.person_id) AS persons
          FROM observations o JOIN check_map c USING (source, source_key)
         WHERE c.trap = 'ordinary' AND o.id_type IN ('email', 'phone')
         GROUP BY o.id_type, c.planted) x
 GROUP BY id_type;

-- Spot checks through cdp.person_id(): different spellings of one value give the same person.
INSERT INTO check_results (ok, name, detail)
SELECT count(*) FILTER (WHERE p1 IS NULL OR p1 IS DISTINCT FROM p2) = 0, 'person_id() agrees across spellings',
       format('%s spelling pairs, %s disagree: %s', count(*), count(*) FILTER (WHERE p1 IS NULL OR p1 IS DISTINCT FROM p2),
              coalesce(array_to_string((array_agg(format('%L/%L', a, b) ORDER BY a, b)
                                        FILTER (WHERE p1 IS NULL OR p1 IS DISTINCT FROM p2))[1:5], ' '), '-'))
  FROM (SELECT a, b, cdp.person_id(t, a) AS p1, cdp.person_id(t, b) AS p2
          FROM (SELECT DISTINCT ON (o1.id_type, o1.id_value) o1.id_type AS t, o1.id_value AS a, o2.id_value AS b
                  FROM observations o1 JOIN check_map c1 USING (source, source_key)
                  JOIN check_map c2 ON c2.planted = c1.planted AND c2.trap = 'ordinary'
                  JOIN observations o2 ON o2.source = c2.source AND o2.source_key = c2.source_key
                                      AND o2.id_type = o1.id_type AND o2.id_value <> o1.id_value
                 WHERE c1.trap = 'ordinary' AND c1.planted <= 200 AND o1.id_type IN ('email', 'phone')
                 ORDER BY o1.id_type, o1.id_value, o2.id_value) pairs) x;

-- The long chain is one person.
INSERT INTO check_results (ok, name, detail)
SELECT count(DISTINCT person_id) = 1 AND count(*) FILTER (WHERE person_id IS NULL) = 0, 'long chain is one person',
       format('%s chain records in %s person(s)', count(*), count(DISTINCT person_id))
  FROM check_map WHERE trap = 'chain';

SELECT CASE WHEN ok THEN 'PASS' ELSE 'FAIL' END || ' ' || name || ': ' || detail FROM check_results ORDER BY n;
SELECT 'summary: ' || count(*) FILTER (WHERE ok) || ' passed, ' || count(*) FILTER (WHERE NOT ok) || ' failed'
  FROM check_results;
