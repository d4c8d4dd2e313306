// cdp.rfm(orders regclass, customer_column, ordered_at_column, amount_column, as_of, bins, segment_map):
// RFM scores and segments of every customer of an existing order table, in one call.
//
// One read-only SPI query (`SELECT key, ordered_at, amount FROM table WHERE ordered_at <= $1`)
// streams its rows into a DestReceiver that folds them into cdp::rfm::CustomerTable (a flat hash
// table with exact money) without materialising them; then the core scores R, F and M over all
// customers with a positive order, and the rows go out through a materialised SRF.
//
// Error boundary: the receiver runs inside the executor, so it holds no C++ object: C++ work happens
// in a noexcept helper that records any exception and stops the scan (receiveSlot returns false);
// the error is thrown again once SPI has returned. Everything else calls PostgreSQL through pg_call.
#include "pg/boundary.h"

#include "core/rfm_scoring.h"
#include "core/rfm_stats.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <vector>

extern "C" {
PG_FUNCTION_INFO_V1(cdp_rfm_table);
Datum cdp_rfm_table(PG_FUNCTION_ARGS);
}

namespace {

using cdp::pg::pg_call;

constexpr Size kResultBlock = 64 * 1024 * 1024;

enum class KeyKind { kInt2, kInt4, kInt8, kBytes, kOutputFunction };
enum class AmountKind { kNumeric, kInt2, kInt4, kInt8 };

// Everything the call needs after validation. Plain data: filled and used by plain-C helpers.
struct RfmCall {
  Oid relid;
  TimestampTz as_of;
  int bins;
  KeyKind key_kind;
  Oid key_type;
  AmountKind amount_kind;
  char* query;               // palloc'd
  bool whole_rows;           // the query is SELECT *: find the columns by name in the result
  char* column_names[3];     // customer, ordered_at, amount
  double expected_customers; // from the planner's statistics (pg_stats.n_distinct), 0 when unknown
  // Segment map: cell (r, f, m) of 1..bins -> index into segment_names, -1 when the map lacks the cell.
  bool has_map;
  int* segment_cells;        // bins^3, palloc'd in the per-query context
  Datum* segment_names;      // text datums, per-query context
  // Result.
  ReturnSetInfo* rsinfo;
  Tuplestorestate* store;
  TupleDesc tupdesc;
  MemoryContext output_context;  // reset after each batch of output rows
};

constexpr std::size_t kRowBatch = 256;

// Receives the scan's rows. Starts with DestReceiver so the executor can call it.
struct Receiver {
  DestReceiver base;
  cdp::rfm::CustomerTable* table;
  KeyKind key_kind;
  AmountKind amount_kind;
  FmgrInfo key_output;         // kOutputFunction keys
  MemoryContext row_context;   // kOutputFunction keys
  bool whole_rows;
  char* const* column_names;
  int position[3];             // customer, ordered_at, amount: 0-based columns of the result
  int columns_needed;          // 1 + the largest position
  // Integer-keyed rows are folded in batches (see CustomerTable::add_batch).
  std::size_t pending;
  std::int64_t pending_keys[kRowBatch];
  std::int64_t pending_times[kRowBatch];
  cdp::Decimal pending_amounts[kRowBatch];
  cdp::pg::CapturedError error;  // an exception of a callback, rethrown after the scan
};



// Folds the pending integer-keyed rows in. Never throws: records the error instead.
bool flush_rows(Receiver* receiver) noexcept {
  try {
    receiver->table->add_batch(receiver->pending_keys, receiver->pending_times, receiver->pending_amounts,
                               receiver->pending);
    receiver->pending = 0;
    return true;
  } catch (...) {
    receiver->error.capture_current("cdp.rfm");
    return false;
  }
}

// The C++ part of one row: decode the amount, fold it in (or queue it). Never throws: records the
// error instead.
bool fold_row(Receiver* receiver, std::int64_t int_key, const char* key_bytes, std::size_t key_length,
              TimestampTz ordered_at, const std::uint8_t* numeric, std::size_t numeric_length,
              std::int64_t int_amount) noexcept {
  try {
    const cdp::Decimal amount = receiver->amount_kind == AmountKind::kNumeric
                                    ? cdp::rfm::amount_from_numeric(numeric, numeric_length)
                                    : cdp::Decimal::from_int(int_amount);
    cdp::rfm::check_order_time(ordered_at);  // after the amount, as cdp.rfm_agg checks them
    if (key_bytes != nullptr) {
      receiver->table->add(key_bytes, key_length, ordered_at, amount);
      return true;
    }
    const std::size_t i = receiver->pending++;
    receiver->pending_keys[i] = int_key;
    receiver->pending_times[i] = ordered_at;
    receiver->pending_amounts[i] = amount;
    return receiver->pending < kRowBatch || flush_rows(receiver);
  } catch (...) {
    receiver->error.capture_current("cdp.rfm");
    return false;
  }
}


// Executor callback, plain C: PostgreSQL errors here (detoasting, output functions) unwind to the
// pg_call around the SPI call, skipping no destructor.
bool receive_row(TupleTableSlot* slot, DestReceiver* self) {
  Receiver* receiver = reinterpret_cast<Receiver*>(self);
  slot_getsomeattrs(slot, receiver->columns_needed);
  const int* at = receiver->position;
  // NULL customer or NULL amount: the row cannot be attributed or valued, so it is ignored.
  // (NULL ordered_at never arrives: `ordered_at <= as_of` is not true for it.)
  if (slot->tts_isnull[at[0]] || slot->tts_isnull[at[1]] || slot->tts_isnull[at[2]]) return true;
  const Datum key = slot->tts_values[at[0]];
  const TimestampTz ordered_at = DatumGetTimestampTz(slot->tts_values[at[1]]);
  const Datum amount = slot->tts_values[at[2]];

  std::int64_t int_key = 0;
  const char* key_bytes = nullptr;
  std::size_t key_length = 0;
  struct varlena* key_copy = nullptr;
  switch (receiver->key_kind) {
    case KeyKind::kInt2: int_key = DatumGetInt16(key); break;
    case KeyKind::kInt4: int_key = DatumGetInt32(key); break;
    case KeyKind::kInt8: int_key = DatumGetInt64(key); break;
    case KeyKind::kBytes: {
      struct varlena* raw = reinterpret_cast<struct varlena*>(DatumGetPointer(key));
      struct varlena* packed = pg_detoast_datum_packed(raw);
      if (packed != raw) key_copy = packed;
      key_bytes = VARDATA_ANY(packed);
      key_length = VARSIZE_ANY_EXHDR(packed);
      break;
    }
    case KeyKind::kOutputFunction: {
      MemoryContext old = MemoryContextSwitchTo(receiver->row_context);
      key_bytes = OutputFunctionCall(&receiver->key_output, key);
      key_length = std::strlen(key_bytes);
      MemoryContextSwitchTo(old);
      break;
    }
  }

  const std::uint8_t* numeric = nullptr;
  std::size_t numeric_length = 0;
  std::int64_t int_amount = 0;
  struct varlena* amount_copy = nullptr;
  switch (receiver->amount_kind) {
    case AmountKind::kNumeric: {
      struct varlena* raw = reinterpret_cast<struct varlena*>(DatumGetPointer(amount));
      struct varlena* packed = pg_detoast_datum_packed(raw);
      if (packed != raw) amount_copy = packed;
      numeric = reinterpret_cast<const std::uint8_t*>(VARDATA_ANY(packed));
      numeric_length = VARSIZE_ANY_EXHDR(packed);
      break;
    }
    case AmountKind::kInt2: int_amount = DatumGetInt16(amount); break;
    case AmountKind::kInt4: int_amount = DatumGetInt32(amount); break;
    case AmountKind::kInt8: int_amount = DatumGetInt64(amount); break;
  }

  const bool ok = fold_row(receiver, int_key, key_bytes, key_length, ordered_at, numeric, numeric_length, int_amount);
  if (key_copy != nullptr) pfree(key_copy);
  if (amount_copy != nullptr) pfree(amount_copy);
  if (receiver->key_kind == KeyKind::kOutputFunction) MemoryContextReset(receiver->row_context);
  return ok;  // false stops the scan; the recorded error is raised after SPI returns
}

// Finds the three columns in the result. SELECT * hands over the scan's own tuples (no projection
// step per row); its columns are found by name.
void receiver_startup(DestReceiver* self, int, TupleDesc result) {
  Receiver* receiver = reinterpret_cast<Receiver*>(self);
  receiver->columns_needed = 0;
  for (int c = 0; c < 3; ++c) {
    receiver->position[c] = c;
    if (receiver->whole_rows) {
      receiver->position[c] = -1;
      for (int i = 0; i < result->natts; ++i) {
        Form_pg_attribute attribute = TupleDescAttr(result, i);
        if (!attribute->attisdropped && strcmp(NameStr(attribute->attname), receiver->column_names[c]) == 0) {
          receiver->position[c] = i;
          break;
        }
      }
      if (receiver->position[c] < 0)
        elog(ERROR, "cdp.rfm: column \"%s\" is missing from the scan", receiver->column_names[c]);
    }
    receiver->columns_needed = std::max(receiver->columns_needed, receiver->position[c] + 1);
  }
}
void receiver_shutdown(DestReceiver*) {}
void receiver_destroy(DestReceiver*) {}

// ---------------------------------------------------------------------------------------------
// Validation and set-up (plain C, called through pg_call; ereport keeps PostgreSQL's SQLSTATEs).

const char* const kArgumentNames[] = {"orders", "customer_column", "ordered_at_column", "amount_column", "as_of",
                                      "bins",   "segment_map"};

struct Column {
  AttrNumber number;
  Oid type;       // declared type
  Oid base_type;  // with domains resolved
  char* name;
};

Column resolve_column(Oid relid, const char* relname, FunctionCallInfo fcinfo, int argument) {
  Column column;
  column.name = text_to_cstring(PG_GETARG_TEXT_PP(argument));
  column.number = get_attnum(relid, column.name);
  if (column.number == InvalidAttrNumber || column.number < 0)
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                    errmsg("column \"%s\" of relation \"%s\" does not exist", column.name, relname),
                    errdetail("It was given as %s of cdp.rfm.", kArgumentNames[argument])));
  column.type = get_atttype(relid, column.number);
  column.base_type = getBaseType(column.type);
  return column;
}

