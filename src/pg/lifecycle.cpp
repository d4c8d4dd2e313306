// SQL glue for the lifecycle aggregates (src/core/lifecycle.h has the rules):
//   cdp.lifecycle(ordered_at, amount, as_of, policy)       -> cdp.lifecycle_state
//   cdp.lifecycle_stage(ordered_at, amount, as_of, policy) -> text
//   cdp.lifecycle_timeline(ordered_at, amount, from_date, to_date, step, policy) -> cdp.lifecycle_point[]
// The state is a plain palloc'd struct in the aggregate context holding the sorted set of order days,
// so it is exact and independent of input order; combine merges two sorted sets. Policies are read with
// SPI once per distinct name per query (per function call site) and interned for the query.
#include "pg/boundary.h"

extern "C" {
#include "utils/date.h"  // DateADT (not in pg/pg.h; no clashing macros)
}

#include "pg/lifecycle_policy.h"

#include "core/lifecycle.h"

#include <cmath>
#include <cstring>

namespace lc = cdp::lifecycle;
static_assert(lc::kEndTimestamp == END_TIMESTAMP, "core and PostgreSQL agree on the end of timestamptz");
static_assert(lc::kUsecsPerDay == USECS_PER_DAY, "core and PostgreSQL agree on the length of a day");
using cdp::pg::fail;
using cdp::pg::guarded;
using cdp::pg::pg_call;

