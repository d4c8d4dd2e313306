// cdp.profile_write_snapshot(orders_query, person_match, columns, as_of, local_as_of, shop_time_zone,
//                            lifecycle_policy, bins, cell_segments):
// the grouping, scoring and writing of CALL cdp.refresh_profiles (src/sql/40_profiles.sql).
//
// The procedure builds one query over the shop's orders (joined to the person mapping when identity
// merge attributes them) whose rows carry the person id (identity modes), the customer key, the order
// time as the shop's local wall clock stored as UTC, and the amount, already limited to as_of. This
// function runs it once through SPI into a DestReceiver that feeds cdp::profiles::ProfileEngine (one
// pass, a hash table of per-person statistics: the rules of cdp.rfm_agg and cdp.lifecycle, shared
// with them); then, in identity modes, counts each person's identifiers and sources; scores r, f and
// m over all persons with the core rule of cdp.rfm_score; names each (r, f, m) cell's segment; appends
// the rows to cdp.profile_snapshots through cdp::pg::BulkAppender (multi-insert, as COPY) — or plain
// INSERTs when that path does not apply — and returns the totals per segment and per stage (plus one
// row, dimension 'all', for the whole snapshot).
//
// Memory: the engine, the scoring arrays and the cell names are charged to maintenance_work_mem;
// past it the refresh stops with 54000 (nothing is written: the caller's transaction fails).
//
// Error boundary: the receivers run inside the executor, so they hold no C++ object: C++ work happens
// in noexcept helpers that record any exception and stop the scan; the error is raised once SPI has
// returned. Everything else calls PostgreSQL through pg_call.
#include "pg/boundary.h"
#include "pg/bulk_append.h"
#include "pg/lifecycle_policy.h"

extern "C" {
#include "utils/date.h"
}

#include "core/decimal.h"
#include "core/profile_engine.h"
#include "core/profiles.h"

#include <charconv>
#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <string>
#include <vector>

extern "C" {
PG_FUNCTION_INFO_V1(cdp_profile_write_snapshot);
Datum cdp_profile_write_snapshot(PG_FUNCTION_ARGS);
}