void wrong_type(const Column& column, const char* relname, const char* argument, const char* expected,
                const char* hint) {
  ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                  errmsg("column \"%s\" of relation \"%s\" has type %s, but %s must be %s", column.name, relname,
                         format_type_be(column.type), argument, expected),
                  hint ? errhint("%s", hint) : 0));
}

void load_segment_map(RfmCall* plan, text* map_name, MemoryContext keep) {
  Oid argument_types[1] = {TEXTOID};
  Datum arguments[1] = {PointerGetDatum(map_name)};
  const int rc = SPI_execute_with_args(
      "SELECT r, f, m, segment FROM cdp.rfm_segment_rules WHERE segment_map = $1", 1, argument_types, arguments,
      nullptr, true, 0);
  if (rc != SPI_OK_SELECT) elog(ERROR, "cdp.rfm: reading cdp.rfm_segment_rules failed: %s", SPI_result_code_string(rc));
  if (SPI_processed == 0) {  // unknown map: cdp.rfm_check_segment_map raises 42704 listing the known maps
    SPI_execute_with_args("SELECT cdp.rfm_check_segment_map($1)", 1, argument_types, arguments, nullptr, true, 0);
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                    errmsg("segment map \"%s\" does not exist", text_to_cstring(map_name))));
  }
  // Maps are defined on the 1..5 scale: with other bins the segment column stays NULL.
  if (plan->bins != 5) {
    plan->has_map = false;
    return;
  }
  const std::size_t bins = plan->bins;
  const std::size_t cells = bins * bins * bins;
  plan->segment_cells = static_cast<int*>(MemoryContextAlloc(keep, cells * sizeof(int)));
  for (std::size_t i = 0; i < cells; ++i) plan->segment_cells[i] = -1;
  plan->segment_names = static_cast<Datum*>(MemoryContextAlloc(keep, SPI_processed * sizeof(Datum)));
  TupleDesc desc = SPI_tuptable->tupdesc;
  for (uint64 row = 0; row < SPI_processed; ++row) {
    HeapTuple tuple = SPI_tuptable->vals[row];
    bool null_r, null_f, null_m, null_segment;
    const int r = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &null_r));
    const int f = DatumGetInt32(SPI_getbinval(tuple, desc, 2, &null_f));
    const int m = DatumGetInt32(SPI_getbinval(tuple, desc, 3, &null_m));
    const Datum segment = SPI_getbinval(tuple, desc, 4, &null_segment);
    if (null_r || null_f || null_m || null_segment) continue;
    if (r < 1 || f < 1 || m < 1 || r > plan->bins || f > plan->bins || m > plan->bins) continue;
    MemoryContext spi = MemoryContextSwitchTo(keep);
    plan->segment_names[row] = datumCopy(segment, false, -1);
    MemoryContextSwitchTo(spi);
    plan->segment_cells[((r - 1) * bins + (f - 1)) * bins + (m - 1)] = static_cast<int>(row);
  }
}

