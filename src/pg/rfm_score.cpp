// SQL glue for RFM scoring: the cdp.rfm_score window function, the cdp.rfm_breaks aggregate and
// cdp.rfm_bucket, for double precision, numeric, bigint and timestamptz. The rule itself lives in
// src/core/rfm_scoring.cpp; this file only moves values between PostgreSQL and the core.
#include "pg/boundary.h"

#include "core/numeric_order.h"
#include "core/rfm_scoring.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using cdp::pg::fail;
using cdp::pg::guarded;
using cdp::pg::pg_call;
using cdp::rfm::Keyed;

constexpr int kDefaultBins = 5;
constexpr const char* kInvalid = cdp::sqlstate::kInvalidParameterValue;

// How each SQL type becomes a C++ key that orders like PostgreSQL orders the type.
static_assert(FLOAT8PASSBYVAL, "pg_cdp reads 8-byte values as pass-by-value Datums (64-bit builds)");

struct Float8Type {
  using Key = double;
  using Less = std::less<double>;
  static constexpr Oid kOid = FLOAT8OID;
  static constexpr int kLength = 8;
  static constexpr bool kByValue = FLOAT8PASSBYVAL;
  static constexpr char kAlign = TYPALIGN_DOUBLE;
  static Key raw_key(Datum value) noexcept { return DatumGetFloat8(value); }
  static void check(Key v, const char* what) {
    if (std::isnan(v))
      fail(kInvalid, std::string(what) + " must not be NaN", {}, "Filter NaN out, for example WHERE value <> 'NaN'.");
  }
  static Key key(Datum value, const char* what) {
    const double v = raw_key(value);
    check(v, what);
    return v;  // -0 and 0 compare equal, as in PostgreSQL; infinities are ordinary values
  }
};

struct Int8Type {
  using Key = std::int64_t;
  using Less = std::less<std::int64_t>;
  static constexpr Oid kOid = INT8OID;
  static constexpr int kLength = 8;
  static constexpr bool kByValue = FLOAT8PASSBYVAL;
  static constexpr char kAlign = TYPALIGN_DOUBLE;
  static Key raw_key(Datum value) noexcept { return DatumGetInt64(value); }
  static void check(Key, const char*) {}
  static Key key(Datum value, const char*) { return raw_key(value); }
};

struct TimestamptzType {
  using Key = std::int64_t;  // microseconds; -infinity and infinity are the int64 extremes
  using Less = std::less<std::int64_t>;
  static constexpr Oid kOid = TIMESTAMPTZOID;
  static constexpr int kLength = 8;
  static constexpr bool kByValue = FLOAT8PASSBYVAL;
  static constexpr char kAlign = TYPALIGN_DOUBLE;
  static Key raw_key(Datum value) noexcept { return DatumGetTimestampTz(value); }
  static void check(Key, const char*) {}
  static Key key(Datum value, const char*) { return raw_key(value); }
};

struct NumericType {
  using Key = cdp::NumericOrderKey;  // views the (detoasted) datum's bytes, which must stay alive
  using Less = cdp::NumericOrderLess;
  static constexpr Oid kOid = NUMERICOID;
  static constexpr int kLength = -1;
  static constexpr bool kByValue = false;
  static constexpr char kAlign = TYPALIGN_INT;
  // value must be detoasted (keep_numeric or pg_detoast_datum_packed).
  static Key raw_key(Datum value) noexcept {
    const struct varlena* bytes = reinterpret_cast<const struct varlena*>(DatumGetPointer(value));
    return cdp::numeric_order_key_nothrow(reinterpret_cast<const std::uint8_t*>(VARDATA_ANY(bytes)),
                                          VARSIZE_ANY_EXHDR(bytes));
  }
  static void check(const Key& key, const char* what) {
    if (!key.valid()) fail(cdp::sqlstate::kInvalidBinaryRepresentation, std::string(what) + " is a malformed numeric");
    if (key.kind() == cdp::NumericKind::kNaN)
      fail(kInvalid, std::string(what) + " must not be NaN", {}, "Filter NaN out, for example WHERE value <> 'NaN'.");
  }
  static Key key(Datum value, const char* what) {
    const Key key = raw_key(value);
    check(key, what);
    return key;
  }
};