namespace {

using cdp::pg::pg_call;
namespace lc = cdp::lifecycle;

// Columns of cdp.profile_snapshots, 0-based.
enum SnapshotColumn {
  kAsOf = 0, kPersonKey, kPersonId, kOrders, kMonetary, kAverageOrderValue, kRecencyDays, kR, kF, kM,
  kRfmSegment, kLifecycleStage, kCadenceDays, kExpectedNextOrderAt, kOverdueRatio, kStageSince,
  kFirstOrderAt, kLastOrderAt, kIdentifiers, kSources, kSnapshotColumns
};
const Oid kSnapshotTypes[kSnapshotColumns] = {
    TIMESTAMPTZOID, TEXTOID,   INT8OID,   INT8OID,        NUMERICOID, NUMERICOID,     INT4OID,
    INT4OID,        INT4OID,   INT4OID,   TEXTOID,        TEXTOID,    FLOAT8OID,      TIMESTAMPTZOID,
    FLOAT8OID,      DATEOID,   TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID, INT4OID};
const char* const kColumnNames[kSnapshotColumns] = {
    "as_of", "person_key", "person_id", "orders", "monetary", "average_order_value", "recency_days", "r", "f", "m",
    "rfm_segment", "lifecycle_stage", "cadence_days", "expected_next_order_at", "overdue_ratio", "stage_since",
    "first_order_at", "last_order_at", "identifiers", "sources"};

// ---------------------------------------------------------------------------------------------
// Reading the orders.

enum class KeyKind { kInt2, kInt4, kInt8, kText };
enum class AmountKind { kNumeric, kInt2, kInt4, kInt8 };
enum OrdersColumn { kColPersonId = 0, kColCustomer, kColOrderedAt, kColAmount, kOrdersColumns };
constexpr std::size_t kRowBatch = 256;

struct OrdersReceiver {
  DestReceiver base;
  cdp::profiles::ProfileEngine* engine;
  char* const* column_names;  // kOrdersColumns names in the query's result; [kColPersonId] NULL without merge
  int position[kOrdersColumns];
  int columns_needed;
  KeyKind key_kind;
  AmountKind amount_kind;
  std::uint64_t rows_seen;
  std::int64_t ignored_rows;  // rows without amount, or without customer key and person
  // Integer-keyed rows are folded in batches (see ProfileEngine::add_batch).
  std::size_t pending;
  std::int64_t pending_keys[kRowBatch];
  std::int64_t pending_times[kRowBatch];
  cdp::Decimal pending_amounts[kRowBatch];
  const cdp::Decimal* pending_amount_pointers[kRowBatch];
  cdp::pg::CapturedError error;
};

bool flush_rows(OrdersReceiver* receiver) noexcept {
  try {
    receiver->engine->add_batch(receiver->pending_keys, receiver->pending_times, receiver->pending_amount_pointers,
                                receiver->pending);
    receiver->pending = 0;
    return true;
  } catch (...) {
    receiver->error.capture_current("cdp.refresh_profiles");
    return false;
  }
}

// The C++ part of one row. Never throws: records the error instead.
bool fold_row(OrdersReceiver* receiver, bool int_key_row, std::int64_t int_key, const char* key_bytes,
              std::size_t key_length, TimestampTz ordered_at, const std::uint8_t* numeric, std::size_t numeric_length,
              std::int64_t int_amount) noexcept {
  try {
    const cdp::Decimal amount = receiver->amount_kind == AmountKind::kNumeric
                                    ? cdp::rfm::amount_from_numeric(numeric, numeric_length)
                                    : cdp::Decimal::from_int(int_amount);
    if (!int_key_row) {
      if (receiver->pending > 0 && !flush_rows(receiver)) return false;
      receiver->engine->add(key_bytes, key_length, ordered_at, &amount);
      return true;
    }
    const std::size_t i = receiver->pending++;
    receiver->pending_keys[i] = int_key;
    receiver->pending_times[i] = ordered_at;
    receiver->pending_amounts[i] = amount;
    receiver->pending_amount_pointers[i] = &receiver->pending_amounts[i];
    return receiver->pending < kRowBatch || flush_rows(receiver);
  } catch (...) {
    receiver->error.capture_current("cdp.refresh_profiles");
    return false;
  }
}

// Executor callback, plain C: PostgreSQL errors here unwind to the pg_call around the SPI call.
bool receive_order(TupleTableSlot* slot, DestReceiver* self) {
  OrdersReceiver* receiver = reinterpret_cast<OrdersReceiver*>(self);
  if ((++receiver->rows_seen & 0xFFF) == 0) CHECK_FOR_INTERRUPTS();
  slot_getsomeattrs(slot, receiver->columns_needed);
  const int* at = receiver->position;
  // ordered_at IS NULL never passes the query's `<= as_of`; checked anyway.
  if (slot->tts_isnull[at[kColOrderedAt]]) return true;
  const TimestampTz ordered_at = DatumGetTimestampTz(slot->tts_values[at[kColOrderedAt]]);
  // A row without an amount adds nothing to a profile, and one without customer key and without
  // person belongs to nobody: both are counted (the refresh reports them) and never make a person.
  const bool has_amount = !slot->tts_isnull[at[kColAmount]];
  const bool has_person = at[kColPersonId] >= 0 && !slot->tts_isnull[at[kColPersonId]];
  if (!has_amount || (!has_person && slot->tts_isnull[at[kColCustomer]])) {
    ++receiver->ignored_rows;
    return true;
  }

  bool int_key_row = false;
  std::int64_t int_key = 0;
  const char* key_bytes = nullptr;
  std::size_t key_length = 0;
  struct varlena* key_copy = nullptr;
  if (has_person) {
    int_key_row = true;
    int_key = DatumGetInt64(slot->tts_values[at[kColPersonId]]);
  } else {
    // Without a person the customer key groups the orders.
    const Datum key = slot->tts_values[at[kColCustomer]];
    switch (receiver->key_kind) {
      case KeyKind::kInt2: int_key_row = true; int_key = DatumGetInt16(key); break;
      case KeyKind::kInt4: int_key_row = true; int_key = DatumGetInt32(key); break;
      case KeyKind::kInt8: int_key_row = true; int_key = DatumGetInt64(key); break;
      case KeyKind::kText: {
        struct varlena* raw = reinterpret_cast<struct varlena*>(DatumGetPointer(key));
        struct varlena* packed = pg_detoast_datum_packed(raw);
        if (packed != raw) key_copy = packed;
        key_bytes = VARDATA_ANY(packed);
        key_length = VARSIZE_ANY_EXHDR(packed);
        break;
      }
    }
  }

  const std::uint8_t* numeric = nullptr;
  std::size_t numeric_length = 0;
  std::int64_t int_amount = 0;
  struct varlena* amount_copy = nullptr;
  {
    const Datum amount = slot->tts_values[at[kColAmount]];
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
  }
  const bool ok = fold_row(receiver, int_key_row, int_key, key_bytes, key_length, ordered_at, numeric,
                           numeric_length, int_amount);
  if (key_copy != nullptr) pfree(key_copy);
  if (amount_copy != nullptr) pfree(amount_copy);
  return ok;  // false stops the scan; the recorded error is raised after SPI returns
}

// Finds the columns by name in the result (the query may be SELECT * over the orders table, which
// hands over the scan's own tuples without a projection step) and checks their types.
void orders_startup(DestReceiver* self, int, TupleDesc result) {
  OrdersReceiver* receiver = reinterpret_cast<OrdersReceiver*>(self);
  receiver->columns_needed = 0;
  Oid types[kOrdersColumns] = {InvalidOid, InvalidOid, InvalidOid, InvalidOid};
  for (int c = 0; c < kOrdersColumns; ++c) {
    receiver->position[c] = -1;
    if (receiver->column_names[c] == nullptr) continue;
    for (int i = 0; i < result->natts; ++i) {
      Form_pg_attribute attribute = TupleDescAttr(result, i);
      if (!attribute->attisdropped && strcmp(NameStr(attribute->attname), receiver->column_names[c]) == 0) {
        receiver->position[c] = i;
        types[c] = getBaseType(attribute->atttypid);
        break;
      }
    }
    if (receiver->position[c] < 0)
      elog(ERROR, "cdp.profile_write_snapshot: column \"%s\" is missing from the orders query",
           receiver->column_names[c]);
    receiver->columns_needed = std::max(receiver->columns_needed, receiver->position[c] + 1);
  }
  switch (types[kColCustomer]) {
    case INT2OID: receiver->key_kind = KeyKind::kInt2; break;
    case INT4OID: receiver->key_kind = KeyKind::kInt4; break;
    case INT8OID: receiver->key_kind = KeyKind::kInt8; break;
    case TEXTOID: case VARCHAROID: receiver->key_kind = KeyKind::kText; break;
    default: elog(ERROR, "cdp.profile_write_snapshot: the customer key must be an integer or text");
  }
  if (receiver->position[kColPersonId] >= 0 && (types[kColPersonId] != INT8OID || receiver->key_kind != KeyKind::kText))
    elog(ERROR, "cdp.profile_write_snapshot: with a person id the customer key must be text");
  if (types[kColOrderedAt] != TIMESTAMPTZOID)
    elog(ERROR, "cdp.profile_write_snapshot: ordered_at must be timestamptz");
  switch (types[kColAmount]) {
    case NUMERICOID: receiver->amount_kind = AmountKind::kNumeric; break;
    case INT2OID: receiver->amount_kind = AmountKind::kInt2; break;
    case INT4OID: receiver->amount_kind = AmountKind::kInt4; break;
    case INT8OID: receiver->amount_kind = AmountKind::kInt8; break;
    default: elog(ERROR, "cdp.profile_write_snapshot: the amount must be numeric or an integer");
  }
}
void receiver_shutdown(DestReceiver*) {}
void receiver_destroy(DestReceiver*) {}

void run_query(const char* query, DestReceiver* receiver, const char* what) {
  SPIExecuteOptions options;
  std::memset(&options, 0, sizeof options);
  options.read_only = true;
  options.dest = receiver;
  const int rc = SPI_execute_extended(query, &options);
  if (rc < 0) elog(ERROR, "cdp.profile_write_snapshot: the %s query failed: %s", what, SPI_result_code_string(rc));
}

// ---------------------------------------------------------------------------------------------
// Identifier and source counts per person (identity modes), counted while the rows stream past instead
// of grouped in SQL (two hash aggregates over the merge's tables, several seconds at a million persons):
//   identifiers: one (person_id) row per linked identifier of cdp.person_identifiers;
//   sources: (person_id, source) rows of cdp.identity_map; distinct sources per person kept as a bit mask
//   over the first 64 source names met (a 65th stops the scan and the SQL count is used instead).
constexpr int kMaxSourceNames = 64;

struct CountsReceiver {
  DestReceiver base;
  const cdp::profiles::ProfileEngine* engine;
  std::int32_t* counts;        // identifiers per person; the SQL fallback's counts of sources
  std::uint64_t* source_masks; // sources per person (NULL: rows are (person_id, n) counts)
  bool pairs;                  // rows are (person_id, n bigint) from the SQL fallback
  int source_count;
  bool too_many_sources;
  char* source_names[kMaxSourceNames];  // palloc'd
  int source_lengths[kMaxSourceNames];
};

bool receive_count(TupleTableSlot* slot, DestReceiver* self) {
  CountsReceiver* receiver = reinterpret_cast<CountsReceiver*>(self);
  if (receiver->source_masks != nullptr) {
    slot_getsomeattrs(slot, 2);
    if (slot->tts_isnull[0] || slot->tts_isnull[1]) return true;
    const std::size_t person = receiver->engine->find(DatumGetInt64(slot->tts_values[0]));
    if (person == cdp::profiles::ProfileEngine::npos) return true;
    text* source = DatumGetTextPP(slot->tts_values[1]);
    const char* bytes = VARDATA_ANY(source);
    const int length = VARSIZE_ANY_EXHDR(source);
    int k = 0;
    while (k < receiver->source_count &&
           !(receiver->source_lengths[k] == length && std::memcmp(receiver->source_names[k], bytes, length) == 0))
      ++k;
    if (k == receiver->source_count) {
      if (k == kMaxSourceNames) {
        receiver->too_many_sources = true;
        return false;  // stops the scan: the SQL count takes over
      }
      receiver->source_names[k] = static_cast<char*>(palloc(length + 1));
      if (length) std::memcpy(receiver->source_names[k], bytes, length);
      receiver->source_lengths[k] = length;
      ++receiver->source_count;
    }
    receiver->source_masks[person] |= std::uint64_t{1} << k;
    return true;
  }
  slot_getsomeattrs(slot, receiver->pairs ? 2 : 1);
  if (slot->tts_isnull[0] || (receiver->pairs && slot->tts_isnull[1])) return true;
  const std::size_t person = receiver->engine->find(DatumGetInt64(slot->tts_values[0]));
  if (person == cdp::profiles::ProfileEngine::npos) return true;
  const std::int64_t n = receiver->pairs ? DatumGetInt64(slot->tts_values[1]) : receiver->counts[person] + std::int64_t{1};
  if (n > INT32_MAX) ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE), errmsg("integer out of range")));
  receiver->counts[person] = static_cast<std::int32_t>(n);
  return true;
}
void counts_startup(DestReceiver* self, int, TupleDesc result) {
  CountsReceiver* receiver = reinterpret_cast<CountsReceiver*>(self);
  const int columns = receiver->source_masks != nullptr || receiver->pairs ? 2 : 1;
  bool ok = result->natts == columns && TupleDescAttr(result, 0)->atttypid == INT8OID;
  if (ok && columns == 2)
    ok = TupleDescAttr(result, 1)->atttypid == (receiver->source_masks != nullptr ? TEXTOID : INT8OID);
  if (!ok) elog(ERROR, "cdp.profile_write_snapshot: unexpected columns of a count query");
}