namespace {

constexpr int kInlineDays = 4;

// A policy resolved for the current query. Lives in a function's fn_mcxt, so for the whole query.
struct PolicyEntry {
  char name[lc::kMaxPolicyNameLength + 1];
  lc::Policy policy;
};

// ---- day numbers in the session time zone ----
// Converting every ordered_at with timestamp2tm costs more than the rest of the transition; instead the
// zone's UTC-offset transitions between 1800 and 2300 are tabulated once per query and searched.
struct DayClock {
  pg_tz* zone;
  bool fixed;               // the zone never changes offset
  long fixed_offset;        // seconds east of UTC when fixed
  int boundary_count;       // offsets[i] holds on [boundaries[i-1], boundaries[i])
  pg_time_t* boundaries;
  long* offsets;            // boundary_count + 1 entries
  pg_time_t table_start, table_end;
};

constexpr pg_time_t kClockTableStart = -5364662400LL;  // 1800-01-01 00:00 UTC, Unix seconds
constexpr pg_time_t kClockTableEnd = 10413792000LL;    // 2300-01-01 00:00 UTC
constexpr int kMaxBoundaries = 4096;
constexpr pg_time_t kPostgresEpochUnixSeconds =
    static_cast<pg_time_t>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;

inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Plain C-style: allocates in mcxt, no C++ objects.
void build_clock(DayClock* clock, MemoryContext mcxt) {
  clock->zone = session_timezone;
  long offset = 0;
  clock->fixed = pg_get_timezone_offset(clock->zone, &offset);
  clock->fixed_offset = offset;
  clock->boundary_count = 0;
  clock->table_start = kClockTableStart;
  clock->table_end = kClockTableEnd;
  if (clock->fixed) return;
  clock->boundaries = static_cast<pg_time_t*>(MemoryContextAlloc(mcxt, sizeof(pg_time_t) * kMaxBoundaries));
  clock->offsets = static_cast<long*>(MemoryContextAlloc(mcxt, sizeof(long) * (kMaxBoundaries + 1)));
  pg_time_t at = kClockTableStart;
  long before = 0, after = 0;
  int before_dst = 0, after_dst = 0;
  pg_time_t boundary = 0;
  int found = pg_next_dst_boundary(&at, &before, &before_dst, &boundary, &after, &after_dst, clock->zone);
  clock->offsets[0] = before;
  while (found == 1 && boundary < kClockTableEnd && boundary > at && clock->boundary_count < kMaxBoundaries) {
    clock->boundaries[clock->boundary_count] = boundary;
    clock->offsets[++clock->boundary_count] = after;
    at = boundary;
    found = pg_next_dst_boundary(&at, &before, &before_dst, &boundary, &after, &after_dst, clock->zone);
  }
  if (clock->boundary_count == kMaxBoundaries) clock->table_end = clock->boundaries[kMaxBoundaries - 1];
}

// Day number (days since 2000-01-01, = DateADT) of a finite timestamptz in the clock's zone.
inline std::int32_t local_day(const DayClock* clock, TimestampTz ts) {
  long offset;
  if (clock->fixed) {
    offset = clock->fixed_offset;
  } else {
    const pg_time_t seconds = floor_div(ts, USECS_PER_SEC) + kPostgresEpochUnixSeconds;
    if (seconds >= clock->table_start && seconds < clock->table_end) {
      int low = 0, high = clock->boundary_count;  // first boundary > seconds
      while (low < high) {
        const int middle = (low + high) / 2;
        if (clock->boundaries[middle] <= seconds) low = middle + 1; else high = middle;
      }
      offset = clock->offsets[low];
    } else {
      const struct pg_tm* tm = pg_localtime(&seconds, clock->zone);
      offset = tm ? tm->tm_gmtoff : 0;
    }
  }
  return static_cast<std::int32_t>(floor_div(ts + static_cast<std::int64_t>(offset) * USECS_PER_SEC, USECS_PER_DAY));
}

// ---- policies ----
// Reads one policy with SPI. Returns false (and the list of known names) when it does not exist.
// Plain C-style frame: called through pg_call.
bool fetch_policy(const char* name, lc::Policy* out, char* known, std::size_t known_size) {
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  Oid argtype = TEXTOID;
  Datum arg = CStringGetTextDatum(name);
  int rc = SPI_execute_with_args(
      "SELECT one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days, "
      "min_gaps_for_own_cadence FROM cdp.lifecycle_policies WHERE policy OPERATOR(pg_catalog.=) $1",
      1, &argtype, &arg, nullptr, true, 1);
  if (rc != SPI_OK_SELECT) elog(ERROR, "reading cdp.lifecycle_policies failed");
  bool found = SPI_processed == 1;
  if (found) {
    HeapTuple row = SPI_tuptable->vals[0];
    TupleDesc desc = SPI_tuptable->tupdesc;
    bool isnull;
    out->one_time_cadence_days = DatumGetFloat8(SPI_getbinval(row, desc, 1, &isnull));
    out->at_risk_factor = DatumGetFloat8(SPI_getbinval(row, desc, 2, &isnull));
    out->lapsed_factor = DatumGetFloat8(SPI_getbinval(row, desc, 3, &isnull));
    out->churned_factor = DatumGetFloat8(SPI_getbinval(row, desc, 4, &isnull));
    out->loyal_min_order_days = DatumGetInt32(SPI_getbinval(row, desc, 5, &isnull));
    out->min_gaps_for_own_cadence = DatumGetInt32(SPI_getbinval(row, desc, 6, &isnull));
  } else {
    rc = SPI_execute(
        "SELECT pg_catalog.string_agg(policy, ', ' ORDER BY policy) FROM cdp.lifecycle_policies", true, 1);
    known[0] = '\0';
    if (rc == SPI_OK_SELECT && SPI_processed == 1) {
      char* list = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
      if (list) strlcpy(known, list, known_size);
    }
  }
  SPI_finish();
  return found;
}

// Interned policies of one function call site for the current query.
struct PolicyTable {
  int count;
  PolicyEntry* entries[64];
};

void check_policy_name(const char* name, std::size_t length) {
  if (length == 0 || length > lc::kMaxPolicyNameLength || std::memchr(name, '\0', length))
    fail(cdp::sqlstate::kUndefinedObject, "lifecycle policy \"" + std::string(name, length) + "\" does not exist",
         "Policy names are 1 to 63 bytes long.");
}

// Reads and checks the policy of a NUL-terminated, checked name; the aggregates' errors when it is
// unknown or not sane.
void load_policy(const char* name, lc::Policy* policy) {
  char known[1024];
  const bool found = pg_call([&] { return fetch_policy(name, policy, known, sizeof known); });
  if (!found)
    fail(cdp::sqlstate::kUndefinedObject, std::string("lifecycle policy \"") + name + "\" does not exist",
         std::string("Known policies: ") + (known[0] ? known : "(none)") + ".",
         "Add a row to cdp.lifecycle_policies or derive one with cdp.fit_lifecycle_policy().");
  lc::check_policy(*policy);
}

const PolicyEntry* resolve_policy(PolicyTable* table, MemoryContext mcxt, const char* name, std::size_t length) {
  check_policy_name(name, length);
  for (int i = 0; i < table->count; ++i)
    if (std::strlen(table->entries[i]->name) == length && std::memcmp(table->entries[i]->name, name, length) == 0)
      return table->entries[i];
  PolicyEntry* entry = pg_call([&] { return static_cast<PolicyEntry*>(MemoryContextAllocZero(mcxt, sizeof(PolicyEntry))); });
  std::memcpy(entry->name, name, length);
  entry->name[length] = '\0';
  load_policy(entry->name, &entry->policy);
  if (table->count < 64) table->entries[table->count++] = entry;  // beyond 64 names: resolved per group
  return entry;
}

// ---- aggregate state ----
struct State {
  std::int32_t* days;  // order days; strictly increasing when `sorted`
  std::int32_t count;
  std::int32_t capacity;
  std::int64_t orders;  // positive-amount rows counted
  TimestampTz first_order_at, last_order_at;
  TimestampTz as_of;  // lifecycle
  std::int32_t as_of_day;
  std::int32_t from_day, to_day, step_months, step_days;  // timeline
  lc::StateKind kind;
  bool sorted;
  const PolicyEntry* policy;
  std::int32_t inline_days[kInlineDays];
};

State* new_state(MemoryContext aggcontext, lc::StateKind kind, const PolicyEntry* policy) {
  State* state = static_cast<State*>(MemoryContextAllocZero(aggcontext, sizeof(State)));
  state->days = state->inline_days;
  state->capacity = kInlineDays;
  state->kind = kind;
  state->sorted = true;
  state->policy = policy;
  return state;
}

void compact(State* state) {
  if (!state->sorted) {
    state->count = static_cast<std::int32_t>(lc::sort_unique(state->days, static_cast<std::size_t>(state->count)));
    state->sorted = true;
  }
}

// Makes room for `needed` days, in the aggregate context; false (nothing allocated) past the
// allocation limit. Never throws, so it may run inside pg_call (a C++ exception thrown inside
// PG_TRY would leave PG_exception_stack pointing into a dead frame).
bool try_reserve(State* state, MemoryContext aggcontext, std::int64_t needed) {
  if (needed <= state->capacity) return true;
  std::int64_t capacity = state->capacity;
  while (capacity < needed) capacity *= 2;
  if (capacity * static_cast<std::int64_t>(sizeof(std::int32_t)) > static_cast<std::int64_t>(MaxAllocSize))
    return false;
  std::int32_t* days = static_cast<std::int32_t*>(
      MemoryContextAlloc(aggcontext, static_cast<std::size_t>(capacity) * sizeof(std::int32_t)));
  std::memcpy(days, state->days, static_cast<std::size_t>(state->count) * sizeof(std::int32_t));
  if (state->days != state->inline_days) pfree(state->days);
  state->days = days;
  state->capacity = static_cast<std::int32_t>(capacity);
  return true;
}

[[noreturn]] void too_many_days() {
  fail(cdp::sqlstate::kProgramLimitExceeded, "too many order days in one lifecycle group");
}

void reserve(State* state, MemoryContext aggcontext, std::int64_t needed) {
  if (!try_reserve(state, aggcontext, needed)) too_many_days();
}

// Transition step for one order. Growth allocates in the context that holds the state (the aggregate's),
// so the hot path needs no AggCheckCallContext per row.
inline void add_order(State* state, TimestampTz ordered_at, std::int32_t day) {
  if (state->orders == 0) {
    state->first_order_at = state->last_order_at = ordered_at;
  } else {
    if (ordered_at < state->first_order_at) state->first_order_at = ordered_at;
    if (ordered_at > state->last_order_at) state->last_order_at = ordered_at;
  }
  ++state->orders;
  if (state->count > 0) {
    const std::int32_t last = state->days[state->count - 1];
    if (day == last) return;
    if (day < last) state->sorted = false;
  }
  if (state->count == state->capacity) {
    compact(state);  // duplicates of an unsorted run go first; grow only when the set itself is large
    if (state->count * 4 >= state->capacity * 3) reserve(state, GetMemoryChunkContext(state), state->capacity + 1);
    if (state->count > 0 && day <= state->days[state->count - 1]) {
      if (day == state->days[state->count - 1]) return;
      state->sorted = false;
    }
  }
  state->days[state->count++] = day;
}

// Per-call-site cache of the transition functions (fn_extra, lives for the query).
struct TransitionCache {
  DayClock clock;
  bool clock_ready;
  PolicyTable policies;
  bool policy_stable;  // the policy argument is a constant for the query
  const PolicyEntry* stable_policy;
  bool as_of_stable;
  bool as_of_ready;
  TimestampTz as_of;
  std::int32_t as_of_day;
  // timeline: the last validated periods
  bool periods_ready;
  std::int32_t from_day, to_day, step_months, step_days;
};

TransitionCache* transition_cache(FunctionCallInfo fcinfo, int policy_arg, int as_of_arg) {
  FmgrInfo* flinfo = fcinfo->flinfo;
  if (flinfo->fn_extra == nullptr) {
    auto* cache = static_cast<TransitionCache*>(MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(TransitionCache)));
    cache->policy_stable = policy_arg >= PG_NARGS() || get_fn_expr_arg_stable(flinfo, policy_arg);
    cache->as_of_stable = as_of_arg >= 0 && get_fn_expr_arg_stable(flinfo, as_of_arg);
    build_clock(&cache->clock, flinfo->fn_mcxt);
    cache->clock_ready = true;
    flinfo->fn_extra = cache;
  }
  return static_cast<TransitionCache*>(flinfo->fn_extra);
}