// A by-reference value that must outlive the row it came from: detoast (which copies) or copy it
// into the current memory context. Plain C; call inside pg_call.
Datum keep_numeric(Datum value) {
  struct varlena* original = reinterpret_cast<struct varlena*>(DatumGetPointer(value));
  struct varlena* plain = pg_detoast_datum_packed(original);
  if (plain == original) {
    const Size size = VARSIZE_ANY(original);
    plain = static_cast<struct varlena*>(palloc(size));
    memcpy(plain, original, size);
  }
  return PointerGetDatum(plain);
}

int checked_bins(bool is_null, Datum value) {
  if (is_null) fail(kInvalid, "bins must not be NULL", {}, "Pass a number of scores between 1 and 100 (default 5).");
  const int bins = DatumGetInt32(value);
  cdp::rfm::check_bins(bins);
  return bins;
}

// Bytes the sort may hold, from the larger of work_mem and maintenance_work_mem: scoring cannot
// spill to disk like PostgreSQL's own sorts, so it fails cleanly past this limit instead.
cdp::MemoryBudget scoring_budget() {
  if (maintenance_work_mem >= work_mem)
    return cdp::MemoryBudget(cdp::pg::kilobytes(maintenance_work_mem), "maintenance_work_mem");
  return cdp::MemoryBudget(cdp::pg::kilobytes(work_mem), "work_mem");
}

cdp::Interrupts pg_interrupts() {
  return cdp::Interrupts([] { cdp::pg::check_for_interrupts(); });
}

// Sorts entries into tie groups and scores them; returns the score of each group and, through
// group_start, where each group starts in the sorted entries.
template <typename Type>
std::vector<int> score_entries(std::vector<Keyed<typename Type::Key>>& entries, int bins,
                               std::vector<std::size_t>* group_start) {
  cdp::Interrupts interrupts = pg_interrupts();
  const std::vector<std::size_t> sizes =
      cdp::rfm::sort_into_tie_groups(entries, typename Type::Less{}, interrupts);
  std::vector<int> scores = cdp::rfm::score_tie_groups(sizes, bins);
  group_start->assign(sizes.size(), 0);
  for (std::size_t g = 1; g < sizes.size(); ++g) (*group_start)[g] = (*group_start)[g - 1] + sizes[g - 1];
  return scores;
}

// ---------------------------------------------------------------------------------------------
// cdp.rfm_score(value, bins) window function.

// Kept in the partition's local memory (WinGetPartitionLocalMemory, zeroed on allocation): the
// scores are computed once, at the partition's first row, and then read back row by row.
struct PartitionScores {
  bool computed;
  int bins;
  std::uint8_t scores[FLEXIBLE_ARRAY_MEMBER];  // by partition position; 0 = NULL value
};

// Reads the partition's non-NULL values into (datum, position) pairs. Plain C inside pg_call: no
// C++ object is created here and nothing throws. Numeric values are copied into scratch (they live
// in a slot that the next fetch overwrites); *copied_bytes counts those copies, and reading stops
// as soon as they pass copy_limit (the caller then charges them to the budget, which fails).
template <typename Type, typename Out, typename Convert>
std::size_t read_partition(WindowObject window, int64 rows, Out* out, MemoryContext scratch, Convert convert,
                           std::size_t copy_limit, std::size_t* copied_bytes) {
  return pg_call([&]() -> std::size_t {
    std::size_t count = 0;
    std::size_t copied = 0;
    for (int64 row = 0; row < rows && copied <= copy_limit; ++row) {
      if ((row & 0xFFF) == 0) CHECK_FOR_INTERRUPTS();
      bool is_null = false, is_out = false;
      Datum value = WinGetFuncArgInPartition(window, 0, static_cast<int>(row), WINDOW_SEEK_HEAD, false,
                                             &is_null, &is_out);
      if (is_null || is_out) continue;
      if (!Type::kByValue) {
        MemoryContext previous = MemoryContextSwitchTo(scratch);
        value = keep_numeric(value);
        MemoryContextSwitchTo(previous);
        copied += VARSIZE_ANY(DatumGetPointer(value));
      }
      out[count].key = convert(value);
      out[count].id = static_cast<std::size_t>(row);
      ++count;
    }
    *copied_bytes = copied;
    return count;
  });
}

