-- Iterative min-label propagation in plain SQL over :schema.edges (docs/identity_bench.md): the loop a
-- team writes when it has only SQL. Every vertex starts with its own number as label; each round sets
-- label = least(label, neighbours' labels) for every vertex at once (one UPDATE over all edges) and commits;
-- it stops when a round changes nothing (then label = smallest vertex number of the component, the same
-- numbering pgr_connectedComponents reports) or when the time limit is reached between rounds.
-- Rounds needed = the largest distance from a component's smallest vertex to any of its vertices, plus
-- one round that changes nothing; the long chain alone needs 2 * chain rounds (record-identifier-record).
--   psql -v schema=bench_identity -v seconds=600 -f bench/identity_label_propagation.sql
-- Leaves :schema.lp_label(node, label) and :schema.lp_rounds(round, changed, ms) for the report.
\set ON_ERROR_STOP on
\if :{?schema} \else \set schema bench_identity \endif
\if :{?seconds} \else \set seconds 600 \endif
SET search_path = :"schema", pg_catalog;
SET client_min_messages = warning;
DROP TABLE IF EXISTS lp_label, lp_rounds;
DROP PROCEDURE IF EXISTS label_propagation(double precision);
RESET client_min_messages;

CREATE TABLE lp_rounds (round int PRIMARY KEY, changed bigint, ms double precision);

CREATE PROCEDURE label_propagation(time_limit_s double precision)
LANGUAGE plpgsql AS $$
DECLARE
  started  timestamptz := clock_timestamp();
  round_at timestamptz;
  changed  bigint;
  r        int := 0;
BEGIN
  CREATE TABLE lp_label AS
  SELECT node, node AS label FROM (SELECT source AS node FROM edges UNION SELECT target FROM edges) v;
  ALTER TABLE lp_label ADD PRIMARY KEY (node);
  ANALYZE lp_label;
  INSERT INTO lp_rounds VALUES (0, (SELECT count(*) FROM lp_label),
                                extract(epoch FROM clock_timestamp() - started) * 1000);
  COMMIT;
  LOOP
    r := r + 1;
    round_at := clock_timestamp();
    UPDATE lp_label l SET label = m.label
      FROM (SELECT node, min(label) AS label
              FROM (SELECT e.source AS node, t.label FROM edges e JOIN lp_label t ON t.node = e.target
                    UNION ALL
                    SELECT e.target, s.label FROM edges e JOIN lp_label s ON s.node = e.source) n
             GROUP BY node) m
     WHERE l.node = m.node AND m.label < l.label;
    GET DIAGNOSTICS changed = ROW_COUNT;
    INSERT INTO lp_rounds VALUES (r, changed, extract(epoch FROM clock_timestamp() - round_at) * 1000);
    COMMIT;
    EXIT WHEN changed = 0 OR clock_timestamp() - started > make_interval(secs => time_limit_s);
  END LOOP;
END $$;

CALL label_propagation(:seconds);
SELECT count(*) - 1 AS rounds, bool_or(changed = 0) AS converged, round(sum(ms)) AS total_ms,
       round(avg(ms) FILTER (WHERE round > 0)) AS avg_round_ms
  FROM lp_rounds;
