-- pg_cdp install script, generated from src/sql/*.sql in name order (one file per capability).
\echo Use "CREATE EXTENSION pg_cdp" to load this file. \quit

COMMENT ON SCHEMA cdp IS
  'pg_cdp: identity merge, RFM scoring, lifecycle stages and customer profiles over the shop''s own tables';
