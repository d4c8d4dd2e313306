// cdp.rfm_agg(ordered_at timestamptz, amount numeric) -> cdp.rfm_stats: transition, combine,
// serialize, deserialize and final functions. The state is cdp::rfm::OrderStats, a plain struct
// allocated in the aggregate's memory context; the rules live in src/core/rfm_stats.cpp.
#include "pg/boundary.h"

#include "core/rfm_stats.h"

#include <new>

using cdp::rfm::OrderStats;

extern "C" {
PG_FUNCTION_INFO_V1(cdp_rfm_agg_transition);
PG_FUNCTION_INFO_V1(cdp_rfm_agg_combine);
PG_FUNCTION_INFO_V1(cdp_rfm_agg_serialize);
PG_FUNCTION_INFO_V1(cdp_rfm_agg_deserialize);
PG_FUNCTION_INFO_V1(cdp_rfm_agg_final);
Datum cdp_rfm_agg_transition(PG_FUNCTION_ARGS);
Datum cdp_rfm_agg_combine(PG_FUNCTION_ARGS);
Datum cdp_rfm_agg_serialize(PG_FUNCTION_ARGS);
Datum cdp_rfm_agg_deserialize(PG_FUNCTION_ARGS);
Datum cdp_rfm_agg_final(PG_FUNCTION_ARGS);
}

namespace {

MemoryContext aggregate_context(FunctionCallInfo fcinfo, const char* function) {
  MemoryContext context = nullptr;
  if (!AggCheckCallContext(fcinfo, &context))
    cdp::pg::fail(cdp::sqlstate::kObjectNotInPrerequisiteState,
                  std::string(function) + " can only be called by the cdp.rfm_agg aggregate");
  return context;
}

// palloc aligns to 8 bytes; the state holds __int128 (16-byte aligned), so over-allocate and align.
OrderStats* new_state(MemoryContext context, const OrderStats& value) {
  void* memory = cdp::pg::pg_call([&] { return MemoryContextAlloc(context, sizeof(OrderStats) + alignof(OrderStats)); });
  const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(memory);
  const std::uintptr_t aligned = (address + alignof(OrderStats) - 1) & ~(std::uintptr_t{alignof(OrderStats)} - 1);
  return new (reinterpret_cast<void*>(aligned)) OrderStats(value);
}

}  // namespace

// Rows with a NULL ordered_at or amount are ignored (like sum()); NaN/Infinity amounts and an ordered_at of
// -infinity are errors.
Datum cdp_rfm_agg_transition(PG_FUNCTION_ARGS) {
  return cdp::pg::guarded([&]() -> Datum {
    MemoryContext context = aggregate_context(fcinfo, "cdp.rfm_agg_transition");
    OrderStats* state = PG_ARGISNULL(0) ? nullptr : reinterpret_cast<OrderStats*>(PG_GETARG_POINTER(0));
    if (PG_ARGISNULL(1) || PG_ARGISNULL(2)) {
      if (state == nullptr) PG_RETURN_NULL();
      PG_RETURN_POINTER(state);
    }
    const TimestampTz ordered_at = PG_GETARG_TIMESTAMPTZ(1);
    const Datum amount_datum = PG_GETARG_DATUM(2);
    // Short numerics are read in place; only a toasted one is copied (per-row context, reset by nodeAgg).
    struct varlena* amount = cdp::pg::pg_call(
        [&] { return pg_detoast_datum_packed(reinterpret_cast<struct varlena*>(DatumGetPointer(amount_datum))); });
    const cdp::Decimal value = cdp::rfm::amount_from_numeric(
        reinterpret_cast<const std::uint8_t*>(VARDATA_ANY(amount)), VARSIZE_ANY_EXHDR(amount));
    if (state == nullptr) state = new_state(context, OrderStats{});
    cdp::rfm::add_order(*state, ordered_at, value);
    PG_RETURN_POINTER(state);
  });
}

// Non-strict: a NULL left state takes a copy of the right one in the aggregate context, because
// the right state may live in a shorter-lived context (e.g. just deserialized).
Datum cdp_rfm_agg_combine(PG_FUNCTION_ARGS) {
  return cdp::pg::guarded([&]() -> Datum {
    MemoryContext context = aggregate_context(fcinfo, "cdp.rfm_agg_combine");
    OrderStats* left = PG_ARGISNULL(0) ? nullptr : reinterpret_cast<OrderStats*>(PG_GETARG_POINTER(0));
    const OrderStats* right = PG_ARGISNULL(1) ? nullptr : reinterpret_cast<OrderStats*>(PG_GETARG_POINTER(1));
    if (right == nullptr) {
      if (left == nullptr) PG_RETURN_NULL();
      PG_RETURN_POINTER(left);
    }
    if (left == nullptr) PG_RETURN_POINTER(new_state(context, *right));
    cdp::rfm::merge(*left, *right);
    PG_RETURN_POINTER(left);
  });
}

