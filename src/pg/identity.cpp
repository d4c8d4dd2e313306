// Glue for identity merge (docs/identity.md): reads observations through SPI with the caller's
// privileges, feeds the core resolver (src/core/identity_resolve.h) and writes the results back in
// the caller's transaction. Every call into PostgreSQL goes through pg_call; C++ state is plain data.
#include "pg/boundary.h"

#include "pg/bulk_append.h"

extern "C" {
#include "access/xact.h"     // GetCurrentTransactionStartTimestamp
#include "utils/snapmgr.h"  // GetActiveSnapshot: rules cached per statement
}

#include "core/identity_normalize.h"
#include "core/identity_resolve.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

extern "C" {
PG_FUNCTION_INFO_V1(cdp_merge_identities);
PG_FUNCTION_INFO_V1(cdp_forget_identifier);
PG_FUNCTION_INFO_V1(cdp_forget_person);
PG_FUNCTION_INFO_V1(cdp_normalize_identifier);
PG_FUNCTION_INFO_V1(cdp_person_id);
}

namespace cdp::pg {
namespace {

using identity::IdentityGraph;
using identity::TypeRule;

// Serialises merge runs and erasures: pg_advisory_xact_lock(kLockClass, kLockObject).
constexpr int32_t kLockClass = 0x63647069;  // "cdpi"
constexpr int32_t kLockObject = 1;
constexpr std::size_t kFetchRows = 20000;
constexpr std::size_t kWriteRows = 20000;

// ---------------------------------------------------------------------------------------------
// SPI helpers (each one call into PostgreSQL wrapped by pg_call).

struct SpiArg {
  Oid type;
  Datum value;
  bool is_null;
};

// Runs a statement; returns SPI_processed. The result (if any) stays in SPI_tuptable.
uint64 spi_run(const char* sql, const std::vector<SpiArg>& params = {}, bool read_only = false) {
  const int n = static_cast<int>(params.size());
  Oid types[32];
  Datum values[32];
  char nulls[32];
  if (n > 32) fail(sqlstate::kInternalError, "too many SPI parameters");
  for (int i = 0; i < n; ++i) {
    types[i] = params[i].type;
    values[i] = params[i].value;
    nulls[i] = params[i].is_null ? 'n' : ' ';
  }
  return pg_call([&]() -> uint64 {
    int rc = SPI_execute_with_args(sql, n, types, values, nulls, read_only, 0);
    if (rc < 0) elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
    return SPI_processed;
  });
}

// Copies of single result values (after spi_run).
bool result_is_null(uint64 row, int column) {
  return pg_call([&]() -> bool {
    bool is_null = false;
    SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, &is_null);
    return is_null;
  });
}
int64_t result_int64(uint64 row, int column) {
  return pg_call([&]() -> int64_t {
    bool is_null = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, &is_null);
    return is_null ? 0 : DatumGetInt64(d);
  });
}
std::string result_text(uint64 row, int column) {
  struct Span {
    const char* data;
    int len;
  };
  Span span = pg_call([&]() -> Span {
    bool is_null = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, &is_null);
    if (is_null) return Span{nullptr, 0};
    text* t = pg_detoast_datum_packed(reinterpret_cast<struct varlena*>(DatumGetPointer(d)));
    return Span{VARDATA_ANY(t), static_cast<int>(VARSIZE_ANY_EXHDR(t))};
  });
  return span.data ? std::string(span.data, span.len) : std::string();
}

SpiArg text_param(std::string_view s) {
  Datum d = pg_call([&]() -> Datum { return PointerGetDatum(cstring_to_text_with_len(s.data(), s.size())); });
  return SpiArg{TEXTOID, d, false};
}
SpiArg int8_param(int64_t v) { return SpiArg{INT8OID, Int64GetDatum(v), false}; }
SpiArg bool_param(bool v) { return SpiArg{BOOLOID, BoolGetDatum(v), false}; }
SpiArg oid_param(Oid v) { return SpiArg{OIDOID, ObjectIdGetDatum(v), false}; }
SpiArg int8_array_param(const std::vector<int64_t>& values) {
  Datum d = pg_call([&]() -> Datum {
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (values.size() + 1)));
    for (std::size_t i = 0; i < values.size(); ++i) elems[i] = Int64GetDatum(values[i]);
    return PointerGetDatum(construct_array(elems, static_cast<int>(values.size()), INT8OID, 8, true, TYPALIGN_DOUBLE));
  });
  return SpiArg{INT8ARRAYOID, d, false};
}
SpiArg text_array_param(const std::vector<std::string_view>& values) {
  Datum d = pg_call([&]() -> Datum {
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (values.size() + 1)));
    for (std::size_t i = 0; i < values.size(); ++i)
      elems[i] = PointerGetDatum(cstring_to_text_with_len(values[i].data(), values[i].size()));
    return PointerGetDatum(construct_array(elems, static_cast<int>(values.size()), TEXTOID, -1, false, TYPALIGN_INT));
  });
  return SpiArg{TEXTARRAYOID, d, false};
}

void notice(const std::string& message) {
  pg_call([&] { ereport(NOTICE, (errmsg("%s", message.c_str()))); });
}

// A batch of rows fetched from a cursor, as plain pointers into the fetched tuples.
struct TextCell {
  const char* data;
  int32_t len;  // -1 = NULL
  std::string_view view() const { return std::string_view(data, len < 0 ? 0 : len); }
  bool is_null() const { return len < 0; }
};

class Cursor {
 public:
  Cursor(const char* sql, const std::vector<SpiArg>& params) {
    const int n = static_cast<int>(params.size());
    Oid types[16];
    Datum values[16];
    char nulls[16];
    for (int i = 0; i < n; ++i) {
      types[i] = params[i].type;
      values[i] = params[i].value;
      nulls[i] = params[i].is_null ? 'n' : ' ';
    }
    portal_ = pg_call([&]() -> Portal {
      Portal portal = SPI_cursor_open_with_args(nullptr, sql, n, types, values, nulls, false, 0);
      if (!portal) elog(ERROR, "could not open cursor");
      return portal;
    });
  }
  // Fetches the next batch; text columns (1-based numbers in text_columns) are exposed as TextCell,
  // the others as Datum. Returns the number of rows (0 at the end, when the cursor is closed).
  std::size_t fetch(int columns, const std::vector<bool>& is_text) {
    cells_.resize(kFetchRows * columns);
    datums_.resize(kFetchRows * columns);
    const std::size_t rows = pg_call([&]() -> std::size_t {
      if (SPI_tuptable) {
        SPI_freetuptable(SPI_tuptable);
        SPI_tuptable = nullptr;
      }
      SPI_cursor_fetch(portal_, true, kFetchRows);
      const std::size_t n = SPI_processed;
      for (std::size_t r = 0; r < n; ++r) {
        HeapTuple tuple = SPI_tuptable->vals[r];
        for (int c = 0; c < columns; ++c) {
          bool is_null = false;
          Datum d = SPI_getbinval(tuple, SPI_tuptable->tupdesc, c + 1, &is_null);
          TextCell& cell = cells_[r * columns + c];
          datums_[r * columns + c] = is_null ? (Datum)0 : d;
          if (is_null) {
            cell = TextCell{nullptr, -1};
          } else if (is_text[c]) {
            text* t = pg_detoast_datum_packed(reinterpret_cast<struct varlena*>(DatumGetPointer(d)));
            cell = TextCell{VARDATA_ANY(t), static_cast<int32_t>(VARSIZE_ANY_EXHDR(t))};
          } else {
            cell = TextCell{"", 0};
          }
        }
      }
      if (n == 0) SPI_cursor_close(portal_);
      return n;
    });
    columns_ = columns;
    return rows;
  }
  const TextCell& cell(std::size_t row, int column) const { return cells_[row * columns_ + column]; }
  Datum datum(std::size_t row, int column) const { return datums_[row * columns_ + column]; }

 private:
  Portal portal_;
  int columns_ = 0;
  std::vector<TextCell> cells_;
  std::vector<Datum> datums_;
};

// Rows of a query handed one by one to a C++ callback straight from the executor (a DestReceiver):
// no tuple tables and no per-row copies; text cells point into the executor's slot, valid during the
// callback only. The receiver holds no C++ object: the callback runs in a noexcept trampoline that
// records an exception and stops the scan, and the error is raised again once SPI has returned.
// Cancellation is polled by the receiver (plain C), every 4096 rows. Callbacks must not call into
// PostgreSQL (they run inside the executor): pure C++ work only.
struct RowView {
  static constexpr int kMaxColumns = 8;
  TextCell cells[kMaxColumns];  // text columns
  Datum datums[kMaxColumns];    // other columns (0 when NULL; see cells[c].is_null())
  const TextCell& cell(int column) const { return cells[column]; }
  Datum datum(int column) const { return datums[column]; }
  bool is_null(int column) const { return cells[column].is_null(); }
};

struct RowReceiver {
  DestReceiver base;
  int columns;
  bool text_column[RowView::kMaxColumns];
  bool (*call)(void* context, const RowView& row, CapturedError* error);
  void* context;
  uint64 rows;
  CapturedError error;
};

bool receive_row(TupleTableSlot* slot, DestReceiver* self) {
  RowReceiver* receiver = reinterpret_cast<RowReceiver*>(self);
  slot_getallattrs(slot);
  RowView row;
  struct varlena* copies[RowView::kMaxColumns];
  int copied = 0;
  for (int c = 0; c < receiver->columns; ++c) {
    if (slot->tts_isnull[c]) {
      row.cells[c] = TextCell{nullptr, -1};
      row.datums[c] = (Datum)0;
      continue;
    }
    row.datums[c] = slot->tts_values[c];
    if (receiver->text_column[c]) {
      struct varlena* raw = reinterpret_cast<struct varlena*>(DatumGetPointer(slot->tts_values[c]));
      struct varlena* flat = pg_detoast_datum_packed(raw);
      if (flat != raw) copies[copied++] = flat;  // compressed or out of line: freed after the callback
      row.cells[c] = TextCell{VARDATA_ANY(flat), static_cast<int32_t>(VARSIZE_ANY_EXHDR(flat))};
    } else {
      row.cells[c] = TextCell{"", 0};
    }
  }
  const bool ok = receiver->call(receiver->context, row, &receiver->error);
  for (int i = 0; i < copied; ++i) pfree(copies[i]);
  if (!ok) return false;
  if ((++receiver->rows & 4095) == 0) CHECK_FOR_INTERRUPTS();
  return true;
}
void receiver_startup(DestReceiver* self, int, TupleDesc result) {
  RowReceiver* receiver = reinterpret_cast<RowReceiver*>(self);
  if (result->natts != receiver->columns) elog(ERROR, "cdp: query returned %d columns, expected %d", result->natts, receiver->columns);
}
void receiver_nothing(DestReceiver*) {}

template <typename OnRow>
bool call_row(void* context, const RowView& row, CapturedError* error) noexcept {
  try {
    (*static_cast<OnRow*>(context))(row);
    return true;
  } catch (...) {
    error->capture_current("cdp.merge_identities");
    return false;
  }
}