void run_counts(CountsReceiver* receiver, const char* query) {
  receiver->base.receiveSlot = receive_count;
  receiver->base.rStartup = counts_startup;
  receiver->base.rShutdown = receiver_shutdown;
  receiver->base.rDestroy = receiver_destroy;
  receiver->base.mydest = DestNone;
  run_query(query, &receiver->base, "identifier and source count");
}

// ---------------------------------------------------------------------------------------------
// Writing.

// Segment names of the (r, f, m) cells, from the procedure's array of all bins^3 cells.
struct Segments {
  int bins;
  std::vector<std::int32_t> cell;  // -1 NULL, else index into names
  std::vector<Datum> names;        // text datums in `keep`
  MemoryContext keep;
};

void load_cell_segments(Segments* segments, ArrayType* cells) {
  Datum* elements;
  bool* nulls;
  int count;
  deconstruct_array(cells, TEXTOID, -1, false, TYPALIGN_INT, &elements, &nulls, &count);
  if (static_cast<std::size_t>(count) != segments->cell.size())
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("cdp.profile_write_snapshot: cell_segments has %d elements, expected bins^3", count)));
  for (int i = 0; i < count; ++i) {
    if (nulls[i]) {
      segments->cell[i] = -1;
      continue;
    }
    segments->cell[i] = static_cast<std::int32_t>(segments->names.size());
    MemoryContext old = MemoryContextSwitchTo(segments->keep);
    segments->names.push_back(datumCopy(elements[i], false, -1));  // vector reserved: cannot throw
    MemoryContextSwitchTo(old);
  }
}