const PolicyEntry* policy_argument(FunctionCallInfo fcinfo, TransitionCache* cache, int arg) {
  if (cache->policy_stable && cache->stable_policy) return cache->stable_policy;
  const PolicyEntry* entry;
  if (arg >= PG_NARGS()) {  // the overload without a policy argument
    entry = resolve_policy(&cache->policies, fcinfo->flinfo->fn_mcxt, "default", 7);
  } else {
    if (PG_ARGISNULL(arg)) fail(cdp::sqlstate::kNullValueNotAllowed, "lifecycle policy must not be NULL");
    text* name = PG_GETARG_TEXT_PP(arg);
    entry = resolve_policy(&cache->policies, fcinfo->flinfo->fn_mcxt, VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
  }
  if (cache->policy_stable) cache->stable_policy = entry;
  return entry;
}

[[noreturn]] void not_constant(const char* what) {
  fail(cdp::sqlstate::kInvalidParameterValue, std::string(what) + " must be the same for every row of a group");
}

MemoryContext aggregate_context(FunctionCallInfo fcinfo, const char* name) {
  MemoryContext aggcontext;
  if (!AggCheckCallContext(fcinfo, &aggcontext))
    fail(cdp::sqlstate::kObjectNotInPrerequisiteState, std::string(name) + " called in a non-aggregate context");
  return aggcontext;
}

// Whether the amount argument makes the row an order (finite and > 0). NULL is not an order.
inline bool is_order_amount(FunctionCallInfo fcinfo, int arg) {
  if (PG_ARGISNULL(arg)) return false;
  struct varlena* amount = reinterpret_cast<struct varlena*>(PG_GETARG_POINTER(arg));
  if (VARATT_IS_EXTERNAL(amount) || VARATT_IS_COMPRESSED(amount)) amount = pg_detoast_datum_packed(amount);
  return lc::numeric_payload_is_positive(reinterpret_cast<const std::uint8_t*>(VARDATA_ANY(amount)),
                                         VARSIZE_ANY_EXHDR(amount));
}

// ---- finals' caches ----
struct ResultCache {
  TupleDesc tupdesc;      // lifecycle_state, or lifecycle_point for the timeline
  Oid element_type;       // timeline: lifecycle_point
  Datum stage_text[lc::kStageCount];
  // timeline: period ends of the last periods seen
  bool periods_ready;
  std::int32_t from_day, to_day, step_months, step_days;
  std::size_t period_count;
  std::int32_t* period_ends;
  lc::Stage* stages;
};

ResultCache* result_cache(FunctionCallInfo fcinfo, bool timeline) {
  FmgrInfo* flinfo = fcinfo->flinfo;
  if (flinfo->fn_extra == nullptr) {
    MemoryContext old = MemoryContextSwitchTo(flinfo->fn_mcxt);
    auto* cache = static_cast<ResultCache*>(palloc0(sizeof(ResultCache)));
    for (int i = 0; i < lc::kStageCount; ++i)
      cache->stage_text[i] = PointerGetDatum(cstring_to_text(lc::stage_name(static_cast<lc::Stage>(i))));
    Oid rettype = get_func_rettype(flinfo->fn_oid);
    if (timeline) {
      cache->element_type = get_element_type(rettype);
      cache->tupdesc = BlessTupleDesc(lookup_rowtype_tupdesc_copy(cache->element_type, -1));
      cache->period_ends = static_cast<std::int32_t*>(palloc(sizeof(std::int32_t) * lc::kMaxTimelinePeriods));
      cache->stages = static_cast<lc::Stage*>(palloc(sizeof(lc::Stage) * lc::kMaxTimelinePeriods));
    } else if (rettype != TEXTOID) {
      cache->tupdesc = BlessTupleDesc(lookup_rowtype_tupdesc_copy(rettype, -1));
    }
    MemoryContextSwitchTo(old);
    flinfo->fn_extra = cache;
  }
  return static_cast<ResultCache*>(flinfo->fn_extra);
}

State* copy_state(const State* from, MemoryContext aggcontext) {
  State* state = static_cast<State*>(MemoryContextAlloc(aggcontext, sizeof(State)));
  *state = *from;
  state->days = state->inline_days;
  state->capacity = kInlineDays;
  state->count = 0;  // nothing for reserve() to carry over
  reserve(state, aggcontext, from->count);
  std::memcpy(state->days, from->days, static_cast<std::size_t>(from->count) * sizeof(std::int32_t));
  state->count = from->count;
  return state;
}

bool same_group_settings(const State* a, const State* b) {
  if (a->kind != b->kind || std::strcmp(a->policy->name, b->policy->name) != 0) return false;
  if (a->kind == lc::StateKind::kLifecycle) return a->as_of == b->as_of;
  return a->from_day == b->from_day && a->to_day == b->to_day && a->step_months == b->step_months &&
         a->step_days == b->step_days;
}

}  // namespace