// The planner's estimate of distinct customers, used only to size the hash table up front.
double estimate_customers(const char* schema, const char* table, const char* column) {
  Oid types[3] = {TEXTOID, TEXTOID, TEXTOID};
  Datum values[3] = {CStringGetTextDatum(schema), CStringGetTextDatum(table), CStringGetTextDatum(column)};
  const int rc = SPI_execute_with_args(
      "SELECT CASE WHEN s.n_distinct < 0 THEN -s.n_distinct * GREATEST(c.reltuples, 0) "
      "ELSE s.n_distinct END::float8 FROM pg_catalog.pg_stats s "
      "JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname "
      "JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename "
      "WHERE s.schemaname = $1 AND s.tablename = $2 AND s.attname = $3 AND NOT s.inherited",
      3, types, values, nullptr, true, 1);
  if (rc != SPI_OK_SELECT || SPI_processed == 0) return 0;
  bool isnull;
  const Datum estimate = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
  return isnull ? 0 : DatumGetFloat8(estimate);
}

void prepare(FunctionCallInfo fcinfo, RfmCall* plan) {
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  if (rsinfo == nullptr || !IsA(rsinfo, ReturnSetInfo) || (rsinfo->allowedModes & SFRM_Materialize) == 0)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cdp.rfm returns a set: call it in FROM, e.g. SELECT * FROM cdp.rfm(...)")));
  plan->rsinfo = rsinfo;
  MemoryContext per_query = rsinfo->econtext->ecxt_per_query_memory;

  // The relation and its columns, through the catalog. Privileges are checked by the query itself.
  plan->relid = PG_GETARG_OID(0);
  char* relname = get_rel_name(plan->relid);
  if (relname == nullptr)
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation with OID %u does not exist", plan->relid)));
  const char relkind = get_rel_relkind(plan->relid);
  if (relkind != RELKIND_RELATION && relkind != RELKIND_VIEW && relkind != RELKIND_MATVIEW &&
      relkind != RELKIND_FOREIGN_TABLE && relkind != RELKIND_PARTITIONED_TABLE)
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("\"%s\" is not a table or view", relname)));
  const Column customer = resolve_column(plan->relid, relname, fcinfo, 1);
  const Column ordered_at = resolve_column(plan->relid, relname, fcinfo, 2);
  const Column amount = resolve_column(plan->relid, relname, fcinfo, 3);

  switch (customer.base_type) {
    case INT2OID: plan->key_kind = KeyKind::kInt2; break;
    case INT4OID: plan->key_kind = KeyKind::kInt4; break;
    case INT8OID: plan->key_kind = KeyKind::kInt8; break;
    case TEXTOID: case VARCHAROID: case BPCHAROID: plan->key_kind = KeyKind::kBytes; break;  // bytes = text form
    default: plan->key_kind = KeyKind::kOutputFunction; break;
  }
  plan->key_type = customer.type;
  const bool ordered_at_cast = ordered_at.base_type == TIMESTAMPOID || ordered_at.base_type == DATEOID;
  if (ordered_at.base_type != TIMESTAMPTZOID && !ordered_at_cast)
    wrong_type(ordered_at, relname, "ordered_at_column", "timestamp with time zone, timestamp or date", nullptr);
  switch (amount.base_type) {
    case NUMERICOID: plan->amount_kind = AmountKind::kNumeric; break;
    case INT2OID: plan->amount_kind = AmountKind::kInt2; break;
    case INT4OID: plan->amount_kind = AmountKind::kInt4; break;
    case INT8OID: plan->amount_kind = AmountKind::kInt8; break;
    default:
      wrong_type(amount, relname, "amount_column", "numeric, smallint, integer or bigint",
                 amount.base_type == FLOAT4OID || amount.base_type == FLOAT8OID
                     ? "Floating-point money is inexact: cast it to numeric in a view and pass the view."
                     : nullptr);
  }

  // Identifiers quoted, the cut-off passed as a parameter: no name can inject SQL.
  const char* table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(plan->relid)), relname);
  const char* time_column = quote_identifier(ordered_at.name);
  StringInfoData time_expression;
  initStringInfo(&time_expression);
  if (ordered_at_cast)  // timestamp and date are read in the session's TimeZone
    appendStringInfo(&time_expression, "%s::pg_catalog.timestamptz", time_column);
  else
    appendStringInfoString(&time_expression, time_column);
  StringInfoData query;
  initStringInfo(&query);
  // Stored tables are read whole (SELECT *): the executor then passes its scan tuples on without a
  // projection step, and only the columns up to the last one needed are ever deformed. Views and
  // foreign tables get exactly the three columns, so nothing else is computed or fetched.
  plan->whole_rows = !ordered_at_cast && (relkind == RELKIND_RELATION || relkind == RELKIND_MATVIEW ||
                                          relkind == RELKIND_PARTITIONED_TABLE);
  if (plan->whole_rows)
    appendStringInfo(&query, "SELECT * FROM %s WHERE %s <= $1", table, time_expression.data);
  else
    appendStringInfo(&query, "SELECT %s, %s, %s FROM %s WHERE %s <= $1", quote_identifier(customer.name),
                     time_expression.data, quote_identifier(amount.name), table, time_expression.data);
  plan->column_names[0] = MemoryContextStrdup(per_query, customer.name);
  plan->column_names[1] = MemoryContextStrdup(per_query, ordered_at.name);
  plan->column_names[2] = MemoryContextStrdup(per_query, amount.name);
  plan->query = MemoryContextStrdup(per_query, query.data);

  // The result: a tuplestore that stays in memory up to maintenance_work_mem (the same limit as the
  // working tables), then spills to a temporary file.
  MemoryContext old = MemoryContextSwitchTo(per_query);
  TupleDesc tupdesc;
  if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("cdp.rfm must return a row type")));
  plan->tupdesc = CreateTupleDescCopy(tupdesc);
  // The result rows live in a generation context: they are freed all at once with the query, and
  // unlike the default allocator it does not round each row up to a power of two (a quarter less
  // memory to fault in for a million rows).
  MemoryContextSwitchTo(GenerationContextCreate(per_query, "cdp.rfm result", 0, 1024 * 1024, kResultBlock));
  plan->store = tuplestore_begin_heap((rsinfo->allowedModes & SFRM_Materialize_Random) != 0, false,
                                      maintenance_work_mem);
  MemoryContextSwitchTo(per_query);
  plan->output_context = AllocSetContextCreate(per_query, "cdp.rfm output", ALLOCSET_DEFAULT_SIZES);
  MemoryContextSwitchTo(old);

  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "cdp.rfm: SPI_connect failed");
  plan->expected_customers = estimate_customers(get_namespace_name(get_rel_namespace(plan->relid)), relname,
                                                customer.name);
  plan->has_map = !PG_ARGISNULL(6);
  if (plan->has_map) {
    MemoryContext spi = MemoryContextSwitchTo(per_query);
    text* map_name = PG_GETARG_TEXT_PP(6);
    MemoryContextSwitchTo(spi);
    load_segment_map(plan, map_name, per_query);
  }
}