std::int32_t segment_of(const Segments& segments, int r, int f, int m) {
  const std::size_t bins = static_cast<std::size_t>(segments.bins);
  return segments.cell[((r - 1) * bins + (f - 1)) * bins + (m - 1)];
}

struct GroupTotals {
  std::int64_t customers = 0;
  cdp::Decimal revenue;
  std::int64_t orders = 0;
  std::int64_t recency_days_sum = 0;
  std::int64_t recency_days_n = 0;
  std::int64_t unattributed = 0;
  void add(std::int64_t person_orders, const cdp::Decimal& monetary, bool has_recency, std::int32_t recency,
           bool attributed) {
    ++customers;
    revenue += monetary;
    orders += person_orders;
    if (has_recency) {
      recency_days_sum += recency;
      ++recency_days_n;
    }
    if (!attributed) ++unattributed;
  }
  void merge(const GroupTotals& other) {
    customers += other.customers;
    revenue += other.revenue;
    orders += other.orders;
    recency_days_sum += other.recency_days_sum;
    recency_days_n += other.recency_days_n;
    unattributed += other.unattributed;
  }
};

// One snapshot row as plain data (no C++ object with a destructor), turned into datums by fill_row.
constexpr std::size_t kNumericBytes = 64;  // a varlena numeric of up to 38 digits fits
struct PlainRow {
  const char* key_prefix;  // "person:" or "customer:"
  const char* key;
  std::size_t key_length;
  char digits[24];
  bool has_person_id;
  std::int64_t person_id;
  std::int64_t orders;
  union {
    std::uint8_t monetary[kNumericBytes];  // varlena numeric
    std::int64_t align1_;
  };
  union {
    std::uint8_t positive_total[kNumericBytes];
    std::int64_t align2_;
  };
  bool scored;  // has a positive order: recency, r, f, m, first and last order, average order value
  std::int32_t recency_days;
  int r, f, m;
  std::int32_t segment;  // -1 NULL
  lc::Stage stage;
  bool has_typical_gap;
  double typical_gap_days;
  bool has_expected_next;
  TimestampTz expected_next_order_at;
  double overdue_ratio;
  std::int32_t stage_since_day;
  TimestampTz first_order_at, last_order_at;
  std::int32_t identifiers, sources;
};

void put_numeric(std::uint8_t* out, const cdp::Decimal& value) {
  const std::string payload = cdp::encode_numeric(value);
  if (VARHDRSZ + payload.size() > kNumericBytes)
    throw cdp::Error(cdp::sqlstate::kInternalError, "cdp.refresh_profiles: numeric value too long");
  SET_VARSIZE(out, VARHDRSZ + payload.size());
  std::memcpy(out + VARHDRSZ, payload.data(), payload.size());
}

// Everything the rows share.
struct WriteContext {
  TimestampTz as_of;
  bool shift;                 // the shop's zone is not UTC: timestamps go back to real instants
  Datum zone;                 // text, for timestamp_zone
  const Segments* segments;
  Datum stage_text[lc::kStageCount];
  MemoryContext row_memory;   // values of one row (the bulk path: until its batch is flushed)
};

TimestampTz unshift(const WriteContext* context, TimestampTz local) {
  if (!context->shift) return local;
  // (local AT TIME ZONE 'UTC') AT TIME ZONE shop_time_zone: the wall-clock time in the shop's zone.
  return DatumGetTimestampTz(DirectFunctionCall2(timestamp_zone, context->zone, TimestampGetDatum(local)));
}

