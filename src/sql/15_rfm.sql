
-- ============================================================================================
-- RFM statistics and one-call RFM over an order table (src/pg/rfm_agg.cpp, src/pg/rfm_table.cpp)
-- Definitions, everywhere: an order is a row with a positive amount; monetary is the sum of all
-- amounts (refunds are negative rows); first/last order times are over positive orders.
-- ============================================================================================

CREATE TYPE cdp.rfm_stats AS (
  first_order_at      timestamptz,
  last_order_at       timestamptz,
  orders              bigint,
  monetary            numeric,
  average_order_value numeric
);
COMMENT ON TYPE cdp.rfm_stats IS
  'Result of cdp.rfm_agg: first/last positive order, number of positive orders, monetary (sum of all amounts, '
  'refunds included) and average order value (sum of positive amounts / orders)';

CREATE FUNCTION cdp.rfm_agg_transition(internal, timestamptz, numeric) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_agg_transition'
  LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION cdp.rfm_agg_transition(internal, timestamptz, numeric) IS
  'Transition function of cdp.rfm_agg: folds one order row in (NULL ordered_at or amount: row ignored; '
  'NaN/Infinity amount: ERROR 22023)';

CREATE FUNCTION cdp.rfm_agg_combine(internal, internal) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_agg_combine'
  LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION cdp.rfm_agg_combine(internal, internal) IS
  'Combine function of cdp.rfm_agg: merges two partial states (parallel aggregation)';

CREATE FUNCTION cdp.rfm_agg_serialize(internal) RETURNS bytea
  AS 'MODULE_PATHNAME', 'cdp_rfm_agg_serialize'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION cdp.rfm_agg_serialize(internal) IS
  'Serialize function of cdp.rfm_agg: a partial state as versioned fixed-width bytes';

CREATE FUNCTION cdp.rfm_agg_deserialize(bytea, internal) RETURNS internal
  AS 'MODULE_PATHNAME', 'cdp_rfm_agg_deserialize'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION cdp.rfm_agg_deserialize(bytea, internal) IS
  'Deserialize function of cdp.rfm_agg: validates the bytes (ERROR 22P03 when truncated, oversized or inconsistent)';

CREATE FUNCTION cdp.rfm_agg_final(internal) RETURNS cdp.rfm_stats
  AS 'MODULE_PATHNAME', 'cdp_rfm_agg_final'
  LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION cdp.rfm_agg_final(internal) IS
  'Final function of cdp.rfm_agg: builds the cdp.rfm_stats row';

CREATE AGGREGATE cdp.rfm_agg(ordered_at timestamptz, amount numeric) (
  SFUNC        = cdp.rfm_agg_transition,
  STYPE        = internal,
  SSPACE       = 112,
  FINALFUNC    = cdp.rfm_agg_final,
  COMBINEFUNC  = cdp.rfm_agg_combine,
  SERIALFUNC   = cdp.rfm_agg_serialize,
  DESERIALFUNC = cdp.rfm_agg_deserialize,
  PARALLEL     = SAFE
);
COMMENT ON AGGREGATE cdp.rfm_agg(timestamptz, numeric) IS
  'Per-customer order statistics (cdp.rfm_stats) with exact money; rows with NULL ordered_at or amount are '
  'ignored, NULL when no row remains; parallel safe';

CREATE FUNCTION cdp.rfm(orders regclass, customer_column text, ordered_at_column text, amount_column text,
                        as_of timestamptz, bins integer DEFAULT 5, segment_map text DEFAULT 'default')
  RETURNS TABLE (customer_key text, recency_days double precision, frequency bigint, monetary numeric,
                 r integer, f integer, m integer, segment text)
  AS 'MODULE_PATHNAME', 'cdp_rfm_table'
  LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL RESTRICTED ROWS 100000;
COMMENT ON FUNCTION cdp.rfm(regclass, text, text, text, timestamptz, integer, text) IS
  'RFM scores and segment of every customer of an order table in one call: orders after as_of ignored, '
  'frequency = positive rows, monetary = sum of all amounts, recency_days = days from the last positive order '
  'to as_of; customers without a positive order are not returned (see docs/rfm.md)';