// Runs sql with params and calls on_row(const RowView&) for each row; text_columns: which columns are
// text (the others are by-value Datums: int8, bool, timestamptz).
template <typename OnRow>
void for_each_row(const char* sql, const std::vector<SpiArg>& params, const std::vector<bool>& text_columns,
                  OnRow&& on_row) {
  using Callback = std::remove_reference_t<OnRow>;
  RowReceiver receiver;
  std::memset(static_cast<void*>(&receiver), 0, sizeof receiver);
  receiver.base.receiveSlot = receive_row;
  receiver.base.rStartup = receiver_startup;
  receiver.base.rShutdown = receiver_nothing;
  receiver.base.rDestroy = receiver_nothing;
  receiver.base.mydest = DestNone;
  receiver.columns = static_cast<int>(text_columns.size());
  if (receiver.columns > RowView::kMaxColumns) fail(sqlstate::kInternalError, "too many columns");
  for (int c = 0; c < receiver.columns; ++c) receiver.text_column[c] = text_columns[c];
  receiver.call = &call_row<Callback>;
  receiver.context = const_cast<void*>(static_cast<const void*>(&on_row));
  const int n = static_cast<int>(params.size());
  if (n > 16) fail(sqlstate::kInternalError, "too many SPI parameters");
  Oid types[16];
  for (int i = 0; i < n; ++i) types[i] = params[i].type;
  try {
    pg_call([&] {
    SPIPlanPtr plan = SPI_prepare(sql, n, types);
    if (!plan) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
    ParamListInfo list = n > 0 ? makeParamList(n) : nullptr;
    for (int i = 0; i < n; ++i) {
      list->params[i].value = params[i].value;
      list->params[i].isnull = params[i].is_null;
      list->params[i].pflags = PARAM_FLAG_CONST;
      list->params[i].ptype = params[i].type;
    }
    SPIExecuteOptions options;
    std::memset(&options, 0, sizeof options);
    options.params = list;
    options.read_only = false;
    options.dest = &receiver.base;
    const int rc = SPI_execute_plan_extended(plan, &options);
    if (rc < 0) elog(ERROR, "SPI_execute_plan_extended failed: %s", SPI_result_code_string(rc));
    SPI_freeplan(plan);
    });
  } catch (const PgError& e) {
    // A cancel or timeout is the run's, not the query's: report it without SPI's "SQL statement"
    // context, as when it is noticed between batches of a cursor.
    if (e.data()->sqlerrcode == ERRCODE_QUERY_CANCELED) e.data()->context = nullptr;
    throw;
  }
  if (receiver.error.failed) receiver.error.rethrow();
  check_for_interrupts();
}

// Rows collected column-wise and sent as one array parameter per column:
//   INSERT ... SELECT ... FROM unnest($1::text[], $2::int8[], ...)
// Column kinds: 't' text, 'i' int8, 'T' timestamptz (int64 microseconds), 'b' bool (0/1).
// When the statement returns a row, its int8 columns are added up in sums().
class ArrayBatch {
 public:
  ArrayBatch(std::string sql, std::string kinds) : sql_(std::move(sql)), kinds_(std::move(kinds)) {
    cols_.resize(kinds_.size());
    context_ = pg_call([]() -> MemoryContext {
      return AllocSetContextCreate(CurrentMemoryContext, "cdp identity batch", ALLOCSET_DEFAULT_SIZES);
    });
  }
  void text(int column, std::string_view value) { cols_[column].texts.push_back(value); }
  void int8(int column, int64_t value) { cols_[column].ints.push_back(value); }
  // Call after each complete row.
  void row_done() {
    if (++rows_ >= kWriteRows) flush();
  }
  void flush() {
    if (rows_ == 0) return;
    const int n = static_cast<int>(kinds_.size());
    int64_t results[4] = {0, 0, 0, 0};
    int result_columns = 0;
    pg_call([&] {
      MemoryContext old = MemoryContextSwitchTo(context_);
      Oid types[16];
      Datum values[16];
      char nulls[16];
      Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * rows_));
      for (int c = 0; c < n; ++c) {
        const Column& col = cols_[c];
        Oid elem_type = kinds_[c] == 't' ? TEXTOID : kinds_[c] == 'T' ? TIMESTAMPTZOID : kinds_[c] == 'b' ? BOOLOID : INT8OID;
        int16 typlen;
        bool typbyval;
        char typalign;
        get_typlenbyvalalign(elem_type, &typlen, &typbyval, &typalign);
        for (std::size_t r = 0; r < rows_; ++r) {
          if (kinds_[c] == 't')
            elems[r] = PointerGetDatum(cstring_to_text_with_len(col.texts[r].data(), col.texts[r].size()));
          else if (kinds_[c] == 'b')
            elems[r] = BoolGetDatum(col.ints[r] != 0);
          else
            elems[r] = Int64GetDatum(col.ints[r]);
        }
        types[c] = get_array_type(elem_type);
        values[c] = PointerGetDatum(construct_array(elems, static_cast<int>(rows_), elem_type, typlen, typbyval, typalign));
        nulls[c] = ' ';
      }
      int rc = SPI_execute_with_args(sql_.c_str(), n, types, values, nulls, false, 0);
      if (rc < 0) elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
      if (SPI_tuptable) {
        if (SPI_processed > 0) {
          result_columns = std::min(SPI_tuptable->tupdesc->natts, 4);
          for (int c = 0; c < result_columns; ++c) {
            bool is_null = false;
            Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, c + 1, &is_null);
            results[c] = is_null ? 0 : DatumGetInt64(d);
          }
        }
        SPI_freetuptable(SPI_tuptable);
        SPI_tuptable = nullptr;
      }
      MemoryContextSwitchTo(old);
      MemoryContextReset(context_);
    });
    for (int c = 0; c < result_columns; ++c) sums_[c] += results[c];
    for (Column& col : cols_) {
      col.texts.clear();
      col.ints.clear();
    }
    total_ += rows_;
    rows_ = 0;
    check_for_interrupts();
  }
  uint64 total() const { return total_; }
  int64_t sum(int column) const { return sums_[column]; }

 private:
  struct Column {
    std::vector<std::string_view> texts;
    std::vector<int64_t> ints;
  };
  std::string sql_;
  std::string kinds_;
  std::vector<Column> cols_;
  std::size_t rows_ = 0;
  uint64 total_ = 0;
  int64_t sums_[4] = {0, 0, 0, 0};
  MemoryContext context_;
};

// Rows appended straight into one of pg_cdp's own tables through BulkAppender (multi-insert, as COPY),
// set cell by cell. Used only where plain inserts are right (nothing can conflict); usable() is false
// when the table does not allow the bulk path (privileges, triggers, row security) and the caller must
// use SQL. defer_indexes: the table is empty, build its indexes once at the end (see bulk_append.h).
class RowWriter {
 public:
  RowWriter(const char* table, int columns, const Oid* types, bool defer_indexes = false)
      : appender_("cdp", table, columns, types, defer_indexes) {}
  bool usable() const { return appender_.usable(); }
  void text(int column, std::string_view value) {
    appender_.values()[column] = appender_.text(value.data(), value.size());
    appender_.nulls()[column] = false;
  }
  void int8(int column, int64_t value) {  // int8, timestamptz (microseconds)
    appender_.values()[column] = Int64GetDatum(value);
    appender_.nulls()[column] = false;
  }
  void boolean(int column, bool value) {
    appender_.values()[column] = BoolGetDatum(value);
    appender_.nulls()[column] = false;
  }
  void null(int column) {
    appender_.values()[column] = (Datum)0;
    appender_.nulls()[column] = true;
  }
  void append() { appender_.append(); }
  void finish() { appender_.finish(); }
  bool indexes_deferred() const { return appender_.indexes_deferred(); }
  int64_t rows() const { return appender_.rows(); }

 private:
  BulkAppender appender_;
};
const Oid kLinkTypes[] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
const Oid kMapTypes[] = {TEXTOID, TEXTOID, INT8OID};
const Oid kIdentifierTypes[] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
const Oid kPersonTypes[] = {INT8OID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID};

// ---------------------------------------------------------------------------------------------
// Configuration.

struct Config {
  std::vector<TypeRule> types;
  std::string phone_region = "US";
  bool bulk_index_first_load = false;  // identity_settings.bulk_index_first_load
};

// read_only: for callers that may run in a parallel worker (normalize_identifier, person_id), where SPI
// must not start new commands.
Config load_config(bool read_only = false) {
  Config config;
  uint64 n = spi_run(
      "SELECT id_type, normaliser, coalesce(max_per_person, 0)::int8, priority::int8, coalesce(hub_threshold, 0)::int8 "
      "FROM cdp.identifier_types WHERE enabled ORDER BY id_type",
      {}, read_only);
  for (uint64 r = 0; r < n; ++r) {
    TypeRule rule;
    rule.name = result_text(r, 1);
    rule.normaliser = identity::parse_normaliser(result_text(r, 2));
    rule.max_per_person = static_cast<int>(result_int64(r, 3));
    rule.priority = static_cast<int>(result_int64(r, 4));
    rule.hub_threshold = result_int64(r, 5);
    config.types.push_back(std::move(rule));
  }
  n = spi_run("SELECT default_phone_region, bulk_index_first_load::int4::int8 FROM cdp.identity_settings LIMIT 1", {},
              read_only);
  if (n > 0 && !result_is_null(0, 1)) config.phone_region = result_text(0, 1);
  if (n > 0) config.bulk_index_first_load = result_int64(0, 2) != 0;
  return config;
}

identity::Blocklist load_blocklist(const IdentityGraph& graph, const identity::ValueNormaliser& normaliser) {
  identity::Blocklist blocklist;
  uint64 n = spi_run("SELECT id_type, value, (match = 'like')::int4::int8, reason FROM cdp.identifier_blocklist WHERE enabled");
  for (uint64 r = 0; r < n; ++r) {
    identity::Blocklist::Entry entry;
    if (!result_is_null(r, 1)) {
      entry.type = graph.type_index(result_text(r, 1));
      if (entry.type < 0) continue;  // the FK makes this impossible; be safe anyway
    }
    entry.pattern = result_text(r, 2);
    entry.is_like = result_int64(r, 3) != 0;
    entry.reason = result_text(r, 4);
    // An exact entry for a typed value also blocks its normalised spelling ("(555) 000-0000" etc.).
    if (!entry.is_like && entry.type >= 0) {
      identity::Normalised normalised;
      normaliser.normalise(graph.types()[entry.type].normaliser, entry.pattern, normalised);
      if (normalised.outcome == identity::Outcome::kOk && normalised.value != entry.pattern) {
        identity::Blocklist::Entry copy = entry;
        copy.pattern = normalised.value;
        blocklist.add(std::move(copy));
      }
    }
    blocklist.add(std::move(entry));
  }
  return blocklist;
}

// ---------------------------------------------------------------------------------------------
// The run.

using Clock = std::chrono::steady_clock;

struct Phases {
  Clock::time_point start = Clock::now(), last = start;
  std::vector<std::pair<std::string, int64_t>> ms;
  int64_t lap(const char* name) {
    Clock::time_point now = Clock::now();
    int64_t elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count();
    last = now;
    ms.emplace_back(name, elapsed);
    return elapsed;
  }
  std::string json() const {
    std::string out = "{";
    for (std::size_t i = 0; i < ms.size(); ++i)
      out += (i ? ", \"" : "\"") + ms[i].first + "\": " + std::to_string(ms[i].second);
    return out + "}";
  }
};