extern "C" {
PG_FUNCTION_INFO_V1(cdp_lifecycle_transfn);
PG_FUNCTION_INFO_V1(cdp_lifecycle_timeline_transfn);
PG_FUNCTION_INFO_V1(cdp_lifecycle_combinefn);
PG_FUNCTION_INFO_V1(cdp_lifecycle_serializefn);
PG_FUNCTION_INFO_V1(cdp_lifecycle_deserializefn);
PG_FUNCTION_INFO_V1(cdp_lifecycle_timeline_deserializefn);
PG_FUNCTION_INFO_V1(cdp_lifecycle_finalfn);
PG_FUNCTION_INFO_V1(cdp_lifecycle_stage_finalfn);
PG_FUNCTION_INFO_V1(cdp_lifecycle_timeline_finalfn);
}

// (state, ordered_at timestamptz, amount numeric, as_of timestamptz, policy text)
Datum cdp_lifecycle_transfn(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    TransitionCache* cache = transition_cache(fcinfo, 4, 3);
    State* state = PG_ARGISNULL(0) ? nullptr : reinterpret_cast<State*>(PG_GETARG_POINTER(0));
    if (PG_ARGISNULL(3))
      fail(cdp::sqlstate::kNullValueNotAllowed, "as_of must not be NULL",
           "Stages are judged as of a given instant, for example now() or a month end.");
    const TimestampTz as_of = PG_GETARG_TIMESTAMPTZ(3);
    if (state == nullptr) {
      if (TIMESTAMP_NOT_FINITE(as_of)) fail(cdp::sqlstate::kInvalidParameterValue, "as_of must be finite");
      const PolicyEntry* policy = policy_argument(fcinfo, cache, 4);
      std::int32_t as_of_day;
      if (cache->as_of_stable && cache->as_of_ready) {
        as_of_day = cache->as_of_day;
      } else {
        as_of_day = local_day(&cache->clock, as_of);
        cache->as_of = as_of;
        cache->as_of_day = as_of_day;
        cache->as_of_ready = true;
      }
      state = new_state(aggregate_context(fcinfo, "cdp.lifecycle"), lc::StateKind::kLifecycle, policy);
      state->as_of = as_of;
      state->as_of_day = as_of_day;
    } else {
      if (!cache->as_of_stable && as_of != state->as_of) not_constant("as_of");
      if (!cache->policy_stable) {
        if (PG_ARGISNULL(4)) fail(cdp::sqlstate::kNullValueNotAllowed, "lifecycle policy must not be NULL");
        text* name = PG_GETARG_TEXT_PP(4);
        const std::size_t length = VARSIZE_ANY_EXHDR(name);
        if (std::strlen(state->policy->name) != length || std::memcmp(state->policy->name, VARDATA_ANY(name), length))
          not_constant("policy");
      }
    }
    if (PG_ARGISNULL(1)) return PointerGetDatum(state);
    const TimestampTz ordered_at = PG_GETARG_TIMESTAMPTZ(1);
    if (ordered_at > state->as_of) return PointerGetDatum(state);  // includes +infinity
    if (TIMESTAMP_IS_NOBEGIN(ordered_at))
      fail("22008", "ordered_at must not be -infinity");
    if (!is_order_amount(fcinfo, 2)) return PointerGetDatum(state);
    add_order(state, ordered_at, local_day(&cache->clock, ordered_at));
    return PointerGetDatum(state);
  });
}

