// The SPI and executor toolbox of the identity-merge glue (src/pg/identity*.cpp): statements with
// parameters, rows read through a DestReceiver (for_each_row) or a cursor, rows written as array
// parameters (ArrayBatch) or appended directly (RowWriter over BulkAppender). Every call into PostgreSQL
// goes through pg_call. Internal to the identity files; no SQL-callable function lives here.
#pragma once
#include "pg/boundary.h"
#include "pg/bulk_append.h"

#include "core/identity_normalize.h"
#include "core/identity_resolve.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cdp::pg::identity_glue {

using identity::IdentityGraph;
using identity::TypeRule;

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
inline uint64 spi_run(const char* sql, const std::vector<SpiArg>& params = {}, bool read_only = false) {
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
inline bool result_is_null(uint64 row, int column) {
  return pg_call([&]() -> bool {
    bool is_null = false;
    SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, &is_null);
    return is_null;
  });
}
inline int64_t result_int64(uint64 row, int column) {
  return pg_call([&]() -> int64_t {
    bool is_null = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, &is_null);
    return is_null ? 0 : DatumGetInt64(d);
  });
}
inline std::string result_text(uint64 row, int column) {
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

inline SpiArg text_param(std::string_view s) {
  Datum d = pg_call([&]() -> Datum { return PointerGetDatum(cstring_to_text_with_len(s.data(), s.size())); });
  return SpiArg{TEXTOID, d, false};
}
inline SpiArg int8_param(int64_t v) { return SpiArg{INT8OID, Int64GetDatum(v), false}; }
inline SpiArg bool_param(bool v) { return SpiArg{BOOLOID, BoolGetDatum(v), false}; }
inline SpiArg oid_param(Oid v) { return SpiArg{OIDOID, ObjectIdGetDatum(v), false}; }
// An array parameter of `type` whose elements to_datum makes (in the current memory context).
template <typename T, typename ToDatum>
inline SpiArg array_param(const std::vector<T>& values, Oid type, int16 length, bool by_value, char align,
                          Oid array_type, ToDatum to_datum) {
  Datum d = pg_call([&]() -> Datum {
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (values.size() + 1)));
    for (std::size_t i = 0; i < values.size(); ++i) elems[i] = to_datum(values[i]);
    return PointerGetDatum(construct_array(elems, static_cast<int>(values.size()), type, length, by_value, align));
  });
  return SpiArg{array_type, d, false};
}
inline SpiArg int8_array_param(const std::vector<int64_t>& values) {
  return array_param(values, INT8OID, 8, true, TYPALIGN_DOUBLE, INT8ARRAYOID, [](int64_t v) { return Int64GetDatum(v); });
}
inline SpiArg int4_array_param(const std::vector<int32_t>& values) {
  return array_param(values, INT4OID, 4, true, TYPALIGN_INT, INT4ARRAYOID, [](int32_t v) { return Int32GetDatum(v); });
}
inline SpiArg text_array_param(const std::vector<std::string_view>& values) {
  return array_param(values, TEXTOID, -1, false, TYPALIGN_INT, TEXTARRAYOID, [](std::string_view v) {
    return PointerGetDatum(cstring_to_text_with_len(v.data(), static_cast<int>(v.size())));
  });
}

// Settings for the statements of one block, put back by restore() (or, if an error ends the block first,
// by the transaction's abort): the way a function's SET clause works. Blocks nest; restore inner first.
class StatementSettings {
 public:
  explicit StatementSettings(std::initializer_list<std::pair<const char*, std::string>> settings) {
    pg_call([&] {
      level_ = NewGUCNestLevel();
      for (const auto& [name, value] : settings)
        (void)set_config_option(name, value.c_str(), PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    });
  }
  StatementSettings(const StatementSettings&) = delete;  // one restore per level (returned by value: elided)
  StatementSettings& operator=(const StatementSettings&) = delete;
  void restore() { pg_call([&] { AtEOXact_GUC(true, level_); }); }

 private:
  int level_ = 0;
};

// pg_catalog.hashtext(text) of a value under a deterministic collation (the key of identity_links_key_idx):
// hash_any over the bytes, which never raises an error.
inline int32_t hashtext_of(std::string_view bytes) {
  return DatumGetInt32(hash_any(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size())));
}

inline void notice(const std::string& message) {
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
      if (n == 0) {
        SPI_cursor_close(portal_);
        portal_ = nullptr;
      }
      return n;
    });
    columns_ = columns;
    return rows;
  }
  // Closes the cursor before its end (fetch closes it at the end).
  void close() {
    if (!portal_) return;
    pg_call([&] {
      if (SPI_tuptable) {
        SPI_freetuptable(SPI_tuptable);
        SPI_tuptable = nullptr;
      }
      SPI_cursor_close(portal_);
    });
    portal_ = nullptr;
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

inline bool receive_row(TupleTableSlot* slot, DestReceiver* self) {
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
inline void receiver_startup(DestReceiver* self, int, TupleDesc result) {
  RowReceiver* receiver = reinterpret_cast<RowReceiver*>(self);
  if (result->natts != receiver->columns) elog(ERROR, "cdp: query returned %d columns, expected %d", result->natts, receiver->columns);
}
inline void receiver_nothing(DestReceiver*) {}

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
// parallel_ok: the planner may use parallel workers (a Gather) when it estimates that cheaper, e.g. for
// an incremental run's read of the rows after the high-water mark from a large table without an index.
template <typename OnRow>
void for_each_row(const char* sql, const std::vector<SpiArg>& params, const std::vector<bool>& text_columns,
                  OnRow&& on_row, bool parallel_ok = false) {
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
    SPIPlanPtr plan = SPI_prepare_cursor(sql, n, types, parallel_ok ? CURSOR_OPT_PARALLEL_OK : 0);
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
  // A value that repeats on many rows (a source, a type name, a status): one copy for the whole load,
  // kept in the caller's memory context (alive until finish()).
  void repeated_text(int column, std::string_view value) {
    Datum datum = (Datum)0;
    for (const auto& [text, d] : repeated_)
      if (text == value) datum = d;
    if (datum == (Datum)0) {
      if (repeated_.size() >= 32) return text(column, value);  // not so repetitive after all
      datum = pg_call([&]() -> Datum { return PointerGetDatum(cstring_to_text_with_len(value.data(), value.size())); });
      repeated_.emplace_back(std::string(value), datum);
    }
    appender_.values()[column] = datum;
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
  std::vector<std::pair<std::string, Datum>> repeated_;
};
inline const Oid kLinkTypes[] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
inline const Oid kMapTypes[] = {TEXTOID, TEXTOID, INT8OID};
inline const Oid kIdentifierTypes[] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
inline const Oid kPersonTypes[] = {INT8OID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID};

}  // namespace cdp::pg::identity_glue