void scan(const RfmCall* plan, Receiver* receiver) {
  Oid types[1] = {TIMESTAMPTZOID};
  SPIPlanPtr prepared = SPI_prepare(plan->query, 1, types);
  if (prepared == nullptr) elog(ERROR, "cdp.rfm: preparing the scan failed: %s", SPI_result_code_string(SPI_result));
  ParamListInfo params = makeParamList(1);
  params->params[0].value = TimestampTzGetDatum(plan->as_of);
  params->params[0].isnull = false;
  params->params[0].pflags = PARAM_FLAG_CONST;
  params->params[0].ptype = TIMESTAMPTZOID;
  SPIExecuteOptions options;
  std::memset(&options, 0, sizeof options);
  options.params = params;
  options.read_only = true;
  options.dest = &receiver->base;
  const int rc = SPI_execute_plan_extended(prepared, &options);
  if (rc < 0) elog(ERROR, "cdp.rfm: the scan failed: %s", SPI_result_code_string(rc));
  SPI_freeplan(prepared);
}

// One output row, computed in C++ and handed to PostgreSQL in batches.
struct OutputRow {
  const char* key;
  std::uint32_t key_length;
  char int_key[24];
  double recency_days;
  std::int64_t frequency;
  union {
    std::uint8_t monetary[56];  // numeric varlena (4-byte header + payload)
    std::int64_t align_;
  };
  int r, f, m, segment;
};