// (state, ordered_at timestamptz, amount numeric, from_date date, to_date date, step interval, policy text)
Datum cdp_lifecycle_timeline_transfn(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    TransitionCache* cache = transition_cache(fcinfo, 6, -1);
    State* state = PG_ARGISNULL(0) ? nullptr : reinterpret_cast<State*>(PG_GETARG_POINTER(0));
    if (PG_ARGISNULL(3) || PG_ARGISNULL(4) || PG_ARGISNULL(5))
      fail(cdp::sqlstate::kNullValueNotAllowed, "from_date, to_date and step must not be NULL");
    const DateADT from = PG_GETARG_DATEADT(3), to = PG_GETARG_DATEADT(4);
    const Interval* step = PG_GETARG_INTERVAL_P(5);
    if (state == nullptr) {
      if (DATE_NOT_FINITE(from) || DATE_NOT_FINITE(to))
        fail(cdp::sqlstate::kInvalidParameterValue, "from_date and to_date must be finite");
      if (step->time != 0)
        fail(cdp::sqlstate::kInvalidParameterValue, "step must be a positive number of days or months",
             "Steps with hours, minutes or seconds are not allowed: stages change once a day.");
      if (!(cache->periods_ready && cache->from_day == from && cache->to_day == to &&
            cache->step_months == step->month && cache->step_days == step->day)) {
        std::int32_t* scratch = static_cast<std::int32_t*>(
            MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(std::int32_t) * lc::kMaxTimelinePeriods));
        lc::period_ends(from, to, step->month, step->day, scratch);  // validates; throws on bad periods
        pfree(scratch);
        cache->from_day = from;
        cache->to_day = to;
        cache->step_months = step->month;
        cache->step_days = step->day;
        cache->periods_ready = true;
      }
      const PolicyEntry* policy = policy_argument(fcinfo, cache, 6);
      state = new_state(aggregate_context(fcinfo, "cdp.lifecycle_timeline"), lc::StateKind::kTimeline, policy);
      state->from_day = from;
      state->to_day = to;
      state->step_months = step->month;
      state->step_days = step->day;
    } else {
      if (from != state->from_day || to != state->to_day || step->month != state->step_months ||
          step->day != state->step_days || step->time != 0)
        not_constant("from_date, to_date and step");
      if (!cache->policy_stable) {
        if (PG_ARGISNULL(6)) fail(cdp::sqlstate::kNullValueNotAllowed, "lifecycle policy must not be NULL");
        text* name = PG_GETARG_TEXT_PP(6);
        const std::size_t length = VARSIZE_ANY_EXHDR(name);
        if (std::strlen(state->policy->name) != length || std::memcmp(state->policy->name, VARDATA_ANY(name), length))
          not_constant("policy");
      }
    }
    if (PG_ARGISNULL(1)) return PointerGetDatum(state);
    const TimestampTz ordered_at = PG_GETARG_TIMESTAMPTZ(1);
    if (TIMESTAMP_IS_NOEND(ordered_at)) return PointerGetDatum(state);  // after every period
    if (TIMESTAMP_IS_NOBEGIN(ordered_at)) fail("22008", "ordered_at must not be -infinity");
    const std::int32_t day = local_day(&cache->clock, ordered_at);
    if (day > state->to_day) return PointerGetDatum(state);
    if (!is_order_amount(fcinfo, 2)) return PointerGetDatum(state);
    add_order(state, ordered_at, day);
    return PointerGetDatum(state);
  });
}