struct Skipped {
  int64_t null_field = 0, empty = 0, too_long = 0, forgotten = 0;
  std::string json() const {
    return "{\"null_field\": " + std::to_string(null_field) + ", \"empty\": " + std::to_string(empty) +
           ", \"too_long\": " + std::to_string(too_long) + ", \"forgotten\": " + std::to_string(forgotten) + "}";
  }
};

class MemoryGuard {
 public:
  MemoryGuard() : budget_(kilobytes(maintenance_work_mem), "maintenance_work_mem") {}
  void check(std::size_t bytes) {
    peak_ = std::max(peak_, bytes);
    budget_.release(budget_.used());
    budget_.charge(bytes);
  }
  std::size_t peak() const { return peak_; }

 private:
  MemoryBudget budget_;
  std::size_t peak_ = 0;
};

std::string relation_name(Oid relation) {
  uint64 n = spi_run(
      "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
      {oid_param(relation)});
  if (n == 0) fail(sqlstate::kUndefinedTable, "relation with OID " + std::to_string(relation) + " does not exist");
  return result_text(0, 1);
}

// The observation shape: every column present with a usable type, or one error naming all problems.
void validate_columns(Oid relation, const std::string& name) {
  uint64 n = spi_run(
      "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a "
      "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
      {oid_param(relation)});
  std::map<std::string, std::string> columns;
  for (uint64 r = 0; r < n; ++r) columns[result_text(r, 1)] = result_text(r, 2);
  const char* required[] = {"source", "source_key", "id_type", "id_value", "observed_at"};
  std::string missing, mistyped;
  for (const char* column : required) {
    auto it = columns.find(column);
    if (it == columns.end()) {
      missing += (missing.empty() ? "" : ", ") + std::string(column);
      continue;
    }
    const std::string& type = it->second;
    const bool ok = std::string(column) == "observed_at"
                        ? type == "timestamp with time zone"
                        : (type == "text" || type == "character varying" || type.rfind("character varying(", 0) == 0);
    if (!ok)
      mistyped += (mistyped.empty() ? "" : ", ") + std::string(column) + " is " + type + " (expected " +
                  (std::string(column) == "observed_at" ? "timestamp with time zone" : "text") + ")";
  }
  if (!missing.empty())
    fail(sqlstate::kUndefinedColumn, "relation " + name + " lacks observation column(s) " + missing,
         "Observations need columns source text, source_key text, id_type text, id_value text, "
         "observed_at timestamptz.",
         "Create a view that renames or casts the columns.");
  if (!mistyped.empty())
    fail(sqlstate::kDatatypeMismatch, "relation " + name + " has observation column(s) of the wrong type: " + mistyped,
         {}, "Create a view that casts the columns.");
}

struct IngestLink {  // one observation row: 16 bytes (first/last seen are merged from `at` when stored)
  int32_t record, identifier;
  int64_t at;
};

// Reads the observations, normalises them and adds the new links to cdp.identity_links.
// On a full rebuild without tombstones the stored links are exactly the links read, so the graph built
// here is handed back (reuse) and resolve_and_write skips reading cdp.identity_links again.
void ingest(Oid relation, bool full_rebuild, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
            Phases& phases, Skipped& skipped, int64_t& read, int64_t& new_links, int64_t& high_water_mark,
            bool& has_hwm, std::unique_ptr<IdentityGraph>& reuse, std::unique_ptr<IdentityGraph>& staged_out,
            std::vector<std::pair<int32_t, int32_t>>& new_pairs) {
  const std::string name = relation_name(relation);
  validate_columns(relation, name);

  // Incremental: only rows after the previous high-water mark of this relation (later than the greatest
  // observed_at any earlier run read from it), so no row is read twice.
  bool use_hwm = false;
  int64_t previous_hwm = 0;
  if (!full_rebuild) {
    spi_run("SELECT max(high_water_mark) FROM cdp.merge_runs WHERE kind = 'merge' AND observations = $1",
            {oid_param(relation)});
    if (!result_is_null(0, 1)) {
      use_hwm = true;
      previous_hwm = result_int64(0, 1);
    }
  }
  has_hwm = use_hwm;
  high_water_mark = previous_hwm;

  std::string sql = "SELECT source::text, source_key::text, id_type::text, id_value::text, observed_at FROM " + name;
  std::vector<SpiArg> params;
  if (use_hwm) {
    sql += " WHERE observed_at > $1";
    params.push_back(SpiArg{TIMESTAMPTZOID, Int64GetDatum(previous_hwm), false});
  }

  reuse = std::make_unique<IdentityGraph>(config.types, &interrupts);
  IdentityGraph& staged = *reuse;
  identity::ValueNormaliser normaliser(config.phone_region);
  std::vector<IngestLink> links;
  std::set<std::string> unknown_types;
  identity::Normalised normalised;
  // Phones: libphonenumber takes ~20 us per number and one number repeats on many records, written in a
  // few ways: each distinct raw value (per type) is normalised once and remembered as its identifier.
  constexpr int32_t kSkipEmpty = -1, kSkipTooLong = -2;
  identity::StringInterner phone_raw;  // type byte + raw value
  std::vector<int32_t> phone_identifier;  // per phone_raw entry: identifier, or kSkipEmpty / kSkipTooLong
  std::string phone_key;
  std::string last_type_name;
  int last_type = -1;
  int64_t rows_seen = 0;
  for_each_row(sql.c_str(), params, {true, true, true, true, false}, [&](const RowView& row) {
    ++read;
    if ((++rows_seen & 16383) == 0)
      memory.check(staged.memory_bytes() + links.capacity() * sizeof(IngestLink) + phone_raw.memory_bytes() +
                   phone_identifier.capacity() * sizeof(int32_t));
    const TextCell &source = row.cell(0), &key = row.cell(1), &type_name = row.cell(2), &value = row.cell(3);
    if (source.is_null() || key.is_null() || type_name.is_null() || value.is_null() || row.is_null(4)) {
      ++skipped.null_field;
      return;
    }
    if (type_name.view() != last_type_name || last_type < 0) {
      last_type_name.assign(type_name.view());
      last_type = staged.type_index(last_type_name);
      if (last_type < 0) {
        unknown_types.insert(last_type_name);
        return;
      }
    }
    const int type = last_type;
    if (source.len == 0 || key.len == 0) {
      ++skipped.empty;
      return;
    }
    if (static_cast<std::size_t>(source.len) > identity::kMaxValueBytes ||
        static_cast<std::size_t>(key.len) > identity::kMaxValueBytes) {
      ++skipped.too_long;
      return;
    }
    const identity::Normaliser kind = staged.types()[type].normaliser;
    int32_t identifier;
    if (kind == identity::Normaliser::kPhone) {
      phone_key.assign(1, static_cast<char>(type));
      phone_key.append(value.view());
      const int32_t entry = phone_raw.intern(phone_key);
      if (entry == static_cast<int32_t>(phone_identifier.size())) {  // first time: normalise
        normaliser.normalise(kind, value.view(), normalised);
        phone_identifier.push_back(
            normalised.outcome == identity::Outcome::kEmpty ? kSkipEmpty
            : normalised.value.size() > identity::kMaxValueBytes
                ? kSkipTooLong
                : staged.add_identifier(type, normalised.value, normalised.outcome == identity::Outcome::kOk));
      }
      identifier = phone_identifier[entry];
    } else {
      normaliser.normalise(kind, value.view(), normalised);
      identifier = normalised.outcome == identity::Outcome::kEmpty ? kSkipEmpty
                   : normalised.value.size() > identity::kMaxValueBytes
                       ? kSkipTooLong
                       : staged.add_identifier(type, normalised.value, normalised.outcome == identity::Outcome::kOk);
    }
    if (identifier == kSkipEmpty) {
      ++skipped.empty;
      return;
    }
    if (identifier == kSkipTooLong) {
      ++skipped.too_long;
      return;
    }
    const int64_t at = static_cast<int64_t>(row.datum(4));
    high_water_mark = has_hwm ? std::max(high_water_mark, at) : at;
    has_hwm = true;
    const int32_t record = staged.add_record(source.view(), key.view());
    links.push_back(IngestLink{record, identifier, at});
  });
  memory.check(staged.memory_bytes() + links.capacity() * sizeof(IngestLink) + phone_raw.memory_bytes() +
               phone_identifier.capacity() * sizeof(int32_t));
  if (!unknown_types.empty()) {
    std::string list;
    for (const std::string& t : unknown_types) list += (list.empty() ? "\"" : ", \"") + t + "\"";
    fail(sqlstate::kInvalidParameterValue, "unknown id_type " + list + " in " + name,
         "cdp.identifier_types lists the identifier types merge_identities accepts.",
         "Add the type to cdp.identifier_types or filter it out of the observations.");
  }

  phases.lap("read");
  notice("merge_identities: read " + std::to_string(read) + " observations (" +
         std::to_string(skipped.null_field + skipped.empty + skipped.too_long) + " skipped) in " +
         std::to_string(phases.ms.back().second) + " ms");

  // Sorted so that a link read twice is adjacent (merged when written, below).
  std::sort(links.begin(), links.end(), [](const IngestLink& a, const IngestLink& b) {
    return a.record != b.record ? a.record < b.record : a.identifier < b.identifier;
  });
  spi_run("SELECT EXISTS (SELECT FROM cdp.identity_tombstones)::int4::int8");
  const bool tombstones = result_int64(0, 1) != 0;
  if (full_rebuild) {
    // TRUNCATE is transactional and far cheaper than DELETE; only this procedure reads identity_links.
    spi_run("SELECT pg_catalog.has_table_privilege('cdp.identity_links', 'TRUNCATE')::int4::int8");
    spi_run(result_int64(0, 1) ? "TRUNCATE cdp.identity_links" : "DELETE FROM cdp.identity_links");
  }
  std::string rows =
      "SELECT u.s, u.k, u.t, u.v, u.ok, u.f, u.l FROM ROWS FROM (pg_catalog.unnest($1::text[]), "
      "pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]), "
      "pg_catalog.unnest($5::bool[]), pg_catalog.unnest($6::timestamptz[]), pg_catalog.unnest($7::timestamptz[])) "
      "AS u(s, k, t, v, ok, f, l)";
  if (tombstones)
    rows +=
        " WHERE NOT EXISTS (SELECT FROM cdp.identity_tombstones x WHERE x.kind = 'identifier' AND x.key_sha256 = "
        "pg_catalog.sha256(pg_catalog.convert_to(u.t, 'UTF8') || '\\x00'::bytea || pg_catalog.convert_to(u.v, 'UTF8'))) "
        "AND NOT EXISTS (SELECT FROM cdp.identity_tombstones x WHERE x.kind = 'record' AND x.key_sha256 = "
        "pg_catalog.sha256(pg_catalog.convert_to(u.s, 'UTF8') || '\\x00'::bytea || pg_catalog.convert_to(u.k, 'UTF8')))";
  const std::string insert =
      "INSERT INTO cdp.identity_links AS l (source, source_key, id_type, id_value, valid, first_seen, last_seen) ";
  // Returns (links that passed the tombstone filter, links stored) when tombstones must be checked.
  std::string store_sql;
  if (!tombstones)
    store_sql = insert + rows;
  else
    store_sql = "WITH u AS (" + rows + "), ins AS (" + insert +
                "SELECT * FROM u RETURNING 1) SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM ins)";
  // Fast path: straight into the table (no indexes there), unless tombstones must be filtered in SQL.
  // Into an empty table (a full rebuild's TRUNCATE, a first run) the index is built once at the end.
  bool links_empty = full_rebuild;
  if (!links_empty) {
    spi_run("SELECT (NOT EXISTS (SELECT FROM cdp.identity_links))::int4::int8");
    links_empty = result_int64(0, 1) != 0;
  }
  RowWriter appender("identity_links", 7, kLinkTypes, links_empty);
  ArrayBatch batch(store_sql, "ttttbTT");
  // One pass over the sorted links: each distinct link (first/last seen merged) is stored, and added to
  // the graph (a full rebuild resolves it without reading the table back) or to the new pairs (an
  // incremental run re-resolves what they touch).
  const bool direct = !tombstones && appender.usable();
  const bool to_graph = full_rebuild && !tombstones;
  if (!full_rebuild) new_pairs.reserve(links.size());
  if (to_graph) staged.reserve_links(links.size());
  int64_t distinct = 0;
  for (std::size_t i = 0; i < links.size();) {
    struct {
      int32_t record, identifier;
      int64_t first_seen, last_seen;
    } link{links[i].record, links[i].identifier, links[i].at, links[i].at};
    for (++i; i < links.size() && links[i].record == link.record && links[i].identifier == link.identifier; ++i) {
      link.first_seen = std::min(link.first_seen, links[i].at);
      link.last_seen = std::max(link.last_seen, links[i].at);
    }
    ++distinct;
    if ((distinct & 4095) == 0) interrupts.tick();
    const int type = staged.identifier_type(link.identifier);
    const bool valid = staged.identifier_reason(link.identifier) != identity::Reason::kInvalid;
    if (direct) {
      appender.text(0, staged.record_source(link.record));
      appender.text(1, staged.record_key(link.record));
      appender.text(2, staged.types()[type].name);
      appender.text(3, staged.identifier_value(link.identifier));
      appender.boolean(4, valid);
      appender.int8(5, link.first_seen);
      appender.int8(6, link.last_seen);
      appender.append();
    } else {
      batch.text(0, staged.record_source(link.record));
      batch.text(1, staged.record_key(link.record));
      batch.text(2, staged.types()[type].name);
      batch.text(3, staged.identifier_value(link.identifier));
      batch.int8(4, valid);
      batch.int8(5, link.first_seen);
      batch.int8(6, link.last_seen);
      batch.row_done();
    }
    if (to_graph)
      staged.add_link(link.record, link.identifier, link.first_seen, link.last_seen);
    else if (!full_rebuild)
      new_pairs.emplace_back(link.record, link.identifier);
  }
  std::vector<IngestLink>().swap(links);
  appender.finish();
  batch.flush();
  new_links = tombstones ? batch.sum(1) : static_cast<int64_t>(batch.total()) + appender.rows();
  if (tombstones) skipped.forgotten = static_cast<int64_t>(batch.total()) - batch.sum(0);
  if (!full_rebuild)
    staged_out = std::move(reuse);  // an incremental run may re-resolve only the part these links touch
  else if (!to_graph)
    reuse.reset();
  phases.lap("store");
  notice("merge_identities: stored " + std::to_string(new_links) + " distinct links in " + std::to_string(phases.ms.back().second) + " ms");
}