// Plain C: the datums of one row into values/nulls, allocated in the context's row memory.
void fill_row(const WriteContext* context, const PlainRow* row, Datum* values, bool* nulls) {
  MemoryContext old = MemoryContextSwitchTo(context->row_memory);
  for (int c = 0; c < kSnapshotColumns; ++c) nulls[c] = false;
  values[kAsOf] = TimestampTzGetDatum(context->as_of);
  const std::size_t prefix = strlen(row->key_prefix);
  text* key = static_cast<text*>(palloc(VARHDRSZ + prefix + row->key_length));
  SET_VARSIZE(key, VARHDRSZ + prefix + row->key_length);
  std::memcpy(VARDATA(key), row->key_prefix, prefix);
  if (row->key_length) std::memcpy(VARDATA(key) + prefix, row->key, row->key_length);
  values[kPersonKey] = PointerGetDatum(key);
  nulls[kPersonId] = !row->has_person_id;
  values[kPersonId] = Int64GetDatum(row->person_id);
  values[kOrders] = Int64GetDatum(row->orders);
  values[kMonetary] = PointerGetDatum(datumCopy(PointerGetDatum(row->monetary), false, -1));
  nulls[kAverageOrderValue] = nulls[kRecencyDays] = nulls[kR] = nulls[kF] = nulls[kM] = !row->scored;
  nulls[kFirstOrderAt] = nulls[kLastOrderAt] = !row->scored;
  if (row->scored) {
    // PostgreSQL's own numeric division: the same as cdp.rfm_agg's average_order_value.
    values[kAverageOrderValue] =
        DirectFunctionCall2(numeric_div, datumCopy(PointerGetDatum(row->positive_total), false, -1),
                            NumericGetDatum(int64_to_numeric(row->orders)));
    values[kRecencyDays] = Int32GetDatum(row->recency_days);
    values[kR] = Int32GetDatum(row->r);
    values[kF] = Int32GetDatum(row->f);
    values[kM] = Int32GetDatum(row->m);
    values[kFirstOrderAt] = TimestampTzGetDatum(unshift(context, row->first_order_at));
    values[kLastOrderAt] = TimestampTzGetDatum(unshift(context, row->last_order_at));
  }
  nulls[kRfmSegment] = row->segment < 0;
  values[kRfmSegment] = row->segment < 0 ? (Datum)0 : context->segments->names[row->segment];
  values[kLifecycleStage] = context->stage_text[static_cast<int>(row->stage)];
  const bool prospect = row->stage == lc::Stage::kProspect;
  nulls[kCadenceDays] = prospect || !row->has_typical_gap;
  values[kCadenceDays] = Float8GetDatum(row->typical_gap_days);
  nulls[kExpectedNextOrderAt] = prospect || !row->has_expected_next;
  if (!nulls[kExpectedNextOrderAt])
    values[kExpectedNextOrderAt] = TimestampTzGetDatum(unshift(context, row->expected_next_order_at));
  nulls[kOverdueRatio] = nulls[kStageSince] = prospect;
  values[kOverdueRatio] = Float8GetDatum(row->overdue_ratio);
  values[kStageSince] = DateADTGetDatum(row->stage_since_day);
  values[kIdentifiers] = Int32GetDatum(row->identifiers);
  values[kSources] = Int32GetDatum(row->sources);
  MemoryContextSwitchTo(old);
}

Datum numeric_datum(const cdp::Decimal& value) {
  const std::string payload = cdp::encode_numeric(value);
  return pg_call([&] {
    struct varlena* datum = static_cast<struct varlena*>(palloc(VARHDRSZ + payload.size()));
    SET_VARSIZE(datum, VARHDRSZ + payload.size());
    std::memcpy(VARDATA(datum), payload.data(), payload.size());
    return PointerGetDatum(datum);
  });
}

// The memory error of the refresh: what it holds, and the setting to raise.
[[noreturn]] void out_of_memory(const cdp::pg::CapturedError& error, std::size_t limit, std::size_t persons,
                                std::size_t rows) {
  throw cdp::Error(
      cdp::sqlstate::kProgramLimitExceeded,
      "cdp.refresh_profiles needs more memory than maintenance_work_mem allows (" + std::to_string(limit >> 20) +
          " MB)",
      "It holds about 200 bytes per person (with two order rows each; 12 bytes more per further order row) while "
      "it groups and scores; " + std::to_string(persons) + " persons and " + std::to_string(rows) +
          " order rows were read when the limit was reached (" + error.message + ").",
      "Raise maintenance_work_mem for the session that refreshes, e.g. SET maintenance_work_mem = '1GB' "
      "(about 200 MB per million persons).");
}

}  // namespace