template <typename Type>
void score_partition(WindowObject window, int64 rows, int bins, PartitionScores* partition) {
  using Key = typename Type::Key;
  cdp::MemoryBudget budget = scoring_budget();
  // Keys are made straight from the Datums (no allocation, nothing throws) inside the read loop and
  // checked (NaN, malformed numeric) afterwards: 16 bytes a row (32 for numeric, whose keys view a
  // copy of each value in a scratch context under the per-row context, deleted when done). The
  // copies count against the budget too: the partition itself may sit on disk in the tuplestore.
  budget.charge(static_cast<std::size_t>(rows) * sizeof(Keyed<Key>));
  MemoryContext scratch = nullptr;
  if (!Type::kByValue)
    scratch = pg_call([] { return AllocSetContextCreate(CurrentMemoryContext, "cdp.rfm_score", ALLOCSET_DEFAULT_SIZES); });
  std::vector<Keyed<Key>> entries(static_cast<std::size_t>(rows));
  std::size_t copied_bytes = 0;
  entries.resize(read_partition<Type>(window, rows, entries.data(), scratch, Type::raw_key,
                                      budget.limit() - budget.used(), &copied_bytes));
  budget.charge(copied_bytes);  // fails here when reading stopped early
  for (const auto& entry : entries) Type::check(entry.key, "value");
  std::vector<std::size_t> group_start;
  const std::vector<int> group_scores = score_entries<Type>(entries, bins, &group_start);
  for (std::size_t g = 0; g < group_scores.size(); ++g) {
    const std::size_t end = g + 1 < group_start.size() ? group_start[g + 1] : entries.size();
    for (std::size_t i = group_start[g]; i < end; ++i)
      partition->scores[entries[i].id] = static_cast<std::uint8_t>(group_scores[g]);
  }
  if (scratch) {
    entries.clear();  // the numeric keys view scratch memory
    pg_call([&] { MemoryContextDelete(scratch); });
  }
}

template <typename Type>
Datum rfm_score_window(FunctionCallInfo fcinfo) {
  return guarded([&]() -> Datum {
    WindowObject window = PG_WINDOW_OBJECT();
    bool bins_null = false;
    const Datum bins_datum = PG_NARGS() > 1 ? pg_call([&] { return WinGetFuncArgCurrent(window, 1, &bins_null); })
                                            : Int32GetDatum(kDefaultBins);
    const int bins = checked_bins(bins_null, bins_datum);
    const int64 rows = pg_call([&] { return WinGetPartitionRowCount(window); });
    if (rows > PG_INT32_MAX)  // window row positions are int
      fail(cdp::sqlstate::kProgramLimitExceeded, "rfm_score supports at most 2147483647 rows per window partition");
    auto* partition = static_cast<PartitionScores*>(pg_call([&] {
      return WinGetPartitionLocalMemory(window, offsetof(PartitionScores, scores) + static_cast<Size>(rows));
    }));
    if (!partition->computed) {
      score_partition<Type>(window, rows, bins, partition);
      partition->bins = bins;
      partition->computed = true;
    } else if (partition->bins != bins) {
      fail(kInvalid, "bins must be the same for every row of a window partition",
           "The partition was scored with " + std::to_string(partition->bins) + " bins; this row asks for " +
               std::to_string(bins) + ".");
    }
    const int64 position = pg_call([&] { return WinGetCurrentPosition(window); });
    const int score = partition->scores[position];
    if (score == 0) {
      fcinfo->isnull = true;
      return Datum(0);
    }
    return Int32GetDatum(score);
  });
}

// ---------------------------------------------------------------------------------------------
// cdp.rfm_breaks(value, bins) aggregate: the values are collected in the aggregate context (plain
// palloc'd array, never a C++ container across calls), scored once in the final function.

struct BreaksState {
  int bins;
  int64 count;
  int64 capacity;
  Datum* values;     // numeric values are copies owned by the aggregate context
  Size copy_bytes;   // bytes of those copies
};

// What the group will need at the final sort (values, copies and sort entries), checked while
// collecting so an oversized group fails early instead of after filling memory.
template <typename Type>
void charge_breaks(const BreaksState* state, int64 capacity) {
  cdp::MemoryBudget budget = scoring_budget();
  budget.charge(static_cast<std::size_t>(capacity) * (sizeof(Datum) + sizeof(Keyed<typename Type::Key>)) +
                state->copy_bytes);
}

