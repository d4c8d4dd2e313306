// cdp.profile_write_snapshot(people_query text, bins integer, cell_segments text[]):
// the scoring and writing half of CALL cdp.refresh_profiles (src/sql/40_profiles.sql).
//
// The procedure builds one query returning the snapshot's rows (the columns of cdp.profile_snapshots
// in order, r/f/m/rfm_segment still NULL): the orders grouped by person with cdp.rfm_agg and
// cdp.lifecycle. This function runs it once through SPI into a DestReceiver that keeps the rows in a
// tuplestore (memory up to maintenance_work_mem, then a temporary file) and the values scoring needs
// in compact arrays; scores r, f and m over all persons with the core rule of cdp.rfm_score (one index
// sort per dimension instead of three window functions); names each (r, f, m) cell's segment; appends
// the rows to cdp.profile_snapshots through cdp::pg::BulkAppender (multi-insert, as COPY) — or plain
// INSERTs when that path does not apply — and returns the totals per segment and per stage (plus one
// row, dimension 'all', for the whole snapshot) without re-reading what it wrote.
//
// Error boundary: the receiver runs inside the executor, so it holds no C++ object: C++ work happens in
// a noexcept helper that records any exception and stops the scan; the error is raised once SPI has
// returned. Everything else calls PostgreSQL through pg_call.
#include "pg/boundary.h"
#include "pg/bulk_append.h"

#include "core/decimal.h"
#include "core/profiles.h"

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

// Columns of cdp.profile_snapshots (and of the people query), 0-based.
enum SnapshotColumn {
  kAsOf = 0, kPersonKey, kPersonId, kOrders, kMonetary, kAverageOrderValue, kRecencyDays, kR, kF, kM,
  kRfmSegment, kLifecycleStage, kCadenceDays, kExpectedNextOrderAt, kOverdueRatio, kStageSince,
  kFirstOrderAt, kLastOrderAt, kIdentifiers, kSources, kSnapshotColumns
};
const Oid kSnapshotTypes[kSnapshotColumns] = {
    TIMESTAMPTZOID, TEXTOID,   INT8OID,   INT8OID,        NUMERICOID, NUMERICOID,     INT4OID,
    INT4OID,        INT4OID,   INT4OID,   TEXTOID,        TEXTOID,    FLOAT8OID,      TIMESTAMPTZOID,
    FLOAT8OID,      DATEOID,   TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID, INT4OID};
const SnapshotColumn kNotNull[] = {kAsOf, kPersonKey, kOrders, kMonetary, kLifecycleStage, kIdentifiers, kSources};
const char* const kColumnNames[kSnapshotColumns] = {
    "as_of", "person_key", "person_id", "orders", "monetary", "average_order_value", "recency_days", "r", "f", "m",
    "rfm_segment", "lifecycle_stage", "cadence_days", "expected_next_order_at", "overdue_ratio", "stage_since",
    "first_order_at", "last_order_at", "identifiers", "sources"};

constexpr std::int32_t kNoRecency = INT32_MIN;

// What scoring and the totals need of each person, index-aligned with the tuplestore's rows.
struct People {
  std::vector<std::int32_t> recency_days;  // kNoRecency: not scored (no positive order)
  std::vector<std::int64_t> orders;
  std::vector<__int128> monetary_units;    // monetary = units * 10^-scale
  std::vector<std::int8_t> monetary_scale;
  std::vector<std::uint8_t> stage;         // index into stage_names
  std::vector<bool> attributed;            // person_id is not NULL
  std::vector<std::string> stage_names;
  cdp::MemoryBudget* budget;
  std::size_t size() const { return orders.size(); }
};
constexpr std::size_t kBytesPerPerson = 4 + 8 + 16 + 1 + 1 + 1 + 3 /* scores */;

struct Receiver {
  DestReceiver base;
  People* people;
  Tuplestorestate* store;
  cdp::pg::CapturedError error;  // an exception of a callback, rethrown after the scan
};



