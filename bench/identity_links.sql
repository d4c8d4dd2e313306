-- The links the competitors solve, built from :schema.observations (docs/identity_bench.md):
--   psql -v schema=bench_identity -f bench/identity_links.sql
-- Graph: one vertex per record (source, source_key) and one per RAW identifier (id_type, id_value exactly
-- as written: no trimming, case folding, gmail or phone normalisation, no junk list, no hub cap), and one
-- undirected edge per observation (record -- identifier). Two records are in one connected component iff a
-- chain of shared raw identifier values joins them: the textbook "identity graph" the plain-SQL and
-- pgRouting approaches compute. cdp.merge_identities reads the same observations (one link each) but also
-- normalises, drops junk and hubs and cuts conflicting accounts, which no competitor here does.
-- Vertex numbers: records 1..R in (source, source_key) order, identifiers R+1.. in (id_type, id_value) order.
--   :schema.record_vertex(source, source_key, vertex)   :schema.value_vertex(id_type, id_value, vertex)
--   :schema.edges(id, source, target, cost, reverse_cost)  (pgRouting's edge layout, bigint ids)
\set ON_ERROR_STOP on
\if :{?schema} \else \set schema bench_identity \endif
SET search_path = :"schema", pg_catalog;
SET client_min_messages = warning;
DROP TABLE IF EXISTS edges, record_vertex, value_vertex;
RESET client_min_messages;
SET work_mem = '256MB';

CREATE UNLOGGED TABLE record_vertex AS
SELECT source, source_key, row_number() OVER (ORDER BY source, source_key) AS vertex
  FROM (SELECT DISTINCT source, source_key FROM observations) r;
CREATE UNLOGGED TABLE value_vertex AS
SELECT id_type, id_value, (SELECT count(*) FROM record_vertex) + row_number() OVER (ORDER BY id_type, id_value) AS vertex
  FROM (SELECT DISTINCT id_type, id_value FROM observations WHERE id_value IS NOT NULL) v;
CREATE UNLOGGED TABLE edges AS
SELECT row_number() OVER () AS id, r.vertex AS source, v.vertex AS target,
       1.0::float8 AS cost, 1.0::float8 AS reverse_cost
  FROM (SELECT DISTINCT source, source_key, id_type, id_value FROM observations WHERE id_value IS NOT NULL) o
  JOIN record_vertex r USING (source, source_key)
  JOIN value_vertex v USING (id_type, id_value);
ALTER TABLE edges ADD PRIMARY KEY (id);
CREATE INDEX ON record_vertex (source, source_key);
ANALYZE record_vertex; ANALYZE value_vertex; ANALYZE edges;
SELECT (SELECT count(*) FROM record_vertex) AS record_vertices, (SELECT count(*) FROM value_vertex) AS value_vertices,
       (SELECT count(*) FROM edges) AS edges;