template <typename Type>
Datum rfm_breaks_transition(FunctionCallInfo fcinfo) {
  return guarded([&]() -> Datum {
    MemoryContext aggregate_context = nullptr;
    if (!pg_call([&] { return AggCheckCallContext(fcinfo, &aggregate_context); }))
      fail(cdp::sqlstate::kObjectNotInPrerequisiteState, "rfm_breaks transition function called outside an aggregate");
    const int bins = PG_NARGS() > 2 ? checked_bins(PG_ARGISNULL(2), PG_GETARG_DATUM(2)) : kDefaultBins;
    BreaksState* state = PG_ARGISNULL(0) ? nullptr : reinterpret_cast<BreaksState*>(PG_GETARG_POINTER(0));
    if (state == nullptr) {
      state = static_cast<BreaksState*>(
          pg_call([&] { return MemoryContextAllocZero(aggregate_context, sizeof(BreaksState)); }));
      state->bins = bins;
    } else if (state->bins != bins) {
      fail(kInvalid, "bins must be the same for every row of an rfm_breaks group",
           "The group started with " + std::to_string(state->bins) + " bins; this row asks for " +
               std::to_string(bins) + ".");
    }
    if (PG_ARGISNULL(1)) return PointerGetDatum(state);
    Datum value = PG_GETARG_DATUM(1);
    if (!Type::kByValue) {
      value = pg_call([&] {
        MemoryContext previous = MemoryContextSwitchTo(aggregate_context);
        Datum kept = keep_numeric(value);
        MemoryContextSwitchTo(previous);
        return kept;
      });
      state->copy_bytes += VARSIZE_ANY(DatumGetPointer(value));
      if ((state->count & 0xFFF) == 0) charge_breaks<Type>(state, state->count);
    }
    (void)Type::key(value, "value");  // rejects NaN at the row that has it
    if (state->count == state->capacity) {
      charge_breaks<Type>(state, state->capacity == 0 ? 1024 : state->capacity * 2);
      pg_call([&] {
        const int64 capacity = state->capacity == 0 ? 1024 : state->capacity * 2;
        const Size bytes = static_cast<Size>(capacity) * sizeof(Datum);
        state->values = static_cast<Datum*>(state->values == nullptr
                                                ? MemoryContextAllocHuge(aggregate_context, bytes)
                                                : repalloc_huge(state->values, bytes));
        state->capacity = capacity;
      });
    }
    state->values[state->count++] = value;
    return PointerGetDatum(state);
  });
}

template <typename Type>
Datum rfm_breaks_final(FunctionCallInfo fcinfo) {
  return guarded([&]() -> Datum {
    if (PG_ARGISNULL(0)) {
      fcinfo->isnull = true;
      return Datum(0);
    }
    const BreaksState* state = reinterpret_cast<const BreaksState*>(PG_GETARG_POINTER(0));
    if (state->count == 0) {  // only NULL values: nothing to score
      fcinfo->isnull = true;
      return Datum(0);
    }
    cdp::MemoryBudget budget = scoring_budget();
    budget.charge(static_cast<std::size_t>(state->count) * sizeof(Keyed<typename Type::Key>));
    // The state is left untouched (the final function may run again, e.g. in a window).
    std::vector<Keyed<typename Type::Key>> entries(static_cast<std::size_t>(state->count));
    for (std::size_t i = 0; i < entries.size(); ++i) entries[i] = {Type::key(state->values[i], "value"), i};
    std::vector<std::size_t> group_start;
    const std::vector<int> group_scores = score_entries<Type>(entries, state->bins, &group_start);
    const std::vector<long> first = cdp::rfm::first_group_of_scores(group_scores, state->bins);
    Datum elements[cdp::rfm::kMaxBins];
    bool nulls[cdp::rfm::kMaxBins];
    for (int b = 0; b < state->bins; ++b) {
      const long group = first[static_cast<std::size_t>(b)];
      nulls[b] = group < 0;
      elements[b] = group < 0 ? Datum(0) : state->values[entries[group_start[static_cast<std::size_t>(group)]].id];
    }
    const int bins = state->bins;
    ArrayType* result = pg_call([&] {
      int dims[1] = {bins};
      int lower_bounds[1] = {1};
      return construct_md_array(elements, nulls, 1, dims, lower_bounds, Type::kOid, Type::kLength, Type::kByValue,
                                Type::kAlign);
    });
    return PointerGetDatum(result);
  });
}