Datum cdp_lifecycle_combinefn(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    MemoryContext aggcontext = aggregate_context(fcinfo, "cdp.lifecycle combine");
    State* left = PG_ARGISNULL(0) ? nullptr : reinterpret_cast<State*>(PG_GETARG_POINTER(0));
    State* right = PG_ARGISNULL(1) ? nullptr : reinterpret_cast<State*>(PG_GETARG_POINTER(1));
    if (right == nullptr) {
      if (left == nullptr) PG_RETURN_NULL();
      return PointerGetDatum(left);
    }
    if (left == nullptr) return PointerGetDatum(copy_state(right, aggcontext));
    if (!same_group_settings(left, right))
      fail(cdp::sqlstate::kInvalidParameterValue,
           "as_of, policy and timeline periods must be the same for every row of a group");
    compact(left);
    compact(right);
    if (right->count > 0) {
      if (left->count == 0 || left->days[left->count - 1] < right->days[0]) {  // common: disjoint, in order
        reserve(left, aggcontext, static_cast<std::int64_t>(left->count) + right->count);
        std::memcpy(left->days + left->count, right->days, static_cast<std::size_t>(right->count) * sizeof(std::int32_t));
        left->count += right->count;
      } else {
        const std::int64_t total = static_cast<std::int64_t>(left->count) + right->count;
        std::int32_t* merged =
            static_cast<std::int32_t*>(MemoryContextAlloc(aggcontext, static_cast<std::size_t>(total) * sizeof(std::int32_t)));
        const std::size_t count = lc::merge_unique(left->days, static_cast<std::size_t>(left->count), right->days,
                                                   static_cast<std::size_t>(right->count), merged);
        if (left->days != left->inline_days) pfree(left->days);
        left->days = merged;
        left->capacity = static_cast<std::int32_t>(total);
        left->count = static_cast<std::int32_t>(count);
      }
    }
    if (right->orders > 0) {
      if (left->orders == 0 || right->first_order_at < left->first_order_at) left->first_order_at = right->first_order_at;
      if (left->orders == 0 || right->last_order_at > left->last_order_at) left->last_order_at = right->last_order_at;
      left->orders += right->orders;
    }
    return PointerGetDatum(left);
  });
}