void emit_rows(RfmCall* plan, const OutputRow* rows, std::size_t count) {
  MemoryContext old = MemoryContextSwitchTo(plan->output_context);
  for (std::size_t i = 0; i < count; ++i) {
    const OutputRow& row = rows[i];
    Datum values[8];
    bool nulls[8] = {false, false, false, false, false, false, false, false};
    values[0] = PointerGetDatum(cstring_to_text_with_len(row.key, static_cast<int>(row.key_length)));
    values[1] = Float8GetDatum(row.recency_days);
    values[2] = Int64GetDatum(row.frequency);
    values[3] = PointerGetDatum(row.monetary);
    values[4] = Int32GetDatum(row.r);
    values[5] = Int32GetDatum(row.f);
    values[6] = Int32GetDatum(row.m);
    values[7] = row.segment >= 0 ? plan->segment_names[row.segment] : (Datum)0;
    nulls[7] = row.segment < 0;
    tuplestore_putvalues(plan->store, plan->tupdesc, values, nulls);
  }
  MemoryContextSwitchTo(old);
  MemoryContextReset(plan->output_context);
}

// Days (fractional) from the last order (never -infinity: refused when read) to as_of.
double recency_days(TimestampTz as_of, TimestampTz last_order_at) {
  std::int64_t microseconds;
  if (__builtin_sub_overflow(as_of, last_order_at, &microseconds))  // only near the ends of the timestamp range
    return (static_cast<double>(as_of) - static_cast<double>(last_order_at)) / USECS_PER_DAY;
  return static_cast<double>(microseconds) / USECS_PER_DAY;
}