Datum cdp_profile_write_snapshot(PG_FUNCTION_ARGS) {
  return cdp::pg::guarded([&]() -> Datum {
    for (int argument = 0; argument < 9; ++argument)
      if (argument != 5 && PG_ARGISNULL(argument))  // the function is STRICT but for the zone; belt and braces
        cdp::pg::fail(cdp::sqlstate::kNullValueNotAllowed, "cdp.profile_write_snapshot: arguments must not be NULL");
    const int bins = PG_GETARG_INT32(7);
    cdp::rfm::check_bins(bins);
    const TimestampTz as_of = PG_GETARG_TIMESTAMPTZ(3);
    const TimestampTz local_as_of = PG_GETARG_TIMESTAMPTZ(4);
    if (TIMESTAMP_NOT_FINITE(as_of) || TIMESTAMP_NOT_FINITE(local_as_of))
      cdp::pg::fail(cdp::sqlstate::kInvalidParameterValue, "cdp.profile_write_snapshot: as_of must be finite");
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    struct Setup {
      char* query;
      char* person_match;
      char* columns[kOrdersColumns];
      char* policy;
      char* zone;
      MemoryContext work;
      TupleDesc result_desc;
      Tuplestorestate* totals;
      ArrayType* cells;
    };
    const Setup setup = pg_call([&]() -> Setup {
      if (rsinfo == nullptr || !IsA(rsinfo, ReturnSetInfo) || (rsinfo->allowedModes & SFRM_Materialize) == 0)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("cdp.profile_write_snapshot returns a set")));
      Setup s;
      s.query = text_to_cstring(PG_GETARG_TEXT_PP(0));
      s.person_match = text_to_cstring(PG_GETARG_TEXT_PP(1));
      Datum* elements;
      bool* element_nulls;
      int count;
      deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT, &elements, &element_nulls, &count);
      if (count != kOrdersColumns) elog(ERROR, "cdp.profile_write_snapshot: columns must name 4 columns");
      for (int c = 0; c < kOrdersColumns; ++c)
        s.columns[c] = element_nulls[c] ? nullptr : TextDatumGetCString(elements[c]);
      if (s.columns[kColCustomer] == nullptr || s.columns[kColOrderedAt] == nullptr || s.columns[kColAmount] == nullptr)
        elog(ERROR, "cdp.profile_write_snapshot: only the person id column may be NULL");
      s.zone = PG_ARGISNULL(5) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(5));
      s.policy = text_to_cstring(PG_GETARG_TEXT_PP(6));
      s.cells = PG_GETARG_ARRAYTYPE_P(8);
      MemoryContext per_query = rsinfo->econtext->ecxt_per_query_memory;
      MemoryContext old = MemoryContextSwitchTo(per_query);
      TupleDesc desc;
      if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "cdp.profile_write_snapshot must return a row type");
      s.result_desc = CreateTupleDescCopy(desc);
      s.totals = tuplestore_begin_heap(false, false, work_mem);
      s.work = AllocSetContextCreate(CurrentMemoryContext, "cdp.refresh_profiles", ALLOCSET_DEFAULT_SIZES);
      MemoryContextSwitchTo(old);
      if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "cdp.profile_write_snapshot: SPI_connect failed");
      return s;
    });
    const bool identity = std::strcmp(setup.person_match, "customer") != 0;
    const bool shift = setup.zone != nullptr && std::strcmp(setup.zone, "UTC") != 0;

    cdp::MemoryBudget budget(cdp::pg::kilobytes(maintenance_work_mem), "maintenance_work_mem");
    cdp::Interrupts interrupts([] { cdp::pg::check_for_interrupts(); });

    using Clock = std::chrono::steady_clock;
    const Clock::time_point started = Clock::now();
    auto seconds_since = [](Clock::time_point from) { return std::chrono::duration<double>(Clock::now() - from).count(); };

    // 1. The orders, grouped by person in one pass.
    cdp::profiles::ProfileEngine engine(local_as_of, budget);
    OrdersReceiver receiver;
    std::memset(static_cast<void*>(&receiver), 0, sizeof receiver);
    receiver.base.receiveSlot = receive_order;
    receiver.base.rStartup = orders_startup;
    receiver.base.rShutdown = receiver_shutdown;
    receiver.base.rDestroy = receiver_destroy;
    receiver.base.mydest = DestNone;
    receiver.engine = &engine;
    receiver.column_names = setup.columns;
    pg_call([&] { run_query(setup.query, &receiver.base, "orders"); });
    if (!receiver.error.failed && receiver.pending > 0) flush_rows(&receiver);
    if (receiver.error.failed) {
      if (std::strcmp(receiver.error.sqlstate, cdp::sqlstate::kProgramLimitExceeded) == 0)
        out_of_memory(receiver.error, budget.limit(), engine.size(), engine.order_rows());
      receiver.error.rethrow();
    }
    cdp::pg::check_for_interrupts();
    const double read_seconds = seconds_since(started);
    try {
      engine.finish_rows(interrupts);
    } catch (const cdp::Error& e) {
      if (std::strcmp(e.sqlstate(), cdp::sqlstate::kProgramLimitExceeded) != 0) throw;
      cdp::pg::CapturedError captured = {};
      std::snprintf(captured.message, sizeof captured.message, "%s", e.what());
      out_of_memory(captured, budget.limit(), engine.size(), engine.order_rows());
    }
    const std::size_t n = engine.size();
    lc::Policy policy;
    if (n > 0) policy = cdp::pg::lifecycle_policy(setup.policy, std::strlen(setup.policy));

    const double indexed_seconds = seconds_since(started);
    // Identifiers and sources of the persons known to the merge.
    std::vector<std::int32_t> identifiers, sources;
    if (identity && n > 0) {  // (an empty snapshot has nobody to count for)
      budget.charge(n * (2 * sizeof(std::int32_t) + sizeof(std::uint64_t)));
      identifiers.assign(n, 0);
      sources.assign(n, 0);
      std::vector<std::uint64_t> masks(n, 0);
      CountsReceiver counts;
      std::memset(static_cast<void*>(&counts), 0, sizeof counts);
      counts.engine = &engine;
      counts.counts = identifiers.data();
      pg_call([&] {
        run_counts(&counts, "SELECT pi.person_id FROM cdp.person_identifiers pi "
                            "WHERE pi.person_id IS NOT NULL AND pi.status OPERATOR(pg_catalog.=) 'linked'");
      });
      std::memset(static_cast<void*>(&counts), 0, sizeof counts);
      counts.engine = &engine;
      counts.source_masks = masks.data();
      pg_call([&] {
        run_counts(&counts, "SELECT im.person_id, im.source::pg_catalog.text FROM cdp.identity_map im "
                            "WHERE im.person_id IS NOT NULL");
      });
      if (!counts.too_many_sources) {
        for (std::size_t p = 0; p < n; ++p) sources[p] = __builtin_popcountll(masks[p]);
      } else {
        std::memset(static_cast<void*>(&counts), 0, sizeof counts);
        counts.engine = &engine;
        counts.counts = sources.data();
        counts.pairs = true;
        pg_call([&] {
          run_counts(&counts, "SELECT im.person_id, pg_catalog.count(DISTINCT im.source) FROM cdp.identity_map im "
                              "GROUP BY 1");
        });
      }
    }
    const double grouped_seconds = seconds_since(started);
    const Clock::time_point scoring_started = Clock::now();

    // 2. Scores: equal values share a score; persons without a positive order are not scored.
    //    Monetary values of one scale compare as integers, else exactly across scales.
    const std::size_t score_bytes = n * (sizeof(std::int32_t) + sizeof(std::int64_t) + sizeof(__int128) + 1 + 3) +
                                    cdp::profiles::score_rows_memory(n);
    budget.charge(score_bytes);
    std::vector<std::int32_t> recency(n);
    std::vector<std::int64_t> orders(n);
    std::vector<__int128> monetary_units(n);
    std::vector<std::int8_t> monetary_scale(n);
    for (std::size_t p = 0; p < n; ++p) {
      const cdp::rfm::OrderStats& stats = engine.at(p).rfm;
      orders[p] = stats.orders;
      recency[p] = stats.orders > 0 ? engine.recency_days(p) : 0;
      monetary_units[p] = stats.monetary.units();
      monetary_scale[p] = static_cast<std::int8_t>(stats.monetary.scale());
    }
    std::vector<std::uint8_t> r(n), f(n), m(n);
    auto scored = [&](std::size_t row) { return orders[row] > 0; };
    cdp::profiles::score_rows(
        n, bins, scored, [&](std::uint32_t a, std::uint32_t b) { return recency[a] > recency[b]; }, r.data(),
        interrupts);
    cdp::profiles::score_rows(
        n, bins, scored, [&](std::uint32_t a, std::uint32_t b) { return orders[a] < orders[b]; }, f.data(), interrupts);
    bool one_scale = true;
    for (std::size_t row = 1; row < n && one_scale; ++row) one_scale = monetary_scale[row] == monetary_scale[0];
    if (one_scale)
      cdp::profiles::score_rows(
          n, bins, scored, [&](std::uint32_t a, std::uint32_t b) { return monetary_units[a] < monetary_units[b]; },
          m.data(), interrupts);
    else
      cdp::profiles::score_rows(
          n, bins, scored,
          [&](std::uint32_t a, std::uint32_t b) {
            return cdp::Decimal(monetary_units[a], monetary_scale[a]) < cdp::Decimal(monetary_units[b], monetary_scale[b]);
          },
          m.data(), interrupts);
    std::vector<__int128>().swap(monetary_units);
    std::vector<std::int8_t>().swap(monetary_scale);
    const double scored_seconds = seconds_since(scoring_started);
    const Clock::time_point writing_started = Clock::now();

    // 3. Segment names.
    Segments segments;
    segments.bins = bins;
    budget.charge(static_cast<std::size_t>(bins) * bins * bins * (sizeof(std::int32_t) + sizeof(Datum)));
    segments.cell.assign(static_cast<std::size_t>(bins) * bins * bins, -1);
    segments.keep = setup.work;
    segments.names.reserve(segments.cell.size());
    pg_call([&] { load_cell_segments(&segments, setup.cells); });

    // 4. Write the rows, totalling them per segment and stage.
    cdp::pg::BulkAppender appender("cdp", "profile_snapshots", kSnapshotColumns, kSnapshotTypes);
    WriteContext context;
    context.as_of = as_of;
    context.shift = shift;
    context.segments = &segments;
    struct WriteSetup {
      SPIPlanPtr insert;  // plain INSERT when the bulk path does not apply
      MemoryContext row_memory;
      Datum zone;
    };
    const WriteSetup write = pg_call([&]() -> WriteSetup {
      WriteSetup w;
      MemoryContext old = MemoryContextSwitchTo(setup.work);
      for (int s = 0; s < lc::kStageCount; ++s)
        context.stage_text[s] = PointerGetDatum(cstring_to_text(lc::stage_name(static_cast<lc::Stage>(s))));
      w.zone = setup.zone ? PointerGetDatum(cstring_to_text(setup.zone)) : (Datum)0;
      w.row_memory = AllocSetContextCreate(setup.work, "cdp.refresh_profiles row", ALLOCSET_DEFAULT_SIZES);
      MemoryContextSwitchTo(old);
      w.insert = nullptr;
      if (!appender.usable()) {
        Oid types[kSnapshotColumns];
        std::memcpy(types, kSnapshotTypes, sizeof types);
        w.insert = SPI_prepare(
            "INSERT INTO cdp.profile_snapshots VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
            "$15, $16, $17, $18, $19, $20)",
            kSnapshotColumns, types);
        if (w.insert == nullptr) elog(ERROR, "cdp.profile_write_snapshot: preparing the insert failed");
      }
      return w;
    });
    context.zone = write.zone;
    context.row_memory = appender.usable() ? appender.row_memory() : write.row_memory;

    std::vector<GroupTotals> by_segment(1);  // [0]: no segment (NULL), [k + 1]: segments.names[k]
    std::vector<GroupTotals> by_stage(lc::kStageCount);
    GroupTotals all;
    PlainRow row;
    std::memset(static_cast<void*>(&row), 0, sizeof row);
    for (std::size_t p = 0; p < n; ++p) {
      const cdp::profiles::PersonStats& person = engine.at(p);
      const cdp::rfm::OrderStats& stats = person.rfm;
      const bool attributed = identity && person.integer_key();
      row.key_prefix = attributed ? "person:" : "customer:";
      if (person.integer_key()) {
        const auto written = std::to_chars(row.digits, row.digits + sizeof row.digits, person.key);
        row.key = row.digits;
        row.key_length = static_cast<std::size_t>(written.ptr - row.digits);
      } else {
        row.key = person.key_bytes();
        row.key_length = person.key_length;
      }
      row.has_person_id = attributed;
      row.person_id = person.key;
      row.orders = stats.orders;
      put_numeric(row.monetary, stats.monetary);
      row.scored = stats.orders > 0;
      row.recency_days = recency[p];
      row.segment = -1;
      if (row.scored) {
        put_numeric(row.positive_total, stats.positive_total);
        row.r = r[p];
        row.f = f[p];
        row.m = m[p];
        row.segment = segment_of(segments, r[p], f[p], m[p]);
        row.first_order_at = stats.first_order_at;
        row.last_order_at = stats.last_order_at;
      }
      const lc::Outcome outcome = engine.lifecycle(p, policy);
      row.stage = outcome.assessment.stage;
      row.has_typical_gap = outcome.assessment.has_typical_gap;
      row.typical_gap_days = outcome.assessment.typical_gap_days;
      row.has_expected_next = outcome.has_expected_next;
      row.expected_next_order_at = outcome.expected_next_order_at;
      row.overdue_ratio = outcome.assessment.overdue_ratio;
      row.stage_since_day = outcome.assessment.stage_since_day;
      row.identifiers = identity ? identifiers[p] : 0;
      row.sources = identity ? sources[p] : 0;
      if (appender.usable()) {
        pg_call([&] { fill_row(&context, &row, appender.values(), appender.nulls()); });
        appender.append();
      } else {
        pg_call([&] {
          Datum values[kSnapshotColumns];
          bool nulls[kSnapshotColumns];
          fill_row(&context, &row, values, nulls);
          char null_flags[kSnapshotColumns];
          for (int c = 0; c < kSnapshotColumns; ++c) null_flags[c] = nulls[c] ? 'n' : ' ';
          const int rc = SPI_execute_plan(write.insert, values, null_flags, false, 0);
          if (rc != SPI_OK_INSERT) elog(ERROR, "cdp.profile_write_snapshot: insert failed: %s", SPI_result_code_string(rc));
          MemoryContextReset(context.row_memory);
        });
      }
      const std::size_t segment_slot = static_cast<std::size_t>(row.segment + 1);
      if (segment_slot >= by_segment.size()) by_segment.resize(segment_slot + 1);
      by_segment[segment_slot].add(stats.orders, stats.monetary, row.scored, row.recency_days, attributed);
      by_stage[static_cast<int>(row.stage)].add(stats.orders, stats.monetary, row.scored, row.recency_days, attributed);
      all.add(stats.orders, stats.monetary, row.scored, row.recency_days, attributed);
      if ((p & 0xFFF) == 0) cdp::pg::check_for_interrupts();
    }
    appender.finish();
    const double written_seconds = seconds_since(writing_started);
    const bool bulk = appender.usable();
    const std::size_t rows_read = engine.order_rows(), peak = budget.used();
    pg_call([&] {
      elog(DEBUG1,
           "refresh_profiles: %zu order rows grouped into %zu persons in %.3f s (read %.3f s, by person %.3f s, "
           "identifier and source counts %.3f s), scored in %.3f s, written (%s) in %.3f s; memory %zu kB (%zu bytes "
           "per person)",
           rows_read, n, grouped_seconds, read_seconds, indexed_seconds - read_seconds, grouped_seconds - indexed_seconds,
           scored_seconds, bulk ? "bulk" : "row by row", written_seconds, peak / 1024, n ? peak / n : 0);
    });

    // 5. The totals.
    // ignored_rows is the refresh's own figure, reported on the 'all' row (0 on the group rows).
    auto put = [&](const char* dimension, const std::string& group, const GroupTotals& t, std::int64_t ignored_rows) {
      const Datum revenue = numeric_datum(t.revenue);
      pg_call([&] {
        Datum values[9] = {CStringGetTextDatum(dimension),      CStringGetTextDatum(group.c_str()),
                           Int64GetDatum(t.customers),          revenue,
                           Int64GetDatum(t.orders),             Int64GetDatum(t.recency_days_sum),
                           Int64GetDatum(t.recency_days_n),     Int64GetDatum(t.unattributed),
                           Int64GetDatum(ignored_rows)};
        bool nulls[9] = {false, false, false, false, false, false, false, false, false};
        MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
        tuplestore_putvalues(setup.totals, setup.result_desc, values, nulls);
        MemoryContextSwitchTo(old);
      });
    };
    // Several cells share a segment name; persons without one are '(unscored)'.
    std::map<std::string, GroupTotals> segment_totals;
    for (std::size_t slot = 0; slot < by_segment.size(); ++slot) {
      if (by_segment[slot].customers == 0) continue;
      std::string name = "(unscored)";
      if (slot > 0) {
        const char* chars = pg_call([&]() -> const char* {
          return text_to_cstring(reinterpret_cast<text*>(DatumGetPointer(segments.names[slot - 1])));
        });
        name = chars;
      }
      segment_totals[name].merge(by_segment[slot]);
    }
    for (const auto& [name, totals] : segment_totals) put("rfm_segment", name, totals, 0);
    for (int s = 0; s < lc::kStageCount; ++s)
      if (by_stage[s].customers > 0) put("lifecycle_stage", lc::stage_name(static_cast<lc::Stage>(s)), by_stage[s], 0);
    put("all", "", all, receiver.ignored_rows);

    pg_call([&] {
      if (SPI_finish() != SPI_OK_FINISH) elog(ERROR, "cdp.profile_write_snapshot: SPI_finish failed");
      MemoryContextDelete(setup.work);
      rsinfo->returnMode = SFRM_Materialize;
      rsinfo->setResult = setup.totals;
      rsinfo->setDesc = setup.result_desc;
    });
    return (Datum)0;
  });
}