Datum cdp_lifecycle_serializefn(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    aggregate_context(fcinfo, "cdp.lifecycle serialize");
    State* state = reinterpret_cast<State*>(PG_GETARG_POINTER(0));
    compact(state);
    lc::StateHeader header;
    header.kind = state->kind;
    header.as_of = state->as_of;
    header.as_of_day = state->as_of_day;
    header.from_day = state->from_day;
    header.to_day = state->to_day;
    header.step_months = state->step_months;
    header.step_days = state->step_days;
    header.orders = state->orders;
    header.first_order_at = state->first_order_at;
    header.last_order_at = state->last_order_at;
    header.policy = state->policy->name;
    const std::size_t size = lc::serialized_size(header, static_cast<std::size_t>(state->count));
    bytea* result = pg_call([&] { return static_cast<bytea*>(palloc(VARHDRSZ + size)); });
    SET_VARSIZE(result, VARHDRSZ + size);
    lc::serialize_state(header, state->days, static_cast<std::size_t>(state->count),
                        reinterpret_cast<std::uint8_t*>(VARDATA(result)));
    return PointerGetDatum(result);
  });
}

namespace {
Datum deserialize(FunctionCallInfo fcinfo, lc::StateKind kind) {
  MemoryContext aggcontext = aggregate_context(fcinfo, "cdp.lifecycle deserialize");
  bytea* bytes = PG_GETARG_BYTEA_PP(0);
  // Everything below holds plain data only until the policy name is resolved.
  const lc::ParsedState parsed =
      lc::parse_state(reinterpret_cast<const std::uint8_t*>(VARDATA_ANY(bytes)), VARSIZE_ANY_EXHDR(bytes), kind);
  FmgrInfo* flinfo = fcinfo->flinfo;
  if (flinfo->fn_extra == nullptr)
    flinfo->fn_extra = pg_call([&] { return MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(PolicyTable)); });
  const PolicyEntry* policy = resolve_policy(static_cast<PolicyTable*>(flinfo->fn_extra), flinfo->fn_mcxt,
                                             parsed.header.policy.data(), parsed.header.policy.size());
  State* state = pg_call([&] { return new_state(aggcontext, kind, policy); });
  const lc::StateHeader& h = parsed.header;
  state->as_of = h.as_of;
  state->as_of_day = h.as_of_day;
  state->from_day = h.from_day;
  state->to_day = h.to_day;
  state->step_months = h.step_months;
  state->step_days = h.step_days;
  state->orders = h.orders;
  state->first_order_at = h.first_order_at;
  state->last_order_at = h.last_order_at;
  if (!pg_call([&] { return try_reserve(state, aggcontext, static_cast<std::int64_t>(parsed.day_count)); }))
    too_many_days();
  lc::read_days(parsed, state->days);
  state->count = static_cast<std::int32_t>(parsed.day_count);
  return PointerGetDatum(state);
}
}  // namespace

Datum cdp_lifecycle_deserializefn(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum { return deserialize(fcinfo, lc::StateKind::kLifecycle); });
}

Datum cdp_lifecycle_timeline_deserializefn(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum { return deserialize(fcinfo, lc::StateKind::kTimeline); });
}

