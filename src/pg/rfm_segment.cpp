// cdp.rfm_segment(r, f, m, segment_map): the segment of an (r, f, m) cell. The map's 125 cells are
// read once per statement (SPI, the documented query shape) and kept in the call's fn_extra, so a
// lookup per customer row costs an array index instead of a query.
#include "pg/boundary.h"

extern "C" {
#include "utils/snapmgr.h"  // GetActiveSnapshot (not in pg/pg.h; no clashing macros)
}

#include <string>

namespace {

using cdp::pg::fail;
using cdp::pg::guarded;
using cdp::pg::pg_call;

constexpr int kCells = 125;

// Lives in fn_mcxt, and is valid while the statement's snapshot is: STABLE means the rules cannot
// change within one statement, but the same call site runs again for later statements (a PL/pgSQL
// loop keeps its expression state for the transaction), which must see rules changed in between.
struct SegmentMapCache {
  bool loaded;
  TransactionId snapshot_xmin, snapshot_xmax;  // the snapshot the map was read with
  CommandId snapshot_command;
  text* map;                // the cached map's name
  char* segments[kCells];   // (r-1)*25 + (f-1)*5 + (m-1); NULL where the map has no rule
};

// Whether the map was read under the snapshot now active (the same statement). Plain C.
bool same_snapshot(const SegmentMapCache* cache) {
  if (!ActiveSnapshotSet()) return false;
  const Snapshot snapshot = GetActiveSnapshot();
  return cache->snapshot_xmin == snapshot->xmin && cache->snapshot_xmax == snapshot->xmax &&
         cache->snapshot_command == snapshot->curcid;
}

bool same_text(const text* a, const text* b) {
  return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
         memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

// Plain C (runs inside pg_call): reads the map through SPI into the cache.
void load_map(FmgrInfo* flinfo, text* map) {
  auto* cache = static_cast<SegmentMapCache*>(flinfo->fn_extra);
  if (cache == nullptr) {
    cache = static_cast<SegmentMapCache*>(MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(SegmentMapCache)));
    flinfo->fn_extra = cache;
  }
  cache->loaded = false;
  for (char*& segment : cache->segments) {
    if (segment) pfree(segment);
    segment = nullptr;
  }
  if (cache->map) pfree(cache->map);
  cache->map = nullptr;

  Oid argument_types[1] = {TEXTOID};
  Datum arguments[1] = {PointerGetDatum(map)};
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "cdp.rfm_segment: SPI_connect failed");
  const int status = SPI_execute_with_args(
      "SELECT r, f, m, segment FROM cdp.rfm_segment_rules WHERE segment_map OPERATOR(pg_catalog.=) $1", 1,
      argument_types, arguments, nullptr, true, 0);
  if (status != SPI_OK_SELECT) elog(ERROR, "cdp.rfm_segment: reading cdp.rfm_segment_rules failed (%d)", status);
  if (SPI_processed == 0)  // unknown map: let the shared check raise 42704 with the known maps
    SPI_execute_with_args("SELECT cdp.rfm_check_segment_map($1)", 1, argument_types, arguments, nullptr, true, 0);
  for (uint64 row = 0; row < SPI_processed; ++row) {
    HeapTuple tuple = SPI_tuptable->vals[row];
    TupleDesc descriptor = SPI_tuptable->tupdesc;
    bool null_r, null_f, null_m;
    const int r = DatumGetInt32(SPI_getbinval(tuple, descriptor, 1, &null_r));
    const int f = DatumGetInt32(SPI_getbinval(tuple, descriptor, 2, &null_f));
    const int m = DatumGetInt32(SPI_getbinval(tuple, descriptor, 3, &null_m));
    char* segment = SPI_getvalue(tuple, descriptor, 4);
    if (null_r || null_f || null_m || segment == nullptr || r < 1 || r > 5 || f < 1 || f > 5 || m < 1 || m > 5)
      continue;  // the table's constraints rule these out
    cache->segments[(r - 1) * 25 + (f - 1) * 5 + (m - 1)] = MemoryContextStrdup(flinfo->fn_mcxt, segment);
  }
  SPI_finish();
  cache->map = static_cast<text*>(MemoryContextAlloc(flinfo->fn_mcxt, VARSIZE_ANY(map)));
  memcpy(cache->map, map, VARSIZE_ANY(map));
  if (ActiveSnapshotSet()) {
    const Snapshot snapshot = GetActiveSnapshot();
    cache->snapshot_xmin = snapshot->xmin;
    cache->snapshot_xmax = snapshot->xmax;
    cache->snapshot_command = snapshot->curcid;
    cache->loaded = true;
  }
}

}  // namespace

extern "C" {
PG_FUNCTION_INFO_V1(cdp_rfm_segment);
}

extern "C" Datum cdp_rfm_segment(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2)) {
      fcinfo->isnull = true;
      return Datum(0);
    }
    const int r = PG_GETARG_INT32(0), f = PG_GETARG_INT32(1), m = PG_GETARG_INT32(2);
    if (r < 1 || r > 5 || f < 1 || f > 5 || m < 1 || m > 5)
      fail(cdp::sqlstate::kInvalidParameterValue, "RFM scores for segments must be between 1 and 5",
           "Got r = " + std::to_string(r) + ", f = " + std::to_string(f) + ", m = " + std::to_string(m) + ".",
           "Segment maps cover 5 x 5 x 5 cells: score with bins = 5.");
    if (PG_ARGISNULL(3)) fail(cdp::sqlstate::kNullValueNotAllowed, "segment_map must not be NULL");
    text* map = pg_call([&] { return PG_GETARG_TEXT_PP(3); });
    FmgrInfo* flinfo = fcinfo->flinfo;
    const auto* cache = static_cast<const SegmentMapCache*>(flinfo->fn_extra);
    if (cache == nullptr || !cache->loaded || !same_text(cache->map, map) || !same_snapshot(cache)) {
      pg_call([&] { load_map(flinfo, map); });
      cache = static_cast<const SegmentMapCache*>(flinfo->fn_extra);
    }
    const char* segment = cache->segments[(r - 1) * 25 + (f - 1) * 5 + (m - 1)];
    if (segment == nullptr) {  // a cell the map does not cover (see cdp.rfm_segment_map_gaps)
      fcinfo->isnull = true;
      return Datum(0);
    }
    return pg_call([&] { return PointerGetDatum(cstring_to_text(segment)); });
  });
}