struct Removed {
  std::string source, key;
  int64_t person;
};
struct Gone {
  std::string type, value;
};
// The stored state a resolved graph is compared with, so that only changes are written.
struct Previous {
  std::vector<Removed> removed;             // records in identity_map that the graph no longer has
  int64_t map_rows = 0, identifier_rows = 0;  // stored rows read (0: the table is empty)
  std::vector<uint64_t> row;                // per identifier: fingerprint of its stored person_identifiers row
  std::vector<Gone> gone;                   // person_identifiers rows the graph no longer has
  int64_t unknown_links = 0;
  const std::vector<int64_t>* component_persons = nullptr;  // incremental subgraph: the persons it covers
};

void resolve_write(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
                   Phases& phases, identity::ResolveStats& stats, IdentityGraph& graph, Previous& previous);

// Loads every stored link and the previous map, resolves, assigns ids and writes the results.
void resolve_and_write(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
                       Phases& phases, identity::ResolveStats& stats, std::unique_ptr<IdentityGraph> built) {
  std::unique_ptr<IdentityGraph> owned = built ? std::move(built) : std::make_unique<IdentityGraph>(config.types, &interrupts);
  IdentityGraph& graph = *owned;
  identity::ValueNormaliser normaliser(config.phone_region);
  int64_t unknown_links = 0;
  const bool reused = graph.record_count() > 0;
  if (!reused) {
    std::string last_type_name;
    int last_type = -1;
    int64_t rows_seen = 0;
    for_each_row(
        "SELECT source, source_key, id_type, id_value, valid, first_seen, last_seen FROM cdp.identity_links", {},
        {true, true, true, true, false, false, false}, [&](const RowView& row) {
          if ((++rows_seen & 16383) == 0) memory.check(graph.memory_bytes());
          const TextCell& type_name = row.cell(2);
          if (type_name.view() != last_type_name || last_type < 0) {
            last_type_name.assign(type_name.view());
            last_type = graph.type_index(last_type_name);
          }
          if (last_type < 0) {  // its type was removed from cdp.identifier_types since it was stored
            ++unknown_links;
            return;
          }
          const int32_t record = graph.add_record(row.cell(0).view(), row.cell(1).view());
          const int32_t identifier = graph.add_identifier(last_type, row.cell(3).view(), DatumGetBool(row.datum(4)));
          graph.add_link(record, identifier, static_cast<int64_t>(row.datum(5)), static_cast<int64_t>(row.datum(6)));
        });
    memory.check(graph.memory_bytes());
  }
  // The previous map: ids to keep, and records that no longer exist.
  Previous previous;
  int64_t& previous_map_rows = previous.map_rows;  // empty tables take plain INSERTs
  int64_t& previous_identifier_rows = previous.identifier_rows;
  std::vector<Removed>& removed = previous.removed;
  for_each_row("SELECT source, source_key, person_id FROM cdp.identity_map", {}, {true, true, false},
               [&](const RowView& row) {
                 const int64_t person = DatumGetInt64(row.datum(2));
                 ++previous_map_rows;
                 const int32_t record = graph.find_record(row.cell(0).view(), row.cell(1).view());
                 if (record >= 0)
                   graph.set_previous_person(record, person);
                 else
                   removed.push_back(Removed{std::string(row.cell(0).view()), std::string(row.cell(1).view()), person});
               });
  memory.check(graph.memory_bytes() + removed.capacity() * sizeof(Removed));
  // The previous person_identifiers rows, as a fingerprint per identifier, so only changed rows are written.
  std::vector<uint64_t>& previous_row = previous.row;
  previous_row.assign(graph.identifier_count(), 0);
  std::vector<Gone>& gone_identifiers = previous.gone;
  for_each_row(
      "SELECT id_type, id_value, coalesce(person_id, 0), coalesce(reason, ''), records, first_seen, last_seen "
      "FROM cdp.person_identifiers",
      {}, {true, true, false, true, false, false, false}, [&](const RowView& row) {
        ++previous_identifier_rows;
        const int type = graph.type_index(row.cell(0).view());
        const int32_t identifier = type < 0 ? -1 : graph.find_identifier(type, row.cell(1).view());
        if (identifier < 0) {
          gone_identifiers.push_back(Gone{std::string(row.cell(0).view()), std::string(row.cell(1).view())});
          return;
        }
        std::string fingerprint = std::to_string(DatumGetInt64(row.datum(2))) + '/' + std::string(row.cell(3).view()) +
                                  '/' + std::to_string(DatumGetInt64(row.datum(4))) + '/' +
                                  std::to_string(static_cast<int64_t>(row.datum(5))) + '/' +
                                  std::to_string(static_cast<int64_t>(row.datum(6)));
        previous_row[identifier] = identity::hash_bytes(fingerprint) | 1;
      });
  memory.check(graph.memory_bytes() + previous_row.capacity() * 8);
  phases.lap("load");

  previous.unknown_links = unknown_links;
  resolve_write(run_id, config, interrupts, memory, phases, stats, graph, previous);
}