Datum cdp_rfm_agg_serialize(PG_FUNCTION_ARGS) {
  return cdp::pg::guarded([&]() -> Datum {
    aggregate_context(fcinfo, "cdp.rfm_agg_serialize");
    const OrderStats* state = reinterpret_cast<OrderStats*>(PG_GETARG_POINTER(0));
    std::uint8_t bytes[cdp::rfm::kSerializedSize];
    cdp::rfm::serialize(*state, bytes);
    bytea* result = cdp::pg::pg_call([&] { return static_cast<bytea*>(palloc(VARHDRSZ + sizeof bytes)); });
    SET_VARSIZE(result, VARHDRSZ + sizeof bytes);
    std::memcpy(VARDATA(result), bytes, sizeof bytes);
    PG_RETURN_BYTEA_P(result);
  });
}

// Validates the bytes (length, version, consistency): corrupt input is ERROR 22P03, never a crash.
Datum cdp_rfm_agg_deserialize(PG_FUNCTION_ARGS) {
  return cdp::pg::guarded([&]() -> Datum {
    aggregate_context(fcinfo, "cdp.rfm_agg_deserialize");
    const bytea* bytes = cdp::pg::pg_call([&] { return PG_GETARG_BYTEA_PP(0); });
    const OrderStats stats = cdp::rfm::deserialize(reinterpret_cast<const std::uint8_t*>(VARDATA_ANY(bytes)),
                                                   VARSIZE_ANY_EXHDR(bytes));
    PG_RETURN_POINTER(new_state(CurrentMemoryContext, stats));
  });
}

namespace {

// Builds the cdp.rfm_stats row. Plain C: called through pg_call with no C++ object of its own.
Datum form_stats_row(FunctionCallInfo fcinfo, const OrderStats* stats, const std::string* monetary,
                     const std::string* positive_total) {
  // The row type's descriptor is looked up once per query, not once per group.
  TupleDesc tupdesc = static_cast<TupleDesc>(fcinfo->flinfo->fn_extra);
  if (tupdesc == nullptr) {
    TupleDesc found;
    if (get_call_result_type(fcinfo, nullptr, &found) != TYPEFUNC_COMPOSITE)
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("cdp.rfm_agg_final must return cdp.rfm_stats")));
    MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
    tupdesc = BlessTupleDesc(CreateTupleDescCopy(found));
    MemoryContextSwitchTo(old);
    fcinfo->flinfo->fn_extra = tupdesc;
  }
  auto to_numeric = [](const std::string* payload) {
    struct varlena* value = static_cast<struct varlena*>(palloc(VARHDRSZ + payload->size()));
    SET_VARSIZE(value, VARHDRSZ + payload->size());
    std::memcpy(VARDATA(value), payload->data(), payload->size());
    return PointerGetDatum(value);
  };
  Datum values[5];
  bool nulls[5] = {false, false, false, false, false};
  const bool has_orders = stats->orders > 0;
  values[0] = TimestampTzGetDatum(stats->first_order_at);
  values[1] = TimestampTzGetDatum(stats->last_order_at);
  nulls[0] = nulls[1] = !has_orders;
  values[2] = Int64GetDatum(stats->orders);
  values[3] = to_numeric(monetary);
  if (has_orders)  // PostgreSQL's own numeric division: the same as sum(amount) / count(*) over positive rows
    values[4] = DirectFunctionCall2(numeric_div, to_numeric(positive_total), NumericGetDatum(int64_to_numeric(stats->orders)));
  else
    values[4] = (Datum)0;
  nulls[4] = !has_orders;
  return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

}  // namespace

// NULL when no row was folded in; first/last order and the average order value are NULL when
// there are rows but no positive order (only refunds or zero amounts).
Datum cdp_rfm_agg_final(PG_FUNCTION_ARGS) {
  return cdp::pg::guarded([&]() -> Datum {
    aggregate_context(fcinfo, "cdp.rfm_agg_final");
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    const OrderStats* stats = reinterpret_cast<OrderStats*>(PG_GETARG_POINTER(0));
    const std::string monetary = cdp::encode_numeric(stats->monetary);
    const std::string positive_total = cdp::encode_numeric(stats->positive_total);
    return cdp::pg::pg_call([&] { return form_stats_row(fcinfo, stats, &monetary, &positive_total); });
  });
}