void finish(RfmCall* plan) {
  if (SPI_finish() != SPI_OK_FINISH) elog(ERROR, "cdp.rfm: SPI_finish failed");
  plan->rsinfo->returnMode = SFRM_Materialize;
  plan->rsinfo->setResult = plan->store;
  plan->rsinfo->setDesc = plan->tupdesc;
}

}  // namespace

Datum cdp_rfm_table(PG_FUNCTION_ARGS) {
  return cdp::pg::guarded([&]() -> Datum {
    for (int argument = 0; argument < 6; ++argument)
      if (PG_ARGISNULL(argument))
        cdp::pg::fail(cdp::sqlstate::kNullValueNotAllowed,
                      std::string("cdp.rfm: ") + kArgumentNames[argument] + " must not be NULL");
    RfmCall plan;
    std::memset(&plan, 0, sizeof plan);
    plan.bins = PG_GETARG_INT32(5);
    cdp::rfm::check_bins(plan.bins);
    plan.as_of = PG_GETARG_TIMESTAMPTZ(4);
    if (TIMESTAMP_NOT_FINITE(plan.as_of))
      cdp::pg::fail(cdp::sqlstate::kInvalidParameterValue, "cdp.rfm: as_of must be a finite timestamp",
                    "Recency is measured in days up to as_of.");
    pg_call([&] { prepare(fcinfo, &plan); });

    cdp::MemoryBudget budget(cdp::pg::kilobytes(maintenance_work_mem), "maintenance_work_mem");
    cdp::Interrupts interrupts([] { cdp::pg::check_for_interrupts(); });
    cdp::rfm::CustomerTable table(budget);
    // A hint only: never more than half the memory limit, so a stale estimate cannot cause the error.
    const double affordable = budget.limit() / 2.0 / (2 * 8 * 10 / 7.0);
    table.reserve(static_cast<std::size_t>(std::min(1.25 * plan.expected_customers, affordable)));  // n_distinct runs low
    Receiver receiver;
    std::memset(static_cast<void*>(&receiver), 0, sizeof receiver);
    receiver.base.receiveSlot = receive_row;
    receiver.base.rStartup = receiver_startup;
    receiver.base.rShutdown = receiver_shutdown;
    receiver.base.rDestroy = receiver_destroy;
    receiver.base.mydest = DestNone;
    receiver.table = &table;
    receiver.key_kind = plan.key_kind;
    receiver.amount_kind = plan.amount_kind;
    receiver.whole_rows = plan.whole_rows;
    receiver.column_names = plan.column_names;
    if (plan.key_kind == KeyKind::kOutputFunction)
      pg_call([&] {
        Oid output_function;
        bool is_varlena;
        getTypeOutputInfo(plan.key_type, &output_function, &is_varlena);
        fmgr_info(output_function, &receiver.key_output);
        receiver.row_context = AllocSetContextCreate(CurrentMemoryContext, "cdp.rfm key", ALLOCSET_SMALL_SIZES);
      });
    pg_call([&] { scan(&plan, &receiver); });
    if (!receiver.error.failed) flush_rows(&receiver);
    if (receiver.error.failed) receiver.error.rethrow();
    cdp::pg::check_for_interrupts();

    const cdp::rfm::RfmScores scores = cdp::rfm::score_customers(table, plan.bins, interrupts, budget);

    constexpr std::size_t kBatch = 1024;
    std::vector<OutputRow> batch(kBatch);
    const std::size_t bins = static_cast<std::size_t>(plan.bins);
    std::size_t filled = 0;
    for (std::size_t k = 0; k < scores.customers.size(); ++k) {
      const cdp::rfm::CustomerTotals& totals = table.at(scores.customers[k]);
      OutputRow& row = batch[filled++];
      switch (plan.key_kind) {
        case KeyKind::kInt2: case KeyKind::kInt4: case KeyKind::kInt8: {
          const auto written = std::to_chars(row.int_key, row.int_key + sizeof row.int_key, totals.key);
          row.key = row.int_key;
          row.key_length = static_cast<std::uint32_t>(written.ptr - row.int_key);
          break;
        }
        default:
          row.key = totals.key_bytes();
          row.key_length = totals.key_length;
      }
      row.recency_days = recency_days(plan.as_of, totals.last_order_at);
      row.frequency = totals.orders;
      const std::string payload = cdp::encode_numeric(totals.monetary());
      SET_VARSIZE(row.monetary, VARHDRSZ + payload.size());
      std::memcpy(row.monetary + VARHDRSZ, payload.data(), payload.size());
      row.r = scores.r[k];
      row.f = scores.f[k];
      row.m = scores.m[k];
      row.segment = plan.has_map ? plan.segment_cells[((row.r - 1) * bins + (row.f - 1)) * bins + (row.m - 1)] : -1;
      if (filled == kBatch || k + 1 == scores.customers.size()) {
        pg_call([&] { emit_rows(&plan, batch.data(), filled); });
        filled = 0;
        cdp::pg::check_for_interrupts();
      }
    }
    pg_call([&] { finish(&plan); });
    return (Datum)0;
  });
}