// Resolves a loaded graph, assigns ids and writes what changed against `previous` (the stored rows of the
// graph's records and identifiers). With previous.component_persons set the graph is a closed part of the
// whole (an incremental run's subgraph) and only its cuts are replaced.
void resolve_write(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
                   Phases& phases, identity::ResolveStats& stats, IdentityGraph& graph, Previous& previous) {
  identity::ValueNormaliser normaliser(config.phone_region);
  int64_t& previous_map_rows = previous.map_rows;
  int64_t& previous_identifier_rows = previous.identifier_rows;
  std::vector<Removed>& removed = previous.removed;
  std::vector<uint64_t>& previous_row = previous.row;
  std::vector<Gone>& gone_identifiers = previous.gone;
  const int64_t unknown_links = previous.unknown_links;
  const identity::Blocklist blocklist = load_blocklist(graph, normaliser);
  graph.resolve(blocklist);
  memory.check(graph.memory_bytes() + previous_row.capacity() * 8);
  int64_t first_new_id = 0;
  if (graph.new_ids_needed() > 0) {
    // Only merge runs draw person ids, under the advisory lock, so a block can be reserved at once.
    spi_run("SELECT pg_catalog.nextval('cdp.person_id_seq')");
    first_new_id = result_int64(0, 1);
    if (graph.new_ids_needed() > 1)
      spi_run("SELECT pg_catalog.setval('cdp.person_id_seq', $1)",
              {int8_param(first_new_id + graph.new_ids_needed() - 1)});
  }
  graph.assign_ids(first_new_id);
  stats = graph.stats();
  phases.lap("resolve");
  notice("merge_identities: resolved " + std::to_string(stats.links) + " links between " +
         std::to_string(stats.records) + " records and " + std::to_string(stats.identifiers) + " identifiers into " +
         std::to_string(stats.persons) + " persons (" + std::to_string(stats.merges) + " merges, " +
         std::to_string(stats.splits) + " splits, " + std::to_string(stats.cut_links) + " cut links) in " +
         std::to_string(phases.ms.back().second) + " ms");

  // identity_map: delete records that are gone, upsert records whose person changed or that are new.
  // When many records are gone (a full rebuild over another relation), empty the table and write it
  // whole instead: keyed deletes in batches would each rescan it.
  const bool rewrite_map = removed.size() > 10000 && removed.size() * 10 > static_cast<std::size_t>(previous_map_rows);
  if (rewrite_map) {
    spi_run("DELETE FROM cdp.identity_map");
    previous_map_rows = 0;
  }
  {
    ArrayBatch erase(
        "DELETE FROM cdp.identity_map m USING ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS u(s, k) "
        "WHERE m.source = u.s AND m.source_key = u.k",
        "tt");
    for (const Removed& r : removed) {
      if (rewrite_map) break;  // already gone
      erase.text(0, r.source);
      erase.text(1, r.key);
      erase.row_done();
    }
    erase.flush();
    ArrayBatch upsert(
        "INSERT INTO cdp.identity_map AS m (source, source_key, person_id) "
        "SELECT * FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::int8[])) " +
            std::string(previous_map_rows ? "ON CONFLICT (source, source_key) DO UPDATE SET person_id = EXCLUDED.person_id" : ""),
        "tti");
    // Rows go out in key order: b-tree inserts then mostly hit the rightmost leaf, which is several
    // times faster than random order for the primary key (bytewise order = the C collation's).
    std::vector<int32_t> changed;
    for (int32_t record = 0; record < graph.record_count(); ++record)
      if (rewrite_map || graph.record_person(record) != graph.previous_person(record)) changed.push_back(record);
    // Into an empty table nothing can conflict: append directly instead of INSERT ... ON CONFLICT.
    RowWriter appender("identity_map", 3, kMapTypes, previous_map_rows == 0 && config.bulk_index_first_load);
    const bool bulk = previous_map_rows == 0 && appender.usable();
    // Key order also makes the primary key's build after a first load a single pass (presorted input).
    std::sort(changed.begin(), changed.end(),
              [&](int32_t a, int32_t b) { return graph.record_bytes(a) < graph.record_bytes(b); });
    for (int32_t record : changed) {
      const int64_t person = graph.record_person(record);
      if (bulk) {
        appender.text(0, graph.record_source(record));
        appender.text(1, graph.record_key(record));
        appender.int8(2, person);
        appender.append();
        continue;
      }
      upsert.text(0, graph.record_source(record));
      upsert.text(1, graph.record_key(record));
      upsert.int8(2, person);
      upsert.row_done();
    }
    upsert.flush();
    appender.finish();
  }
  phases.lap("write_map");
  // persons: ids that vanished are deleted; persons whose records changed are upserted.
  {
    std::vector<int64_t> touched, previous_ids;
    for (int32_t record = 0; record < graph.record_count(); ++record) {
      const int64_t before = graph.previous_person(record), after = graph.record_person(record);
      if (before != 0) previous_ids.push_back(before);
      if (before != after) {
        touched.push_back(after);
        if (before != 0) touched.push_back(before);
      }
    }
    for (const Removed& r : removed) {
      touched.push_back(r.person);
      previous_ids.push_back(r.person);
    }
    auto unique_sorted = [](std::vector<int64_t>& v) {
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
    };
    unique_sorted(touched);
    unique_sorted(previous_ids);
    const auto& persons = graph.persons();
    auto records_of = [&](int64_t id) -> int64_t {
      auto it = std::lower_bound(persons.begin(), persons.end(), std::make_pair(id, int64_t(0)));
      return it != persons.end() && it->first == id ? it->second : -1;
    };
    ArrayBatch erase("DELETE FROM cdp.persons WHERE person_id = ANY ($1::int8[])", "i");
    ArrayBatch upsert(
        "INSERT INTO cdp.persons AS p (person_id, first_run, last_changed_run, records) "
        "SELECT u.id, u.run, u.run, u.n FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::int8[]), pg_catalog.unnest($3::int8[])) AS u(id, n, run) "
        "ON CONFLICT (person_id) DO UPDATE SET records = EXCLUDED.records, last_changed_run = EXCLUDED.last_changed_run",
        "iii");
    // Into an empty table (a first load) nothing can conflict and nothing is deleted: append directly.
    bool persons_empty = false;
    if (previous_map_rows == 0 && !previous.component_persons) {
      spi_run("SELECT (NOT EXISTS (SELECT FROM cdp.persons))::int4::int8");
      persons_empty = result_int64(0, 1) != 0;
    }
    RowWriter appender("persons", 5, kPersonTypes, persons_empty && config.bulk_index_first_load);
    const bool bulk = persons_empty && appender.usable();
    const int64_t created_at = bulk ? pg_call([]() -> int64_t { return GetCurrentTransactionStartTimestamp(); }) : 0;
    for (int64_t id : touched) {
      const int64_t n = records_of(id);
      if (bulk) {
        if (n < 0) continue;
        appender.int8(0, id);
        appender.int8(1, created_at);  // the column default, now()
        appender.int8(2, run_id);
        appender.int8(3, run_id);
        appender.int8(4, n);
        appender.append();
        continue;
      }
      if (n < 0) {
        erase.int8(0, id);
        erase.row_done();
      } else {
        upsert.int8(0, id);
        upsert.int8(1, n);
        upsert.int8(2, run_id);
        upsert.row_done();
      }
    }
    erase.flush();
    upsert.flush();
    appender.finish();
  }
  phases.lap("write_persons");
  // person_identifiers: rows that changed, rows that are gone (many gone: rewrite the table).
  const bool rewrite_identifiers =
      gone_identifiers.size() > 10000 && gone_identifiers.size() * 10 > static_cast<std::size_t>(previous_identifier_rows);
  if (rewrite_identifiers) {
    spi_run("DELETE FROM cdp.person_identifiers");
    gone_identifiers.clear();
    previous_identifier_rows = 0;
    std::fill(previous_row.begin(), previous_row.end(), 0);
  }
  {
    ArrayBatch erase(
        "DELETE FROM cdp.person_identifiers p USING ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS u(t, v) "
        "WHERE p.id_type = u.t AND p.id_value = u.v",
        "tt");
    for (const Gone& g : gone_identifiers) {
      erase.text(0, g.type);
      erase.text(1, g.value);
      erase.row_done();
    }
    erase.flush();
    ArrayBatch upsert(
        "INSERT INTO cdp.person_identifiers AS p (id_type, id_value, person_id, status, reason, records, "
        "first_seen, last_seen) "
        "SELECT u.t, u.v, NULLIF(u.p, 0), CASE WHEN u.r = '' THEN 'linked' ELSE 'excluded' END, NULLIF(u.r, ''), "
        "u.n, u.f, u.l FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::int8[]), pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::int8[]), "
        "pg_catalog.unnest($6::timestamptz[]), pg_catalog.unnest($7::timestamptz[])) AS u(t, v, p, r, n, f, l) " +
            std::string(previous_identifier_rows
                            ? "ON CONFLICT (id_type, id_value) DO UPDATE SET person_id = EXCLUDED.person_id, "
                              "status = EXCLUDED.status, reason = EXCLUDED.reason, records = EXCLUDED.records, "
                              "first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen"
                            : ""),
        "ttitiTT");
    RowWriter appender("person_identifiers", 8, kIdentifierTypes,
                       previous_identifier_rows == 0 && config.bulk_index_first_load);
    const bool bulk = previous_identifier_rows == 0 && appender.usable();
    // The fingerprint of each row as it would be written; only rows that differ from the stored one go out.
    auto fingerprint_of = [&](int32_t identifier) {
      std::string fingerprint = std::to_string(graph.identifier_person(identifier)) + '/' +
                                identity::reason_name(graph.identifier_reason(identifier)) + '/' +
                                std::to_string(graph.identifier_records(identifier)) + '/' +
                                std::to_string(graph.identifier_first_seen(identifier)) + '/' +
                                std::to_string(graph.identifier_last_seen(identifier));
      return identity::hash_bytes(fingerprint) | 1;
    };
    std::vector<int32_t> order;
    for (int32_t i = 0; i < graph.identifier_count(); ++i) {
      interrupts.tick();
      if (previous_row[i] != fingerprint_of(i)) order.push_back(i);
    }
    std::sort(order.begin(), order.end(),
              [&](int32_t a, int32_t b) { return graph.identifier_bytes(a) < graph.identifier_bytes(b); });
    for (int32_t identifier : order) {
      interrupts.tick();
      const int64_t person = graph.identifier_person(identifier);
      const char* reason = identity::reason_name(graph.identifier_reason(identifier));
      const int64_t records = graph.identifier_records(identifier);
      const int64_t first = graph.identifier_first_seen(identifier), last = graph.identifier_last_seen(identifier);
      if (bulk) {
        appender.text(0, graph.types()[graph.identifier_type(identifier)].name);
        appender.text(1, graph.identifier_value(identifier));
        if (person) appender.int8(2, person); else appender.null(2);
        appender.text(3, *reason ? "excluded" : "linked");
        if (*reason) appender.text(4, reason); else appender.null(4);
        appender.int8(5, records);
        appender.int8(6, first);
        appender.int8(7, last);
        appender.append();
        continue;
      }
      upsert.text(0, graph.types()[graph.identifier_type(identifier)].name);
      upsert.text(1, graph.identifier_value(identifier));
      upsert.int8(2, person);
      upsert.text(3, reason);
      upsert.int8(4, records);
      upsert.int8(5, first);
      upsert.int8(6, last);
      upsert.row_done();
    }
    upsert.flush();
    appender.finish();
  }
  phases.lap("write_identifiers");
  // identity_cuts: current state, small.
  {
    if (previous.component_persons)
      spi_run("DELETE FROM cdp.identity_cuts WHERE record_person = ANY ($1)", {int8_array_param(*previous.component_persons)});
    else
      spi_run("DELETE FROM cdp.identity_cuts");
    ArrayBatch insert(
        "INSERT INTO cdp.identity_cuts (id_type, id_value, source, source_key, conflict_type, identifier_person, "
        "record_person, run_id) SELECT u.t, u.v, u.s, u.k, u.c, NULLIF(u.ip, 0), u.rp, u.run "
        "FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::int8[]), pg_catalog.unnest($7::int8[]), "
        "pg_catalog.unnest($8::int8[])) AS u(t, v, s, k, c, ip, run, rp)",
        "tttttiii");
    for (const identity::Cut& cut : graph.cuts()) {
      insert.text(0, graph.types()[graph.identifier_type(cut.identifier)].name);
      insert.text(1, graph.identifier_value(cut.identifier));
      insert.text(2, graph.record_source(cut.record));
      insert.text(3, graph.record_key(cut.record));
      insert.text(4, graph.types()[cut.conflict_type].name);
      insert.int8(5, graph.identifier_person(cut.identifier));
      insert.int8(6, run_id);
      insert.int8(7, graph.record_person(cut.record));
      insert.row_done();
    }
    insert.flush();
  }
  // merge_history.
  {
    ArrayBatch insert(
        "INSERT INTO cdp.merge_history (run_id, kind, from_person, to_person, id_type, id_value) "
        "SELECT u.run, u.k, u.f, u.t, NULLIF(u.it, ''), NULLIF(u.iv, '') FROM ROWS FROM (pg_catalog.unnest($1::int8[]), "
        "pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::int8[]), pg_catalog.unnest($4::int8[]), pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::text[])) AS u(run, k, f, t, it, iv)",
        "itiitt");
    for (const identity::Event& e : graph.events()) {
      insert.int8(0, run_id);
      insert.text(1, e.kind == identity::EventKind::kMerge ? "merge" : "split");
      insert.int8(2, e.from_person);
      insert.int8(3, e.to_person);
      if (e.identifier >= 0) {
        insert.text(4, graph.types()[graph.identifier_type(e.identifier)].name);
        insert.text(5, graph.identifier_value(e.identifier));
      } else {
        insert.text(4, "");
        insert.text(5, "");
      }
      insert.row_done();
    }
    insert.flush();
  }
  phases.lap("write_history");
  if (unknown_links > 0)
    notice("merge_identities: ignored " + std::to_string(unknown_links) +
           " stored links whose id_type is no longer in cdp.identifier_types");
}

// ---------------------------------------------------------------------------------------------
// Incremental runs over a subgraph.