Datum cdp_lifecycle_finalfn(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    aggregate_context(fcinfo, "cdp.lifecycle");
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    State* state = reinterpret_cast<State*>(PG_GETARG_POINTER(0));
    ResultCache* cache = result_cache(fcinfo, false);
    compact(state);  // keeps the value; sorting is idempotent
    const lc::Outcome outcome = lc::outcome(state->days, static_cast<std::size_t>(state->count), state->as_of_day,
                                            state->last_order_at, state->policy->policy);
    const lc::Assessment& a = outcome.assessment;
    // Field order of cdp.lifecycle_state.
    enum { kOrders, kOrderDays, kFirst, kLast, kDaysSince, kRatio, kCadence, kExpected, kSince, kTypical, kStage, kFields };
    Datum values[kFields];
    bool nulls[kFields] = {false};
    const bool prospect = a.stage == lc::Stage::kProspect;
    values[kOrders] = Int64GetDatum(state->orders);
    values[kOrderDays] = Int32GetDatum(a.order_days);
    values[kFirst] = TimestampTzGetDatum(state->first_order_at);
    values[kLast] = TimestampTzGetDatum(state->last_order_at);
    values[kDaysSince] = Int32GetDatum(a.days_since_last);
    values[kRatio] = Float8GetDatum(a.overdue_ratio);
    values[kCadence] = Float8GetDatum(a.cadence_days);
    values[kExpected] = (Datum)0;
    values[kSince] = DateADTGetDatum(a.stage_since_day);
    values[kTypical] = Float8GetDatum(a.typical_gap_days);
    values[kStage] = cache->stage_text[static_cast<int>(a.stage)];
    if (prospect) {
      for (int i = kFirst; i <= kTypical; ++i) nulls[i] = true;
    } else {
      nulls[kTypical] = !a.has_typical_gap;
      nulls[kExpected] = !outcome.has_expected_next;
      if (outcome.has_expected_next) values[kExpected] = TimestampTzGetDatum(outcome.expected_next_order_at);
    }
    HeapTuple tuple = heap_form_tuple(cache->tupdesc, values, nulls);
    return HeapTupleGetDatum(tuple);
  });
}

Datum cdp_lifecycle_stage_finalfn(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    aggregate_context(fcinfo, "cdp.lifecycle_stage");
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    State* state = reinterpret_cast<State*>(PG_GETARG_POINTER(0));
    ResultCache* cache = result_cache(fcinfo, false);
    compact(state);
    const lc::Stage stage =
        lc::stage_of(state->days, static_cast<std::size_t>(state->count), state->as_of_day, state->policy->policy);
    return cache->stage_text[static_cast<int>(stage)];
  });
}

Datum cdp_lifecycle_timeline_finalfn(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    aggregate_context(fcinfo, "cdp.lifecycle_timeline");
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    State* state = reinterpret_cast<State*>(PG_GETARG_POINTER(0));
    ResultCache* cache = result_cache(fcinfo, true);
    if (!(cache->periods_ready && cache->from_day == state->from_day && cache->to_day == state->to_day &&
          cache->step_months == state->step_months && cache->step_days == state->step_days)) {
      cache->period_count =
          lc::period_ends(state->from_day, state->to_day, state->step_months, state->step_days, cache->period_ends);
      cache->from_day = state->from_day;
      cache->to_day = state->to_day;
      cache->step_months = state->step_months;
      cache->step_days = state->step_days;
      cache->periods_ready = true;
    }
    compact(state);
    lc::timeline(state->days, static_cast<std::size_t>(state->count), cache->period_ends, cache->period_count,
                 state->policy->policy, cache->stages);
    const std::size_t n = cache->period_count;
    Datum* points = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    for (std::size_t i = 0; i < n; ++i) {
      Datum values[2] = {DateADTGetDatum(cache->period_ends[i]), cache->stage_text[static_cast<int>(cache->stages[i])]};
      bool nulls[2] = {false, false};
      points[i] = HeapTupleGetDatum(heap_form_tuple(cache->tupdesc, values, nulls));
    }
    ArrayType* array = construct_array(points, static_cast<int>(n), cache->element_type, -1, false, TYPALIGN_DOUBLE);
    PG_RETURN_ARRAYTYPE_P(array);
  });
}

cdp::lifecycle::Policy cdp::pg::lifecycle_policy(const char* name, std::size_t length) {
  check_policy_name(name, length);
  char terminated[lc::kMaxPolicyNameLength + 1];
  std::memcpy(terminated, name, length);
  terminated[length] = '\0';
  lc::Policy policy;
  load_policy(terminated, &policy);
  return policy;
}
