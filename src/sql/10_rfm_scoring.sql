
-- ============================================================================================
-- RFM scoring: cdp.rfm_score (window function), cdp.rfm_breaks (aggregate), cdp.rfm_bucket,
-- and segment maps (cdp.rfm_segment_rules, cdp.rfm_segment, cdp.rfm_segment_map_gaps).
-- The scoring rule is documented in docs/rfm_scoring.md and implemented in src/core/rfm_scoring.cpp.
-- ============================================================================================

-- rfm_score: one C window function per value type. Scores depend only on the partition's values
-- (not on the window's ORDER BY or frame); see docs/rfm_scoring.md.
CREATE FUNCTION cdp.rfm_score(value double precision, bins integer DEFAULT 5) RETURNS integer
  AS 'MODULE_PATHNAME', 'cdp_rfm_score_float8' LANGUAGE C WINDOW IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_score(value numeric, bins integer DEFAULT 5) RETURNS integer
  AS 'MODULE_PATHNAME', 'cdp_rfm_score_numeric' LANGUAGE C WINDOW IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_score(value bigint, bins integer DEFAULT 5) RETURNS integer
  AS 'MODULE_PATHNAME', 'cdp_rfm_score_int8' LANGUAGE C WINDOW IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_score(value timestamp with time zone, bins integer DEFAULT 5) RETURNS integer
  AS 'MODULE_PATHNAME', 'cdp_rfm_score_timestamptz' LANGUAGE C WINDOW IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION cdp.rfm_score(double precision, integer) IS
  'Window function: RFM score 1..bins (default 5) of value within its window partition. Equal values share a score, larger values never score lower, every score is used when there are at least bins distinct values, scores are as balanced as ties allow. NULL value -> NULL; NaN -> ERROR 22023.';
COMMENT ON FUNCTION cdp.rfm_score(numeric, integer) IS
  'Window function: RFM score 1..bins (default 5) of value within its window partition. Equal values share a score, larger values never score lower, every score is used when there are at least bins distinct values, scores are as balanced as ties allow. NULL value -> NULL; NaN -> ERROR 22023.';
COMMENT ON FUNCTION cdp.rfm_score(bigint, integer) IS
  'Window function: RFM score 1..bins (default 5) of value within its window partition. Equal values share a score, larger values never score lower, every score is used when there are at least bins distinct values, scores are as balanced as ties allow. NULL value -> NULL.';
COMMENT ON FUNCTION cdp.rfm_score(timestamp with time zone, integer) IS
  'Window function: RFM score 1..bins (default 5) of value within its window partition; a later timestamp scores higher (recency from last_order_at). Equal values share a score, every score is used when there are at least bins distinct values, scores are as balanced as ties allow. NULL value -> NULL.';

-- rfm_breaks: values are collected in the aggregate context and scored once by the final
-- function. No combine function: scoring needs every value of the group at once, so the aggregate
-- runs in the leader (PARALLEL SAFE: it may be used in parallel queries, it is just not split).
CREATE FUNCTION cdp.rfm_breaks_transition(state internal, value double precision, bins integer) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_float8_transition' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_transition(state internal, value double precision) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_float8_transition' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_float8_final(state internal) RETURNS double precision[]
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_float8_final' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_transition(state internal, value numeric, bins integer) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_numeric_transition' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_transition(state internal, value numeric) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_numeric_transition' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_numeric_final(state internal) RETURNS numeric[]
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_numeric_final' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_transition(state internal, value bigint, bins integer) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_int8_transition' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_transition(state internal, value bigint) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_int8_transition' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_int8_final(state internal) RETURNS bigint[]
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_int8_final' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_transition(state internal, value timestamp with time zone, bins integer) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_timestamptz_transition' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_transition(state internal, value timestamp with time zone) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_timestamptz_transition' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_breaks_timestamptz_final(state internal) RETURNS timestamp with time zone[]
  AS 'MODULE_PATHNAME', 'cdp_rfm_breaks_timestamptz_final' LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

-- Aggregates cannot have DEFAULT arguments, so each type has a one-argument form (bins = 5).
CREATE AGGREGATE cdp.rfm_breaks(value double precision, bins integer) (
  SFUNC = cdp.rfm_breaks_transition, STYPE = internal, FINALFUNC = cdp.rfm_breaks_float8_final, PARALLEL = SAFE);
CREATE AGGREGATE cdp.rfm_breaks(value double precision) (
  SFUNC = cdp.rfm_breaks_transition, STYPE = internal, FINALFUNC = cdp.rfm_breaks_float8_final, PARALLEL = SAFE);
CREATE AGGREGATE cdp.rfm_breaks(value numeric, bins integer) (
  SFUNC = cdp.rfm_breaks_transition, STYPE = internal, FINALFUNC = cdp.rfm_breaks_numeric_final, PARALLEL = SAFE);
CREATE AGGREGATE cdp.rfm_breaks(value numeric) (
  SFUNC = cdp.rfm_breaks_transition, STYPE = internal, FINALFUNC = cdp.rfm_breaks_numeric_final, PARALLEL = SAFE);
CREATE AGGREGATE cdp.rfm_breaks(value bigint, bins integer) (
  SFUNC = cdp.rfm_breaks_transition, STYPE = internal, FINALFUNC = cdp.rfm_breaks_int8_final, PARALLEL = SAFE);
CREATE AGGREGATE cdp.rfm_breaks(value bigint) (
  SFUNC = cdp.rfm_breaks_transition, STYPE = internal, FINALFUNC = cdp.rfm_breaks_int8_final, PARALLEL = SAFE);
CREATE AGGREGATE cdp.rfm_breaks(value timestamp with time zone, bins integer) (
  SFUNC = cdp.rfm_breaks_transition, STYPE = internal, FINALFUNC = cdp.rfm_breaks_timestamptz_final, PARALLEL = SAFE);
CREATE AGGREGATE cdp.rfm_breaks(value timestamp with time zone) (
  SFUNC = cdp.rfm_breaks_transition, STYPE = internal, FINALFUNC = cdp.rfm_breaks_timestamptz_final, PARALLEL = SAFE);

COMMENT ON FUNCTION cdp.rfm_breaks_transition(internal, double precision, integer) IS
  'Transition function of cdp.rfm_breaks(double precision, integer): collects the non-NULL values.';
COMMENT ON FUNCTION cdp.rfm_breaks_transition(internal, double precision) IS
  'Transition function of cdp.rfm_breaks(double precision): collects the non-NULL values (bins = 5).';
COMMENT ON FUNCTION cdp.rfm_breaks_float8_final(internal) IS
  'Final function of cdp.rfm_breaks for double precision: scores the collected values and returns the lowest value of each score.';
COMMENT ON FUNCTION cdp.rfm_breaks_transition(internal, numeric, integer) IS
  'Transition function of cdp.rfm_breaks(numeric, integer): collects the non-NULL values.';
COMMENT ON FUNCTION cdp.rfm_breaks_transition(internal, numeric) IS
  'Transition function of cdp.rfm_breaks(numeric): collects the non-NULL values (bins = 5).';
COMMENT ON FUNCTION cdp.rfm_breaks_numeric_final(internal) IS
  'Final function of cdp.rfm_breaks for numeric: scores the collected values and returns the lowest value of each score.';
COMMENT ON FUNCTION cdp.rfm_breaks_transition(internal, bigint, integer) IS
  'Transition function of cdp.rfm_breaks(bigint, integer): collects the non-NULL values.';
COMMENT ON FUNCTION cdp.rfm_breaks_transition(internal, bigint) IS
  'Transition function of cdp.rfm_breaks(bigint): collects the non-NULL values (bins = 5).';
COMMENT ON FUNCTION cdp.rfm_breaks_int8_final(internal) IS
  'Final function of cdp.rfm_breaks for bigint: scores the collected values and returns the lowest value of each score.';
COMMENT ON FUNCTION cdp.rfm_breaks_transition(internal, timestamp with time zone, integer) IS
  'Transition function of cdp.rfm_breaks(timestamp with time zone, integer): collects the non-NULL values.';
COMMENT ON FUNCTION cdp.rfm_breaks_transition(internal, timestamp with time zone) IS
  'Transition function of cdp.rfm_breaks(timestamp with time zone): collects the non-NULL values (bins = 5).';
COMMENT ON FUNCTION cdp.rfm_breaks_timestamptz_final(internal) IS
  'Final function of cdp.rfm_breaks for timestamp with time zone: scores the collected values and returns the lowest value of each score.';

COMMENT ON AGGREGATE cdp.rfm_breaks(double precision, integer) IS
  'Thresholds of cdp.rfm_score: an array of bins elements, element b = the lowest value with score b (NULL when no value has score b). NULL when there are no non-NULL values.';
COMMENT ON AGGREGATE cdp.rfm_breaks(double precision) IS
  'Thresholds of cdp.rfm_score with 5 bins: element b = the lowest value with score b (NULL when no value has score b).';
COMMENT ON AGGREGATE cdp.rfm_breaks(numeric, integer) IS
  'Thresholds of cdp.rfm_score: an array of bins elements, element b = the lowest value with score b (NULL when no value has score b). NULL when there are no non-NULL values.';
COMMENT ON AGGREGATE cdp.rfm_breaks(numeric) IS
  'Thresholds of cdp.rfm_score with 5 bins: element b = the lowest value with score b (NULL when no value has score b).';
COMMENT ON AGGREGATE cdp.rfm_breaks(bigint, integer) IS
  'Thresholds of cdp.rfm_score: an array of bins elements, element b = the lowest value with score b (NULL when no value has score b). NULL when there are no non-NULL values.';
COMMENT ON AGGREGATE cdp.rfm_breaks(bigint) IS
  'Thresholds of cdp.rfm_score with 5 bins: element b = the lowest value with score b (NULL when no value has score b).';
COMMENT ON AGGREGATE cdp.rfm_breaks(timestamp with time zone, integer) IS
  'Thresholds of cdp.rfm_score: an array of bins elements, element b = the earliest value with score b (NULL when no value has score b). NULL when there are no non-NULL values.';
COMMENT ON AGGREGATE cdp.rfm_breaks(timestamp with time zone) IS
  'Thresholds of cdp.rfm_score with 5 bins: element b = the earliest value with score b (NULL when no value has score b).';

CREATE FUNCTION cdp.rfm_bucket(value double precision, breaks double precision[]) RETURNS integer
  AS 'MODULE_PATHNAME', 'cdp_rfm_bucket_float8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_bucket(value numeric, breaks numeric[]) RETURNS integer
  AS 'MODULE_PATHNAME', 'cdp_rfm_bucket_numeric' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_bucket(value bigint, breaks bigint[]) RETURNS integer
  AS 'MODULE_PATHNAME', 'cdp_rfm_bucket_int8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION cdp.rfm_bucket(value timestamp with time zone, breaks timestamp with time zone[]) RETURNS integer
  AS 'MODULE_PATHNAME', 'cdp_rfm_bucket_timestamptz' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION cdp.rfm_bucket(double precision, double precision[]) IS
  'Score of value under given lower bounds (e.g. from cdp.rfm_breaks): the largest b with breaks[b] <= value, skipping NULL elements; below every bound -> the lowest score with a bound. breaks: 1..100 elements, non-decreasing, at least one non-NULL, no NaN (else ERROR 22023).';
COMMENT ON FUNCTION cdp.rfm_bucket(numeric, numeric[]) IS
  'Score of value under given lower bounds (e.g. from cdp.rfm_breaks): the largest b with breaks[b] <= value, skipping NULL elements; below every bound -> the lowest score with a bound. breaks: 1..100 elements, non-decreasing, at least one non-NULL, no NaN (else ERROR 22023).';
COMMENT ON FUNCTION cdp.rfm_bucket(bigint, bigint[]) IS
  'Score of value under given lower bounds (e.g. from cdp.rfm_breaks): the largest b with breaks[b] <= value, skipping NULL elements; below every bound -> the lowest score with a bound. breaks: 1..100 elements, non-decreasing, at least one non-NULL (else ERROR 22023).';
COMMENT ON FUNCTION cdp.rfm_bucket(timestamp with time zone, timestamp with time zone[]) IS
  'Score of value under given lower bounds (e.g. from cdp.rfm_breaks): the largest b with breaks[b] <= value, skipping NULL elements; before every bound -> the lowest score with a bound. breaks: 1..100 elements, non-decreasing, at least one non-NULL (else ERROR 22023).';

-- --------------------------------------------------------------------------------------------
-- Segment maps. Shipped maps are rows with builtin = true: CREATE EXTENSION inserts them, so
-- pg_dump keeps only the users' rows (WHERE NOT builtin) and a restore never meets a duplicate key.
-- Shipped rows are read-only (a trigger refuses edits that a dump could not keep); to customise a
-- shipped map, copy it with cdp.rfm_copy_segment_map and edit the copy.
--
-- Loading a map (e.g. from C++): SELECT r, f, m, segment FROM cdp.rfm_segment_rules
--   WHERE segment_map = $1   -- at most 125 rows, one per covered (r, f, m) cell; no rows = unknown map.
-- --------------------------------------------------------------------------------------------
CREATE TABLE cdp.rfm_segment_rules (
  segment_map text NOT NULL CHECK (segment_map <> ''),
  r integer NOT NULL CHECK (r BETWEEN 1 AND 5),
  f integer NOT NULL CHECK (f BETWEEN 1 AND 5),
  m integer NOT NULL CHECK (m BETWEEN 1 AND 5),
  segment text NOT NULL CHECK (segment <> ''),
  builtin boolean NOT NULL DEFAULT false,
  PRIMARY KEY (segment_map, r, f, m)
);
COMMENT ON TABLE cdp.rfm_segment_rules IS
  'RFM segment maps: one row per (segment_map, r, f, m) cell naming its segment. Add your own maps here (kept by pg_dump); shipped maps (builtin = true: default, score_tiers) are read-only, copy them with cdp.rfm_copy_segment_map to customise.';
COMMENT ON COLUMN cdp.rfm_segment_rules.segment_map IS 'Name of the map, passed as segment_map to cdp.rfm_segment and cdp.rfm.';
COMMENT ON COLUMN cdp.rfm_segment_rules.r IS 'Recency score 1..5 (5 = most recent).';
COMMENT ON COLUMN cdp.rfm_segment_rules.f IS 'Frequency score 1..5 (5 = most orders).';
COMMENT ON COLUMN cdp.rfm_segment_rules.m IS 'Monetary score 1..5 (5 = highest spend).';
COMMENT ON COLUMN cdp.rfm_segment_rules.segment IS 'Segment name for the cell.';
COMMENT ON COLUMN cdp.rfm_segment_rules.builtin IS 'true for rows shipped with pg_cdp (read-only, recreated by CREATE EXTENSION, not dumped).';

-- The default map, on the well-known recency x frequency grid (m only splits Hibernating / Lost):
--   r\f   1                2                    3                    4                  5
--   5     New Customers    Potential Loyalists  Potential Loyalists  Champions          Champions
--   4     Promising        Potential Loyalists  Potential Loyalists  Loyal Customers    Loyal Customers
--   3     About To Sleep   About To Sleep       Need Attention       Loyal Customers    Loyal Customers
--   2     Hibernating      Hibernating          At Risk              At Risk            Cannot Lose Them
--   1     Lost/Hibernating Lost/Hibernating     At Risk              At Risk            Cannot Lose Them
-- Lost = r 1, f 1-2 and m 1-2 (long gone, few orders, little spend); r 1-2 f 1-2 otherwise Hibernating.
INSERT INTO cdp.rfm_segment_rules (segment_map, r, f, m, segment, builtin)
SELECT 'default', r, f, m,
       CASE
         WHEN r = 5 AND f >= 4 THEN 'Champions'
         WHEN r IN (3, 4) AND f >= 4 THEN 'Loyal Customers'
         WHEN r IN (4, 5) AND f IN (2, 3) THEN 'Potential Loyalists'
         WHEN r = 5 AND f = 1 THEN 'New Customers'
         WHEN r = 4 AND f = 1 THEN 'Promising'
         WHEN r = 3 AND f = 3 THEN 'Need Attention'
         WHEN r = 3 AND f <= 2 THEN 'About To Sleep'
         WHEN r <= 2 AND f IN (3, 4) THEN 'At Risk'
         WHEN r <= 2 AND f = 5 THEN 'Cannot Lose Them'
         WHEN r = 1 AND f <= 2 AND m <= 2 THEN 'Lost'
         WHEN r <= 2 AND f <= 2 THEN 'Hibernating'
       END,
       true
  FROM pg_catalog.generate_series(1, 5) r, pg_catalog.generate_series(1, 5) f, pg_catalog.generate_series(1, 5) m;

-- The score-sum tier map: r + f + m of 13-15 Platinum, 10-12 Gold, 7-9 Silver, 3-6 Bronze.
INSERT INTO cdp.rfm_segment_rules (segment_map, r, f, m, segment, builtin)
SELECT 'score_tiers', r, f, m,
       CASE WHEN r + f + m >= 13 THEN 'Platinum'
            WHEN r + f + m >= 10 THEN 'Gold'
            WHEN r + f + m >= 7 THEN 'Silver'
            ELSE 'Bronze' END,
       true
  FROM pg_catalog.generate_series(1, 5) r, pg_catalog.generate_series(1, 5) f, pg_catalog.generate_series(1, 5) m;

SELECT pg_catalog.pg_extension_config_dump('cdp.rfm_segment_rules', 'WHERE NOT builtin');

CREATE FUNCTION cdp.rfm_segment_rules_guard() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION 'cdp.rfm_segment_rules cannot be truncated'
      USING ERRCODE = '55000', HINT = 'Delete the rows of your own maps: DELETE FROM cdp.rfm_segment_rules WHERE NOT builtin.';
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.builtin THEN
    RAISE EXCEPTION 'segment map "%" is shipped with pg_cdp and cannot be changed', OLD.segment_map
      USING ERRCODE = '55000',
            HINT = format('Copy it and edit the copy: SELECT cdp.rfm_copy_segment_map(%L, %L);', OLD.segment_map, 'my_map');
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.builtin THEN
    RAISE EXCEPTION 'rows of your own segment maps must have builtin = false'
      USING ERRCODE = '55000', DETAIL = 'builtin = true marks the rows shipped with pg_cdp, which pg_dump does not keep.';
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION cdp.rfm_segment_rules_guard() IS
  'Trigger function keeping the shipped rows of cdp.rfm_segment_rules read-only, so that pg_dump (which keeps only rows WHERE NOT builtin) loses no edit.';
CREATE TRIGGER rfm_segment_rules_guard BEFORE INSERT OR UPDATE OR DELETE ON cdp.rfm_segment_rules
  FOR EACH ROW EXECUTE FUNCTION cdp.rfm_segment_rules_guard();
CREATE TRIGGER rfm_segment_rules_no_truncate BEFORE TRUNCATE ON cdp.rfm_segment_rules
  FOR EACH STATEMENT EXECUTE FUNCTION cdp.rfm_segment_rules_guard();

-- Raises 42704 naming the known maps when segment_map has no rules.
CREATE FUNCTION cdp.rfm_check_segment_map(segment_map text) RETURNS void
  LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF segment_map IS NULL THEN
    RAISE EXCEPTION 'segment_map must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM cdp.rfm_segment_rules s WHERE s.segment_map = rfm_check_segment_map.segment_map) THEN
    RAISE EXCEPTION 'segment map "%" does not exist', segment_map
      USING ERRCODE = '42704',
            DETAIL = 'Known maps: ' || coalesce((SELECT string_agg(DISTINCT s.segment_map, ', ' ORDER BY s.segment_map)
                                                   FROM cdp.rfm_segment_rules s), '(none)') || '.',
            HINT = 'Add its cells to cdp.rfm_segment_rules or copy a map with cdp.rfm_copy_segment_map.';
  END IF;
END
$$;
COMMENT ON FUNCTION cdp.rfm_check_segment_map(text) IS
  'Raises ERROR 42704 (listing the known maps) unless cdp.rfm_segment_rules has rules for segment_map; 22004 for NULL.';

-- C: reads the map once per statement (the query shape above) and looks cells up in memory.
CREATE FUNCTION cdp.rfm_segment(r integer, f integer, m integer, segment_map text DEFAULT 'default') RETURNS text
  AS 'MODULE_PATHNAME', 'cdp_rfm_segment' LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION cdp.rfm_segment(integer, integer, integer, text) IS
  'Segment name of the (r, f, m) cell in a map of cdp.rfm_segment_rules (default map ''default''). NULL score -> NULL; score outside 1..5 -> ERROR 22023; unknown map -> ERROR 42704 listing the known maps; a cell the map does not cover -> NULL.';

CREATE FUNCTION cdp.rfm_segment_map_gaps(segment_map text)
  RETURNS TABLE (r integer, f integer, m integer)
  LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM cdp.rfm_check_segment_map(segment_map);
  RETURN QUERY
    SELECT cell_r, cell_f, cell_m
      FROM generate_series(1, 5) cell_r, generate_series(1, 5) cell_f, generate_series(1, 5) cell_m
     WHERE NOT EXISTS (SELECT 1 FROM cdp.rfm_segment_rules s
                        WHERE s.segment_map = rfm_segment_map_gaps.segment_map
                          AND s.r = cell_r AND s.f = cell_f AND s.m = cell_m)
     ORDER BY 1, 2, 3;
END
$$;
COMMENT ON FUNCTION cdp.rfm_segment_map_gaps(text) IS
  'The (r, f, m) cells of 1..5 x 1..5 x 1..5 that a segment map does not cover, in order; no rows = complete map. Unknown map -> ERROR 42704.';

CREATE FUNCTION cdp.rfm_copy_segment_map(source_map text, target_map text) RETURNS integer
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  copied integer;
BEGIN
  PERFORM cdp.rfm_check_segment_map(source_map);
  IF target_map IS NULL OR target_map = '' THEN
    RAISE EXCEPTION 'target_map must be a non-empty name' USING ERRCODE = '22023';
  END IF;
  IF EXISTS (SELECT 1 FROM cdp.rfm_segment_rules s WHERE s.segment_map = target_map) THEN
    RAISE EXCEPTION 'segment map "%" already exists', target_map
      USING ERRCODE = '42710', HINT = 'Delete its rows first or choose another name.';
  END IF;
  INSERT INTO cdp.rfm_segment_rules (segment_map, r, f, m, segment, builtin)
  SELECT target_map, s.r, s.f, s.m, s.segment, false
    FROM cdp.rfm_segment_rules s WHERE s.segment_map = source_map;
  GET DIAGNOSTICS copied = ROW_COUNT;
  RETURN copied;
END
$$;
COMMENT ON FUNCTION cdp.rfm_copy_segment_map(text, text) IS
  'Copies every cell of source_map into a new, editable map target_map (builtin = false, kept by pg_dump); returns the number of cells copied. Unknown source -> ERROR 42704; existing target -> ERROR 42710.';