// The rules a result depends on: enabled types and blocklist entries, the phone region and the tombstones.
// Equal fingerprints of two runs mean the stored result of the first is still the result of its links.
std::string rules_fingerprint() {
  spi_run(
      "SELECT pg_catalog.md5(pg_catalog.concat_ws('#', "
      "(SELECT pg_catalog.string_agg(pg_catalog.concat_ws('|', id_type, normaliser, max_per_person, priority, "
      "hub_threshold), ',' ORDER BY id_type) FROM cdp.identifier_types WHERE enabled), "
      "(SELECT pg_catalog.string_agg(pg_catalog.concat_ws('|', coalesce(id_type, '*'), value, match), ',' "
      "ORDER BY id_type, value, match) FROM cdp.identifier_blocklist WHERE enabled), "
      "(SELECT pg_catalog.string_agg(default_phone_region, ',') FROM cdp.identity_settings), "
      "(SELECT pg_catalog.count(*)::text || '|' || coalesce(pg_catalog.md5(pg_catalog.string_agg("
      "kind || pg_catalog.encode(key_sha256, 'hex'), ',' ORDER BY kind, key_sha256)), '') "
      "FROM cdp.identity_tombstones)))");
  return result_text(0, 1);
}

// Totals of the latest successful run (merge or erasure), which an incremental run adjusts.
struct PreviousRun {
  bool found = false;
  std::string fingerprint;
  int64_t links = 0, records = 0, identifiers = 0, persons = 0, cut_links = 0;
  int64_t invalid = 0, blocklisted = 0, hubs = 0, conflict_cut = 0;
};

PreviousRun previous_run(int64_t run_id) {
  PreviousRun prev;
  uint64 n = spi_run(
      "SELECT rules_fingerprint, links, records, identifiers, persons, cut_links, "
      "(excluded->>'invalid')::int8, (excluded->>'blocklist')::int8, (excluded->>'hub')::int8, "
      "(excluded->>'conflict_cut')::int8 FROM cdp.merge_runs WHERE status = 'ok' AND run_id <> $1 "
      "ORDER BY run_id DESC LIMIT 1",
      {int8_param(run_id)});
  if (n == 0 || result_is_null(0, 1) || result_is_null(0, 2) || result_is_null(0, 7)) return prev;
  prev.found = true;
  prev.fingerprint = result_text(0, 1);
  prev.links = result_int64(0, 2);
  prev.records = result_int64(0, 3);
  prev.identifiers = result_int64(0, 4);
  prev.persons = result_int64(0, 5);
  prev.cut_links = result_int64(0, 6);
  prev.invalid = result_int64(0, 7);
  prev.blocklisted = result_int64(0, 8);
  prev.hubs = result_int64(0, 9);
  prev.conflict_cut = result_int64(0, 10);
  return prev;
}

// Collects column 1 (int8, NULLs skipped) of a query's result into `out`.
void collect_ids(const char* sql, const std::vector<SpiArg>& params, std::set<int64_t>& out) {
  const uint64 n = spi_run(sql, params);
  for (uint64 r = 0; r < n; ++r)
    if (!result_is_null(r, 1)) out.insert(result_int64(r, 1));
}

// Re-resolves only what the new links touch. With the rules unchanged since the previous run, persons
// form independently inside the connected parts of the record-identifier graph (over identifiers that may
// link), and such a part is the set of persons joined through cut links. So the subgraph is: the persons of
// the new links' records and values, closed over identity_cuts, with all their records and all links of
// those records. Values that link nobody (invalid, blocklisted, hubs) keep their other records outside; their
// true record counts come from the stored rows plus the new links. A value whose count crosses its hub
// threshold belongs to a person of the subgraph already (it carries a new link). Every value that may link is
// checked to have all its records loaded; if not (or the subgraph is large) the caller falls back to the full
// recompute. Returns false before writing anything in that case.
bool resolve_subgraph(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
                      Phases& phases, const IdentityGraph& staged,
                      const std::vector<std::pair<int32_t, int32_t>>& new_pairs, const PreviousRun& prev,
                      identity::ResolveStats& totals, int64_t& resolved_links) {
  // 1. Seed persons: of the new links' records and values.
  std::vector<std::string_view> sources, keys, type_names, values;
  {
    std::vector<std::pair<std::string_view, std::string_view>> sorted;
    for (int32_t r = 0; r < staged.record_count(); ++r) sorted.emplace_back(staged.record_source(r), staged.record_key(r));
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [source, key] : sorted) {
      sources.push_back(source);
      keys.push_back(key);
    }
  }
  {
    std::vector<std::pair<std::string_view, std::string_view>> sorted;
    for (int32_t i = 0; i < staged.identifier_count(); ++i)
      sorted.emplace_back(staged.types()[staged.identifier_type(i)].name, staged.identifier_value(i));
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [type, value] : sorted) {
      type_names.push_back(type);
      values.push_back(value);
    }
  }
  std::set<int64_t> persons;
  collect_ids(
      "SELECT m.person_id FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS u(s, k) "
      "CROSS JOIN LATERAL (SELECT x.person_id FROM cdp.identity_map x WHERE x.source = u.s AND x.source_key = u.k "
      "OFFSET 0) m",
      {text_array_param(sources), text_array_param(keys)}, persons);
  const std::vector<SpiArg> value_args{text_array_param(type_names), text_array_param(values)};
  collect_ids(
      "SELECT p.person_id FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS u(t, v) "
      "CROSS JOIN LATERAL (SELECT x.person_id FROM cdp.person_identifiers x WHERE x.id_type = u.t AND x.id_value = u.v "
      "OFFSET 0) p",
      value_args, persons);
  if (prev.cut_links > 0) {
    collect_ids(
        "SELECT x.p FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS u(t, v) "
        "JOIN cdp.identity_cuts c ON c.id_type = u.t AND c.id_value = u.v, "
        "LATERAL (VALUES (c.identifier_person), (c.record_person)) AS x(p)",
        value_args, persons);
    // Closed over cut links: persons that one identifier would have joined belong together.
    for (std::size_t before = 0; before != persons.size();) {
      before = persons.size();
      collect_ids(
          "SELECT x.p FROM cdp.identity_cuts c JOIN cdp.identity_cuts c2 "
          "ON c2.id_type = c.id_type AND c2.id_value = c.id_value, "
          "LATERAL (VALUES (c2.identifier_person), (c2.record_person)) AS x(p) "
          "WHERE c.identifier_person = ANY ($1) OR c.record_person = ANY ($1)",
          {int8_array_param(std::vector<int64_t>(persons.begin(), persons.end()))}, persons);
    }
  }
  const std::vector<int64_t> component_persons(persons.begin(), persons.end());
  const SpiArg persons_arg = int8_array_param(component_persons);
  spi_run("SELECT coalesce(pg_catalog.sum(records), 0)::int8, pg_catalog.count(*)::int8 FROM cdp.persons "
          "WHERE person_id = ANY ($1)", {persons_arg});
  const int64_t person_records = result_int64(0, 1), previous_persons = result_int64(0, 2);
  if (person_records + staged.record_count() > prev.records / 4 + 1000) return false;  // a full run is cheaper

  // 2. The records: of those persons (with their previous person) and the new ones.
  IdentityGraph graph(config.types, &interrupts);
  std::map<std::pair<std::string, std::string>, int64_t> previous_of;
  {
    Cursor cursor("SELECT source, source_key, person_id FROM cdp.identity_map WHERE person_id = ANY ($1)", {persons_arg});
    const std::vector<bool> is_text{true, true, false};
    for (;;) {
      const std::size_t rows = cursor.fetch(3, is_text);
      if (rows == 0) break;
      for (std::size_t r = 0; r < rows; ++r)
        previous_of.emplace(std::make_pair(std::string(cursor.cell(r, 0).view()), std::string(cursor.cell(r, 1).view())),
                            DatumGetInt64(cursor.datum(r, 2)));
      check_for_interrupts();
    }
  }
  std::set<std::pair<std::string_view, std::string_view>> record_keys;
  for (const auto& [key, person] : previous_of) record_keys.emplace(key.first, key.second);
  for (int32_t r = 0; r < staged.record_count(); ++r) record_keys.emplace(staged.record_source(r), staged.record_key(r));
  sources.clear();
  keys.clear();
  for (const auto& [source, key] : record_keys) {
    sources.push_back(source);
    keys.push_back(key);
  }

  // 3. All stored links of those records (a record without stored links, e.g. a tombstoned one, is no record).
  std::vector<uint64_t> loaded_pairs;  // record << 32 | identifier, one per stored row
  int64_t unknown_links = 0;
  {
    Cursor cursor(
        "SELECT l.source, l.source_key, l.id_type, l.id_value, l.valid, l.first_seen, l.last_seen "
        "FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS u(s, k) "
        // One index probe per record (OFFSET 0 keeps the planner from sorting the whole table for a merge join).
        "CROSS JOIN LATERAL (SELECT * FROM cdp.identity_links x WHERE pg_catalog.hashtext(x.source_key) = "
        "pg_catalog.hashtext(u.k) AND x.source_key = u.k AND x.source = u.s OFFSET 0) l",
        {text_array_param(sources), text_array_param(keys)});
    const std::vector<bool> is_text{true, true, true, true, false, false, false};
    for (;;) {
      const std::size_t rows = cursor.fetch(7, is_text);
      if (rows == 0) break;
      for (std::size_t r = 0; r < rows; ++r) {
        interrupts.tick();
        const int type = graph.type_index(cursor.cell(r, 2).view());
        if (type < 0) {
          ++unknown_links;
          continue;
        }
        const int32_t record = graph.add_record(cursor.cell(r, 0).view(), cursor.cell(r, 1).view());
        const int32_t identifier =
            graph.add_identifier(type, cursor.cell(r, 3).view(), DatumGetBool(cursor.datum(r, 4)));
        graph.add_link(record, identifier, static_cast<int64_t>(cursor.datum(r, 5)), static_cast<int64_t>(cursor.datum(r, 6)));
        loaded_pairs.push_back(static_cast<uint64_t>(record) << 32 | static_cast<uint32_t>(identifier));
      }
      check_for_interrupts();
      memory.check(graph.memory_bytes() + loaded_pairs.capacity() * 8);
    }
  }
  Previous previous;
  previous.component_persons = &component_persons;
  previous.unknown_links = unknown_links;
  previous.map_rows = std::max<int64_t>(1, static_cast<int64_t>(previous_of.size()));  // never the bulk path
  previous.identifier_rows = 1;
  for (const auto& [key, person] : previous_of) {
    const int32_t record = graph.find_record(key.first, key.second);
    if (record < 0) return false;  // a stored record without stored links: not the state we expect
    graph.set_previous_person(record, person);
  }

  // 4. Per value: distinct records loaded, and new links (a pair of this run stored exactly once).
  std::sort(loaded_pairs.begin(), loaded_pairs.end());
  std::vector<int64_t> new_links_of(graph.identifier_count(), 0), loaded_records_of(graph.identifier_count(), 0);
  for (std::size_t i = 0; i < loaded_pairs.size(); ++i)
    if (i == 0 || loaded_pairs[i] != loaded_pairs[i - 1]) ++loaded_records_of[static_cast<uint32_t>(loaded_pairs[i])];
  for (const auto& [staged_record, staged_identifier] : new_pairs) {
    const int32_t record = graph.find_record(staged.record_source(staged_record), staged.record_key(staged_record));
    const int32_t identifier =
        graph.find_identifier(staged.identifier_type(staged_identifier), staged.identifier_value(staged_identifier));
    if (record < 0 || identifier < 0) continue;  // tombstoned, not stored
    const uint64_t key = static_cast<uint64_t>(record) << 32 | static_cast<uint32_t>(identifier);
    const auto range = std::equal_range(loaded_pairs.begin(), loaded_pairs.end(), key);
    if (range.second - range.first == 1) ++new_links_of[identifier];
  }

  // 5. The stored rows of those values: what changes, and the totals of values only partly loaded.
  previous.row.assign(graph.identifier_count(), 0);
  std::vector<int64_t> stored_records(graph.identifier_count(), 0);
  int64_t stored_rows = 0, before_invalid = 0, before_blocklisted = 0, before_hubs = 0, before_cut = 0;
  {
    std::vector<std::string_view> t, v;
    std::vector<int64_t> index;
    for (int32_t i = 0; i < graph.identifier_count(); ++i) index.push_back(i);
    // Probes in key order touch the primary key's leaves in order.
    std::sort(index.begin(), index.end(), [&](int64_t a, int64_t b) {
      const std::string& ta = graph.types()[graph.identifier_type(a)].name;
      const std::string& tb = graph.types()[graph.identifier_type(b)].name;
      return ta != tb ? ta < tb : graph.identifier_value(a) < graph.identifier_value(b);
    });
    for (int64_t i : index) {
      t.push_back(graph.types()[graph.identifier_type(i)].name);
      v.push_back(graph.identifier_value(i));
    }
    Cursor cursor(
        "SELECT u.i, coalesce(p.person_id, 0), coalesce(p.reason, ''), p.records, p.first_seen, p.last_seen "
        "FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::int8[])) "
        "AS u(t, v, i) CROSS JOIN LATERAL (SELECT * FROM cdp.person_identifiers x WHERE x.id_type = u.t "
        "AND x.id_value = u.v OFFSET 0) p",
        {text_array_param(t), text_array_param(v), int8_array_param(index)});
    const std::vector<bool> is_text{false, false, true, false, false, false};
    for (;;) {
      const std::size_t rows = cursor.fetch(6, is_text);
      if (rows == 0) break;
      for (std::size_t r = 0; r < rows; ++r) {
        ++stored_rows;
        const int32_t identifier = static_cast<int32_t>(DatumGetInt64(cursor.datum(r, 0)));
        const std::string_view reason = cursor.cell(r, 2).view();
        const int64_t records = DatumGetInt64(cursor.datum(r, 3));
        const int64_t first = static_cast<int64_t>(cursor.datum(r, 4)), last = static_cast<int64_t>(cursor.datum(r, 5));
        stored_records[identifier] = records;
        std::string fingerprint = std::to_string(DatumGetInt64(cursor.datum(r, 1))) + '/' + std::string(reason) + '/' +
                                  std::to_string(records) + '/' + std::to_string(first) + '/' + std::to_string(last);
        previous.row[identifier] = identity::hash_bytes(fingerprint) | 1;
        if (reason == "invalid") ++before_invalid;
        if (reason == "blocklist") ++before_blocklisted;
        if (reason == "hub") ++before_hubs;
        if (reason == "conflict_cut") ++before_cut;
        const bool partial = reason == "invalid" || reason == "blocklist" || reason == "hub";
        if (partial) {
          graph.set_identifier_totals(identifier, records + new_links_of[identifier],
                                      cursor.cell(r, 4).is_null() ? INT64_MAX : first,
                                      cursor.cell(r, 5).is_null() ? INT64_MIN : last);
        } else if (loaded_records_of[identifier] != records + new_links_of[identifier]) {
          return false;  // a value that may link has records outside the subgraph
        }
      }
      check_for_interrupts();
    }
  }
  for (int32_t i = 0; i < graph.identifier_count(); ++i)
    if (previous.row[i] == 0 && loaded_records_of[i] != new_links_of[i]) return false;  // new value, old links?
  memory.check(graph.memory_bytes() + loaded_pairs.capacity() * 8);
  spi_run("SELECT pg_catalog.count(*)::int8 FROM cdp.identity_cuts WHERE record_person = ANY ($1)", {persons_arg});
  const int64_t previous_cuts = result_int64(0, 1);
  phases.lap("load");
  notice("merge_identities: incremental run re-resolves " + std::to_string(graph.record_count()) + " records of " +
         std::to_string(component_persons.size()) + " persons touched by new links");

  identity::ResolveStats sub;
  resolve_write(run_id, config, interrupts, memory, phases, sub, graph, previous);

  // Totals: the previous run's, with the subgraph's part replaced.
  int64_t link_delta = 0;
  for (int32_t i = 0; i < graph.identifier_count(); ++i) link_delta += graph.identifier_records(i) - stored_records[i];
  totals = sub;
  totals.links = prev.links + link_delta;
  totals.records = prev.records - static_cast<int64_t>(previous_of.size()) + sub.records;
  totals.identifiers = prev.identifiers - stored_rows + sub.identifiers;
  totals.persons = prev.persons - previous_persons + sub.persons;
  totals.invalid = prev.invalid - before_invalid + sub.invalid;
  totals.blocklisted = prev.blocklisted - before_blocklisted + sub.blocklisted;
  totals.hubs = prev.hubs - before_hubs + sub.hubs;
  totals.conflict_cut_identifiers = prev.conflict_cut - before_cut + sub.conflict_cut_identifiers;
  totals.cut_links = prev.cut_links - previous_cuts + sub.cut_links;
  totals.previous_records = prev.records;
  resolved_links = sub.links;
  return true;
}