// The C++ part of one person. Never throws: records the error instead.
bool keep_person(Receiver* receiver, bool has_recency, std::int32_t recency_days, std::int64_t orders,
                 const std::uint8_t* monetary, std::size_t monetary_length, bool attributed, const char* stage,
                 std::size_t stage_length) noexcept {
  try {
    People& people = *receiver->people;
    people.budget->charge(kBytesPerPerson);
    const cdp::DecodedNumeric decoded = cdp::decode_numeric(monetary, monetary_length);
    if (decoded.kind != cdp::NumericKind::kFinite)
      throw cdp::Error(cdp::sqlstate::kInvalidParameterValue, "cdp.refresh_profiles: a person's monetary is not finite");
    std::size_t stage_index = 0;
    while (stage_index < people.stage_names.size() &&
           people.stage_names[stage_index].compare(0, std::string::npos, stage, stage_length) != 0)
      ++stage_index;
    if (stage_index == people.stage_names.size()) {
      if (stage_index > UINT8_MAX)
        throw cdp::Error(cdp::sqlstate::kInternalError, "cdp.refresh_profiles: more than 255 lifecycle stages");
      people.stage_names.emplace_back(stage, stage_length);
    }
    people.recency_days.push_back(has_recency ? recency_days : kNoRecency);
    people.orders.push_back(orders);
    people.monetary_units.push_back(decoded.value.units());
    people.monetary_scale.push_back(static_cast<std::int8_t>(decoded.value.scale()));
    people.stage.push_back(static_cast<std::uint8_t>(stage_index));
    people.attributed.push_back(attributed);
    return true;
  } catch (...) {
    receiver->error.capture_current("cdp.refresh_profiles");
    return false;
  }
}

// Executor callback, plain C: PostgreSQL errors here unwind to the pg_call around the SPI call.
bool receive_person(TupleTableSlot* slot, DestReceiver* self) {
  Receiver* receiver = reinterpret_cast<Receiver*>(self);
  slot_getallattrs(slot);
  for (SnapshotColumn column : kNotNull)  // the bulk path bypasses the table's NOT NULL checks
    if (slot->tts_isnull[column])
      ereport(ERROR, (errcode(ERRCODE_NOT_NULL_VIOLATION),
                      errmsg("null value in column \"%s\" of relation \"profile_snapshots\" violates not-null constraint",
                             kColumnNames[column])));
  tuplestore_puttupleslot(receiver->store, slot);
  struct varlena* raw = reinterpret_cast<struct varlena*>(DatumGetPointer(slot->tts_values[kMonetary]));
  struct varlena* monetary = pg_detoast_datum_packed(raw);
  struct varlena* stage = pg_detoast_datum_packed(
      reinterpret_cast<struct varlena*>(DatumGetPointer(slot->tts_values[kLifecycleStage])));
  const bool has_recency = !slot->tts_isnull[kRecencyDays];
  return keep_person(receiver, has_recency, has_recency ? DatumGetInt32(slot->tts_values[kRecencyDays]) : 0,
                     DatumGetInt64(slot->tts_values[kOrders]),
                     reinterpret_cast<const std::uint8_t*>(VARDATA_ANY(monetary)), VARSIZE_ANY_EXHDR(monetary),
                     !slot->tts_isnull[kPersonId], VARDATA_ANY(stage), VARSIZE_ANY_EXHDR(stage));
}

// The people query must return exactly the snapshot's columns.
void receiver_startup(DestReceiver*, int, TupleDesc result) {
  bool ok = result->natts == kSnapshotColumns;
  for (int c = 0; ok && c < kSnapshotColumns; ++c) ok = TupleDescAttr(result, c)->atttypid == kSnapshotTypes[c];
  if (!ok) elog(ERROR, "cdp.profile_write_snapshot: the people query does not return the columns of cdp.profile_snapshots");
}
void receiver_shutdown(DestReceiver*) {}
void receiver_destroy(DestReceiver*) {}