// ---------------------------------------------------------------------------------------------
// cdp.rfm_bucket(value, breaks): the score of value under given lower bounds.

template <typename Type>
Datum rfm_bucket(FunctionCallInfo fcinfo) {
  return guarded([&]() -> Datum {
    // STRICT in SQL: both arguments are non-NULL here.
    ArrayType* array = pg_call([&] { return PG_GETARG_ARRAYTYPE_P(1); });
    if (ARR_NDIM(array) > 1) fail(kInvalid, "breaks must be a one-dimensional array");
    if (ARR_ELEMTYPE(array) != Type::kOid) fail(cdp::sqlstate::kDatatypeMismatch, "breaks has the wrong element type");
    const int count = ARR_NDIM(array) == 0 ? 0 : ARR_DIMS(array)[0];
    if (count < 1) fail(kInvalid, "breaks must contain at least one non-NULL element", "The array is empty.");
    if (count > cdp::rfm::kMaxBins)
      fail(kInvalid, "breaks must have between 1 and 100 elements",
           "The array has " + std::to_string(count) + " elements.");
    Datum* elements = nullptr;
    bool* nulls = nullptr;
    int elements_count = 0;
    pg_call([&] {
      deconstruct_array(array, Type::kOid, Type::kLength, Type::kByValue, Type::kAlign, &elements, &nulls,
                        &elements_count);
    });
    typename Type::Key breaks[cdp::rfm::kMaxBins];
    bool present[cdp::rfm::kMaxBins];
    for (int i = 0; i < elements_count; ++i) {
      present[i] = !nulls[i];
      if (present[i]) breaks[i] = Type::key(elements[i], "breaks element");
    }
    cdp::rfm::check_breaks(breaks, present, elements_count, typename Type::Less{});
    Datum value_datum = PG_GETARG_DATUM(0);
    if (!Type::kByValue)  // a large numeric may arrive compressed or out of line
      value_datum = pg_call([&] { return PointerGetDatum(pg_detoast_datum_packed(
                                      reinterpret_cast<struct varlena*>(DatumGetPointer(value_datum)))); });
    const typename Type::Key value = Type::key(value_datum, "value");
    return Int32GetDatum(cdp::rfm::bucket_score(value, breaks, present, elements_count, typename Type::Less{}));
  });
}

}  // namespace

#define CDP_RFM_SCORING_FUNCTIONS(suffix, Type)                                                      \
  extern "C" {                                                                                       \
  PG_FUNCTION_INFO_V1(cdp_rfm_score_##suffix);                                                      \
  PG_FUNCTION_INFO_V1(cdp_rfm_breaks_##suffix##_transition);                                        \
  PG_FUNCTION_INFO_V1(cdp_rfm_breaks_##suffix##_final);                                             \
  PG_FUNCTION_INFO_V1(cdp_rfm_bucket_##suffix);                                                     \
  }                                                                                                  \
  extern "C" Datum cdp_rfm_score_##suffix(PG_FUNCTION_ARGS) { return rfm_score_window<Type>(fcinfo); } \
  extern "C" Datum cdp_rfm_breaks_##suffix##_transition(PG_FUNCTION_ARGS) {                          \
    return rfm_breaks_transition<Type>(fcinfo);                                                      \
  }                                                                                                  \
  extern "C" Datum cdp_rfm_breaks_##suffix##_final(PG_FUNCTION_ARGS) { return rfm_breaks_final<Type>(fcinfo); } \
  extern "C" Datum cdp_rfm_bucket_##suffix(PG_FUNCTION_ARGS) { return rfm_bucket<Type>(fcinfo); }

CDP_RFM_SCORING_FUNCTIONS(float8, Float8Type)
CDP_RFM_SCORING_FUNCTIONS(numeric, NumericType)
CDP_RFM_SCORING_FUNCTIONS(int8, Int8Type)
CDP_RFM_SCORING_FUNCTIONS(timestamptz, TimestamptzType)