int64_t start_run(const char* kind, Oid relation, bool full_rebuild) {
  spi_run("SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
          {SpiArg{INT4OID, Int32GetDatum(kLockClass), false}, SpiArg{INT4OID, Int32GetDatum(kLockObject), false}});
  std::vector<SpiArg> params{text_param(kind), oid_param(relation), bool_param(full_rebuild)};
  if (relation == InvalidOid) params[1].is_null = true;
  spi_run(
      "INSERT INTO cdp.merge_runs (kind, observations, full_rebuild) VALUES ($1, $2::pg_catalog.regclass, $3) "
      "RETURNING run_id",
      params);
  return result_int64(0, 1);
}

void finish_run(int64_t run_id, const identity::ResolveStats& s, const Skipped& skipped, int64_t read,
                int64_t new_links, bool has_hwm, int64_t hwm, const MemoryGuard& memory, const Phases& phases,
                const std::string& fingerprint, int64_t resolved_links) {
  const std::string excluded = "{\"invalid\": " + std::to_string(s.invalid) + ", \"blocklist\": " +
                               std::to_string(s.blocklisted) + ", \"hub\": " + std::to_string(s.hubs) +
                               ", \"conflict_cut\": " + std::to_string(s.conflict_cut_identifiers) + "}";
  std::vector<SpiArg> p{int8_param(run_id),      int8_param(read),       int8_param(new_links),
                       SpiArg{TIMESTAMPTZOID, Int64GetDatum(hwm), !has_hwm},
                       text_param(skipped.json()), int8_param(s.links),   int8_param(s.records),
                       int8_param(s.identifiers), int8_param(s.persons), int8_param(s.new_persons),
                       int8_param(s.merges),      int8_param(s.splits),   int8_param(s.cut_links),
                       text_param(excluded),      SpiArg{FLOAT8OID, Float8GetDatum(s.jitter()), false},
                       int8_param(static_cast<int64_t>(memory.peak()))};
  p.push_back(text_param(phases.json()));
  p.push_back(text_param(fingerprint));
  p.push_back(int8_param(resolved_links));
  spi_run(
      "UPDATE cdp.merge_runs SET finished_at = pg_catalog.clock_timestamp(), status = 'ok', observations_read = $2, "
      "new_observations = $3, high_water_mark = $4, skipped = $5::jsonb, links = $6, records = $7, "
      "identifiers = $8, persons = $9, new_persons = $10, merges = $11, splits = $12, cut_links = $13, "
      "excluded = $14::jsonb, jitter = $15, memory_bytes = $16, phase_ms = $17::jsonb, rules_fingerprint = $18, "
      "resolved_links = $19 WHERE run_id = $1",
      p);
}

void connect() {
  pg_call([] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  });
}
void disconnect() {
  pg_call([] { SPI_finish(); });
}

Interrupts pg_interrupts() {
  return Interrupts([] { check_for_interrupts(); });
}

// The person-forming part shared by merge and erasure runs.
void report_written(const Phases& phases, const MemoryGuard& memory) {
  int64_t write_ms = 0;
  for (const auto& [name, ms] : phases.ms)
    if (name.rfind("write", 0) == 0) write_ms += ms;
  notice("merge_identities: wrote results in " + std::to_string(write_ms) + " ms (total " +
         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - phases.start).count()) +
         " ms, peak memory " + std::to_string(memory.peak() / 1024) + " kB)");
}

// The person-forming part shared by merge and erasure runs: every stored link re-resolved.
// fingerprint: the rules the run used (empty: read them now, after an erasure stored its tombstone).
void recompute(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory, Phases& phases,
               const Skipped& skipped, int64_t read, int64_t new_links, bool has_hwm, int64_t hwm,
               std::unique_ptr<IdentityGraph> built = nullptr, std::string fingerprint = {}) {
  identity::ResolveStats stats;
  resolve_and_write(run_id, config, interrupts, memory, phases, stats, std::move(built));
  if (fingerprint.empty()) fingerprint = rules_fingerprint();
  finish_run(run_id, stats, skipped, read, new_links, has_hwm, hwm, memory, phases, fingerprint, stats.links);
  report_written(phases, memory);
}

// Normalises (type, raw value) with the stored rules; throws 22023 for an unknown type.
identity::Normalised normalise_one(const Config& config, std::string_view type_name, std::string_view raw,
                                   int* type_out = nullptr) {
  IdentityGraph probe(config.types);
  const int type = probe.type_index(type_name);
  if (type < 0)
    fail(sqlstate::kInvalidParameterValue, "unknown id_type \"" + std::string(type_name) + "\"", {},
         "cdp.identifier_types lists the identifier types.");
  identity::ValueNormaliser normaliser(config.phone_region);
  identity::Normalised out;
  normaliser.normalise(probe.types()[type].normaliser, raw, out);
  if (type_out) *type_out = type;
  return out;
}

std::string arg_text(FunctionCallInfo fcinfo, int n) {
  struct Span {
    const char* data;
    int len;
  };
  Span span = pg_call([&]() -> Span {
    text* t = PG_GETARG_TEXT_PP(n);
    return Span{VARDATA_ANY(t), static_cast<int>(VARSIZE_ANY_EXHDR(t))};
  });
  return std::string(span.data, span.len);
}

void require_args(FunctionCallInfo fcinfo, int count, const char* what) {
  for (int i = 0; i < count; ++i)
    if (PG_ARGISNULL(i)) fail(sqlstate::kNullValueNotAllowed, std::string(what) + " must not be NULL");
}

}  // namespace
}  // namespace cdp::pg

using namespace cdp::pg;