void run_people_query(const char* query, Receiver* receiver) {
  SPIExecuteOptions options;
  std::memset(&options, 0, sizeof options);
  options.read_only = false;
  options.dest = &receiver->base;
  const int rc = SPI_execute_extended(query, &options);
  if (rc < 0) elog(ERROR, "cdp.profile_write_snapshot: the people query failed: %s", SPI_result_code_string(rc));
}

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

// -1 for NULL, else the index of the cell's name.
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
  void add(std::int64_t person_orders, const cdp::Decimal& monetary, std::int32_t recency, bool attributed) {
    ++customers;
    revenue += monetary;
    orders += person_orders;
    if (recency != kNoRecency) {
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

Datum numeric_datum(const cdp::Decimal& value) {
  const std::string payload = cdp::encode_numeric(value);
  return pg_call([&] {
    struct varlena* datum = static_cast<struct varlena*>(palloc(VARHDRSZ + payload.size()));
    SET_VARSIZE(datum, VARHDRSZ + payload.size());
    std::memcpy(VARDATA(datum), payload.data(), payload.size());
    return PointerGetDatum(datum);
  });
}

}  // namespace

Datum cdp_profile_write_snapshot(PG_FUNCTION_ARGS) {
  return cdp::pg::guarded([&]() -> Datum {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))  // the function is STRICT; belt and braces
      cdp::pg::fail(cdp::sqlstate::kNullValueNotAllowed,
                    "cdp.profile_write_snapshot: people_query, bins and cell_segments must not be NULL");
    const int bins = PG_GETARG_INT32(1);
    cdp::rfm::check_bins(bins);
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    struct Setup {
      char* query;
      MemoryContext work;
      Tuplestorestate* people_rows;
      TupleDesc result_desc;
      Tuplestorestate* totals;
      ArrayType* cells;
    };
    const Setup setup = pg_call([&]() -> Setup {
      if (rsinfo == nullptr || !IsA(rsinfo, ReturnSetInfo) || (rsinfo->allowedModes & SFRM_Materialize) == 0)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("cdp.profile_write_snapshot returns a set")));
      Setup s;
      s.query = text_to_cstring(PG_GETARG_TEXT_PP(0));
      s.cells = PG_GETARG_ARRAYTYPE_P(2);
      MemoryContext per_query = rsinfo->econtext->ecxt_per_query_memory;
      MemoryContext old = MemoryContextSwitchTo(per_query);
      TupleDesc desc;
      if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "cdp.profile_write_snapshot must return a row type");
      s.result_desc = CreateTupleDescCopy(desc);
      s.totals = tuplestore_begin_heap(false, false, work_mem);
      s.work = AllocSetContextCreate(CurrentMemoryContext, "cdp.refresh_profiles", ALLOCSET_DEFAULT_SIZES);
      MemoryContextSwitchTo(s.work);
      s.people_rows = tuplestore_begin_heap(false, false, maintenance_work_mem);
      MemoryContextSwitchTo(old);
      if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "cdp.profile_write_snapshot: SPI_connect failed");
      return s;
    });

    cdp::MemoryBudget budget(cdp::pg::kilobytes(maintenance_work_mem), "maintenance_work_mem");
    cdp::Interrupts interrupts([] { cdp::pg::check_for_interrupts(); });

    using Clock = std::chrono::steady_clock;
    const Clock::time_point started = Clock::now();
    auto seconds_since = [](Clock::time_point from) { return std::chrono::duration<double>(Clock::now() - from).count(); };

    // 1. The persons: rows into the tuplestore, scoring values into People.
    People people;
    people.budget = &budget;
    Receiver receiver;
    std::memset(static_cast<void*>(&receiver), 0, sizeof receiver);
    receiver.base.receiveSlot = receive_person;
    receiver.base.rStartup = receiver_startup;
    receiver.base.rShutdown = receiver_shutdown;
    receiver.base.rDestroy = receiver_destroy;
    receiver.base.mydest = DestNone;
    receiver.people = &people;
    receiver.store = setup.people_rows;
    pg_call([&] {
      MemoryContext old = MemoryContextSwitchTo(setup.work);  // tuplestore rows outlive SPI's contexts
      run_people_query(setup.query, &receiver);
      MemoryContextSwitchTo(old);
    });
    if (receiver.error.failed) receiver.error.rethrow();
    cdp::pg::check_for_interrupts();
    const std::size_t n = people.size();
    const double grouped_seconds = seconds_since(started);
    const Clock::time_point scoring_started = Clock::now();

    // 2. Scores: equal values share a score; persons without a positive order are not scored.
    //    Monetary values of one scale compare as integers, else exactly across scales.
    std::vector<std::uint8_t> r(n), f(n), m(n);
    budget.charge(cdp::profiles::score_rows_memory(n));
    auto scored = [&](std::size_t row) { return people.recency_days[row] != kNoRecency; };
    cdp::profiles::score_rows(
        n, bins, scored,
        [&](std::uint32_t a, std::uint32_t b) { return people.recency_days[a] > people.recency_days[b]; },
        r.data(), interrupts);
    cdp::profiles::score_rows(
        n, bins, scored, [&](std::uint32_t a, std::uint32_t b) { return people.orders[a] < people.orders[b]; },
        f.data(), interrupts);
    bool one_scale = true;
    for (std::size_t row = 1; row < n && one_scale; ++row)
      one_scale = people.monetary_scale[row] == people.monetary_scale[0];
    if (one_scale)
      cdp::profiles::score_rows(
          n, bins, scored,
          [&](std::uint32_t a, std::uint32_t b) { return people.monetary_units[a] < people.monetary_units[b]; },
          m.data(), interrupts);
    else
      cdp::profiles::score_rows(
          n, bins, scored,
          [&](std::uint32_t a, std::uint32_t b) {
            return cdp::Decimal(people.monetary_units[a], people.monetary_scale[a]) <
                   cdp::Decimal(people.monetary_units[b], people.monetary_scale[b]);
          },
          m.data(), interrupts);
    budget.release(cdp::profiles::score_rows_memory(n));

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
    struct ReadSlots {
      TupleTableSlot** slots;
      int count;
      SPIPlanPtr insert;  // plain INSERT when the bulk path does not apply
    };
    const ReadSlots read = pg_call([&]() -> ReadSlots {
      ReadSlots s;
      s.count = appender.usable() ? 1000 : 1;  // one per queued row: a row's values live until its flush
      MemoryContext old = MemoryContextSwitchTo(setup.work);
      s.slots = static_cast<TupleTableSlot**>(palloc(sizeof(TupleTableSlot*) * s.count));
      for (int i = 0; i < s.count; ++i) {
        TupleDesc desc = CreateTemplateTupleDesc(kSnapshotColumns);
        for (int c = 0; c < kSnapshotColumns; ++c)
          TupleDescInitEntry(desc, c + 1, kColumnNames[c], kSnapshotTypes[c], -1, 0);
        s.slots[i] = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
      }
      MemoryContextSwitchTo(old);
      s.insert = nullptr;
      if (!appender.usable()) {
        Oid types[kSnapshotColumns];
        std::memcpy(types, kSnapshotTypes, sizeof types);
        s.insert = SPI_prepare(
            "INSERT INTO cdp.profile_snapshots VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
            "$15, $16, $17, $18, $19, $20)",
            kSnapshotColumns, types);
        if (s.insert == nullptr) elog(ERROR, "cdp.profile_write_snapshot: preparing the insert failed");
      }
      return s;
    });
    std::vector<GroupTotals> by_segment(1);  // [0]: no segment (NULL), [k + 1]: segments.names[k]
    std::vector<GroupTotals> by_stage(people.stage_names.size());
    GroupTotals all;
    for (std::size_t row = 0; row < n; ++row) {
      std::int32_t segment = -1;
      if (r[row] != 0) segment = segment_of(segments, r[row], f[row], m[row]);
      TupleTableSlot* slot = read.slots[appender.usable() ? static_cast<int>(row % 1000) : 0];
      const cdp::Decimal monetary(people.monetary_units[row], people.monetary_scale[row]);
      pg_call([&] {
        if (!tuplestore_gettupleslot(setup.people_rows, true, false, slot))
          elog(ERROR, "cdp.profile_write_snapshot: the stored rows ended early");
        slot_getallattrs(slot);
        Datum values_local[kSnapshotColumns];
        bool nulls_local[kSnapshotColumns];
        Datum* values = appender.usable() ? appender.values() : values_local;
        bool* nulls = appender.usable() ? appender.nulls() : nulls_local;
        std::memcpy(values, slot->tts_values, sizeof(Datum) * kSnapshotColumns);
        std::memcpy(nulls, slot->tts_isnull, sizeof(bool) * kSnapshotColumns);
        nulls[kR] = nulls[kF] = nulls[kM] = r[row] == 0;
        values[kR] = Int32GetDatum(r[row]);
        values[kF] = Int32GetDatum(f[row]);
        values[kM] = Int32GetDatum(m[row]);
        nulls[kRfmSegment] = segment < 0;
        values[kRfmSegment] = segment < 0 ? (Datum)0 : segments.names[segment];
        if (appender.usable()) {
          appender.append();
        } else {
          char null_flags[kSnapshotColumns];
          for (int c = 0; c < kSnapshotColumns; ++c) null_flags[c] = nulls[c] ? 'n' : ' ';
          const int rc = SPI_execute_plan(read.insert, values, null_flags, false, 0);
          if (rc != SPI_OK_INSERT) elog(ERROR, "cdp.profile_write_snapshot: insert failed: %s", SPI_result_code_string(rc));
        }
      });
      const std::size_t segment_slot = static_cast<std::size_t>(segment + 1);
      if (segment_slot >= by_segment.size()) by_segment.resize(segment_slot + 1);
      const std::int32_t recency = people.recency_days[row];
      const bool attributed = people.attributed[row];
      by_segment[segment_slot].add(people.orders[row], monetary, recency, attributed);
      by_stage[people.stage[row]].add(people.orders[row], monetary, recency, attributed);
      all.add(people.orders[row], monetary, recency, attributed);
      if ((row & 0xFFF) == 0) cdp::pg::check_for_interrupts();
    }
    appender.finish();
    const double written_seconds = seconds_since(writing_started);
    const bool bulk = appender.usable();
    pg_call([&] {
      elog(DEBUG1, "refresh_profiles: %zu persons grouped in %.3f s, scored in %.3f s, written (%s) in %.3f s", n,
           grouped_seconds, scored_seconds, bulk ? "bulk" : "row by row", written_seconds);
    });

    // 5. The totals.
    auto put = [&](const char* dimension, const std::string& group, const GroupTotals& t) {
      const Datum revenue = numeric_datum(t.revenue);
      pg_call([&] {
        Datum values[8] = {CStringGetTextDatum(dimension),      CStringGetTextDatum(group.c_str()),
                           Int64GetDatum(t.customers),          revenue,
                           Int64GetDatum(t.orders),             Int64GetDatum(t.recency_days_sum),
                           Int64GetDatum(t.recency_days_n),     Int64GetDatum(t.unattributed)};
        bool nulls[8] = {false, false, false, false, false, false, false, false};
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
    for (const auto& [name, totals] : segment_totals) put("rfm_segment", name, totals);
    for (std::size_t s = 0; s < by_stage.size(); ++s) put("lifecycle_stage", people.stage_names[s], by_stage[s]);
    put("all", "", all);

    pg_call([&] {
      tuplestore_end(setup.people_rows);
      if (SPI_finish() != SPI_OK_FINISH) elog(ERROR, "cdp.profile_write_snapshot: SPI_finish failed");
      MemoryContextDelete(setup.work);
      rsinfo->returnMode = SFRM_Materialize;
      rsinfo->setResult = setup.totals;
      rsinfo->setDesc = setup.result_desc;
    });
    return (Datum)0;
  });
}