extern "C" Datum cdp_merge_identities(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    if (PG_ARGISNULL(0)) fail(cdp::sqlstate::kNullValueNotAllowed, "observations must not be NULL");
    const Oid relation = PG_GETARG_OID(0);
    const bool full_rebuild = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
    connect();
    Phases phases;
    cdp::Interrupts interrupts = pg_interrupts();
    MemoryGuard memory;
    const int64_t run_id = start_run("merge", relation, full_rebuild);
    const std::string fingerprint = rules_fingerprint();
    const Config config = load_config();
    Skipped skipped;
    int64_t read = 0, new_links = 0, hwm = 0;
    bool has_hwm = false;
    std::unique_ptr<cdp::identity::IdentityGraph> graph, staged;
    std::vector<std::pair<int32_t, int32_t>> new_pairs;
    ingest(relation, full_rebuild, config, interrupts, memory, phases, skipped, read, new_links, hwm, has_hwm, graph,
           staged, new_pairs);
    bool done = false;
    if (staged) {
      // Unchanged rules since the previous run: only the part of the graph the new links touch.
      const PreviousRun previous = previous_run(run_id);
      cdp::identity::ResolveStats totals;
      int64_t resolved_links = 0;
      if (previous.found && previous.fingerprint == fingerprint &&
          resolve_subgraph(run_id, config, interrupts, memory, phases, *staged, new_pairs, previous, totals,
                           resolved_links)) {
        finish_run(run_id, totals, skipped, read, new_links, has_hwm, hwm, memory, phases, fingerprint, resolved_links);
        report_written(phases, memory);
        done = true;
      }
      staged.reset();
    }
    if (!done)
      recompute(run_id, config, interrupts, memory, phases, skipped, read, new_links, has_hwm, hwm, std::move(graph),
                fingerprint);
    disconnect();
    PG_RETURN_VOID();
  });
}

extern "C" Datum cdp_forget_identifier(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    require_args(fcinfo, 2, "id_type and id_value");
    const std::string type_name = arg_text(fcinfo, 0), raw = arg_text(fcinfo, 1);
    connect();
    Phases phases;
    cdp::Interrupts interrupts = pg_interrupts();
    MemoryGuard memory;
    const int64_t run_id = start_run("forget", InvalidOid, false);
    const Config config = load_config();
    const cdp::identity::Normalised value = normalise_one(config, type_name, raw);
    if (value.outcome == cdp::identity::Outcome::kEmpty)
      fail(cdp::sqlstate::kInvalidParameterValue, "id_value is empty");
    const std::vector<SpiArg> key{text_param(type_name), text_param(value.value)};
    spi_run(
        "INSERT INTO cdp.identity_tombstones (kind, key_sha256) VALUES ('identifier', "
        "pg_catalog.sha256(pg_catalog.convert_to($1, 'UTF8') || '\\x00'::bytea || pg_catalog.convert_to($2, 'UTF8'))) "
        "ON CONFLICT DO NOTHING",
        key);
    spi_run("DELETE FROM cdp.identity_links WHERE id_type = $1 AND id_value = $2", key);
    spi_run("DELETE FROM cdp.identity_cuts WHERE id_type = $1 AND id_value = $2", key);
    spi_run("UPDATE cdp.merge_history SET id_value = NULL WHERE id_type = $1 AND id_value = $2", key);
    phases.lap("erase");
    recompute(run_id, config, interrupts, memory, phases, Skipped{}, 0, 0, false, 0);
    disconnect();
    PG_RETURN_VOID();
  });
}

extern "C" Datum cdp_forget_person(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    require_args(fcinfo, 1, "person_id");
    const int64_t person = PG_GETARG_INT64(0);
    connect();
    Phases phases;
    cdp::Interrupts interrupts = pg_interrupts();
    MemoryGuard memory;
    const int64_t run_id = start_run("forget", InvalidOid, false);
    const Config config = load_config();
    const std::vector<SpiArg> key{int8_param(person)};
    spi_run("SELECT FROM cdp.persons WHERE person_id = $1", key);
    if (SPI_processed == 0)
      fail(cdp::sqlstate::kUndefinedObject, "person " + std::to_string(person) + " does not exist");
    spi_run(
        "INSERT INTO cdp.identity_tombstones (kind, key_sha256) "
        "SELECT 'identifier', pg_catalog.sha256(pg_catalog.convert_to(id_type, 'UTF8') || '\\x00'::bytea || "
        "pg_catalog.convert_to(id_value, 'UTF8')) FROM cdp.person_identifiers WHERE person_id = $1 "
        "UNION SELECT 'record', pg_catalog.sha256(pg_catalog.convert_to(source, 'UTF8') || '\\x00'::bytea || "
        "pg_catalog.convert_to(source_key, 'UTF8')) FROM cdp.identity_map WHERE person_id = $1 "
        "ON CONFLICT DO NOTHING",
        key);
    spi_run(
        "DELETE FROM cdp.identity_links l USING cdp.identity_map m "
        "WHERE m.person_id = $1 AND l.source = m.source AND l.source_key = m.source_key",
        key);
    spi_run(
        "DELETE FROM cdp.identity_links l USING cdp.person_identifiers p "
        "WHERE p.person_id = $1 AND l.id_type = p.id_type AND l.id_value = p.id_value",
        key);
    spi_run(
        "UPDATE cdp.merge_history h SET id_value = NULL FROM cdp.person_identifiers p "
        "WHERE p.person_id = $1 AND h.id_type = p.id_type AND h.id_value = p.id_value",
        key);
    spi_run("DELETE FROM cdp.identity_cuts WHERE identifier_person = $1 OR record_person = $1", key);
    phases.lap("erase");
    recompute(run_id, config, interrupts, memory, phases, Skipped{}, 0, 0, false, 0);
    disconnect();
    PG_RETURN_VOID();
  });
}

namespace cdp::pg {
namespace {
// The rules normalize_identifier needs, cached as plain data in fn_extra for the rest of the statement
// (the function is STABLE), so person_id() over many rows reads cdp.identifier_types once. The same call
// site runs again for later statements (a PL/pgSQL loop keeps its expression state for the transaction),
// which must see rules changed in between: the cache is valid only under the snapshot it was read with.
struct CachedRules {
  static constexpr int kMaxTypes = 255;
  SPIPlanPtr lookup;  // person_id(): the prepared lookup, freed with fn_mcxt
  MemoryContextCallback free_lookup;
  bool loaded;
  TransactionId snapshot_xmin, snapshot_xmax;
  CommandId snapshot_command;
  int count;
  char region[8];
  char names[kMaxTypes][64];
  int normalisers[kMaxTypes];
};

// Whether the rules were read under the snapshot now active (the same statement). Plain C.
bool read_in_this_statement(const CachedRules* rules) {
  if (!rules->loaded || !ActiveSnapshotSet()) return false;
  const Snapshot snapshot = GetActiveSnapshot();
  return rules->snapshot_xmin == snapshot->xmin && rules->snapshot_xmax == snapshot->xmax &&
         rules->snapshot_command == snapshot->curcid;
}

const CachedRules* cached_rules(FunctionCallInfo fcinfo) {
  auto* rules = static_cast<CachedRules*>(fcinfo->flinfo->fn_extra);
  if (rules && read_in_this_statement(rules)) return rules;
  connect();
  const Config config = load_config(true);
  disconnect();
  if (!rules)
    rules = static_cast<CachedRules*>(
        pg_call([&]() -> void* { return MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CachedRules)); }));
  rules->count = 0;  // reloading keeps the prepared lookup: it reads with each call's snapshot
  rules->loaded = false;
  if (ActiveSnapshotSet()) {
    const Snapshot snapshot = GetActiveSnapshot();
    rules->snapshot_xmin = snapshot->xmin;
    rules->snapshot_xmax = snapshot->xmax;
    rules->snapshot_command = snapshot->curcid;
    rules->loaded = true;
  }
  for (const TypeRule& rule : config.types) {
    if (rules->count >= CachedRules::kMaxTypes || rule.name.size() >= sizeof rules->names[0]) continue;
    std::memcpy(rules->names[rules->count], rule.name.c_str(), rule.name.size() + 1);
    rules->normalisers[rules->count] = static_cast<int>(rule.normaliser);
    ++rules->count;
  }
  std::memset(rules->region, 0, sizeof rules->region);
  std::strncpy(rules->region, config.phone_region.c_str(), sizeof rules->region - 1);
  fcinfo->flinfo->fn_extra = rules;
  return rules;
}
}  // namespace
}  // namespace cdp::pg

namespace cdp::pg {
namespace {
// Normalises argument 1 as a value of the type named by argument 0 (unknown type: 22023).
identity::Normalised normalise_arguments(FunctionCallInfo fcinfo, const CachedRules* rules, std::string& type_name) {
  type_name = arg_text(fcinfo, 0);
  const std::string raw = arg_text(fcinfo, 1);
  int type = -1;
  for (int t = 0; t < rules->count && type < 0; ++t)
    if (type_name == rules->names[t]) type = t;
  if (type < 0)
    fail(sqlstate::kInvalidParameterValue, "unknown id_type \"" + type_name + "\"", {},
         "cdp.identifier_types lists the identifier types.");
  identity::ValueNormaliser normaliser(rules->region);
  identity::Normalised value;
  normaliser.normalise(static_cast<identity::Normaliser>(rules->normalisers[type]), raw, value);
  return value;
}

void free_lookup_plan(void* arg) {
  auto* rules = static_cast<CachedRules*>(arg);
  if (rules->lookup) SPI_freeplan(rules->lookup);
  rules->lookup = nullptr;
}
}  // namespace
}  // namespace cdp::pg

extern "C" Datum cdp_normalize_identifier(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    std::string type_name;
    const cdp::identity::Normalised value = normalise_arguments(fcinfo, cached_rules(fcinfo), type_name);
    if (value.outcome != cdp::identity::Outcome::kOk) PG_RETURN_NULL();
    return pg_call([&]() -> Datum {
      return PointerGetDatum(cstring_to_text_with_len(value.value.data(), value.value.size()));
    });
  });
}

// person_id(id_type, id_value): normalise as runs do, then one index lookup with a plan prepared once
// per query; NULL when unknown, excluded or invalid.
extern "C" Datum cdp_person_id(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    auto* rules = const_cast<CachedRules*>(cached_rules(fcinfo));
    std::string type_name;
    const cdp::identity::Normalised value = normalise_arguments(fcinfo, rules, type_name);
    if (value.outcome != cdp::identity::Outcome::kOk) PG_RETURN_NULL();
    connect();
    if (!rules->lookup) {
      pg_call([&] {
        Oid types[2] = {TEXTOID, TEXTOID};
        SPIPlanPtr plan = SPI_prepare(
            "SELECT person_id FROM cdp.person_identifiers WHERE id_type = $1 AND id_value = $2 AND status = 'linked'",
            2, types);
        if (!plan) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
        SPI_keepplan(plan);
        rules->lookup = plan;
        rules->free_lookup.func = free_lookup_plan;
        rules->free_lookup.arg = rules;
        MemoryContextRegisterResetCallback(fcinfo->flinfo->fn_mcxt, &rules->free_lookup);
      });
    }
    struct Found {
      bool found;
      int64_t person;
    };
    const Found found = pg_call([&]() -> Found {
      Datum args[2] = {PointerGetDatum(cstring_to_text_with_len(type_name.data(), type_name.size())),
                       PointerGetDatum(cstring_to_text_with_len(value.value.data(), value.value.size()))};
      int rc = SPI_execute_plan(rules->lookup, args, nullptr, true, 1);
      if (rc != SPI_OK_SELECT) elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
      if (SPI_processed == 0) return Found{false, 0};
      bool is_null = false;
      Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null);
      return Found{!is_null, is_null ? 0 : DatumGetInt64(d)};
    });
    disconnect();
    if (!found.found) PG_RETURN_NULL();
    PG_RETURN_INT64(found.person);
  });
}
