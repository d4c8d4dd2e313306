// CALL cdp.merge_identities (docs/identity.md): the run. Reads observations with the caller's privileges
// (identity_read.cpp), re-resolves the touched subgraph (identity_incremental.cpp) or everything
// (identity_write.cpp), and records the run in cdp.merge_runs, all in the caller's transaction. Every call
// into PostgreSQL goes through pg_call; C++ state is plain data.
#include "pg/identity_internal.h"

extern "C" {
PG_FUNCTION_INFO_V1(cdp_merge_identities);
}

namespace cdp::pg::identity_glue {

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

// What is stored: whether cdp.identity_links and cdp.identity_map hold rows, and whether an earlier run
// read `relation` (InvalidOid: none asked).
struct Stored {
  bool links, map, relation_read;
};
static Stored stored(Oid relation) {
  spi_run(
      "SELECT EXISTS (SELECT FROM cdp.identity_links)::int4::int8, EXISTS (SELECT FROM cdp.identity_map)::int4::int8, "
      "EXISTS (SELECT FROM cdp.merge_runs WHERE kind = 'merge' AND observations = $1 AND high_water_mark "
      "IS NOT NULL)::int4::int8",
      {SpiArg{OIDOID, ObjectIdGetDatum(relation), relation == InvalidOid}});
  return Stored{result_int64(0, 1) != 0, result_int64(0, 2) != 0, result_int64(0, 3) != 0};
}

// cdp.identity_links is unlogged: a crash (or a restore without unlogged data, or a promoted replica)
// leaves it empty while cdp.identity_map still holds results. Nothing can then be re-resolved from it.
bool links_lost() {
  const Stored s = stored(InvalidOid);
  return !s.links && s.map;
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


}  // namespace cdp::pg::identity_glue

using namespace cdp::pg;
using namespace cdp::pg::identity_glue;

extern "C" Datum cdp_merge_identities(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    if (PG_ARGISNULL(0)) fail(cdp::sqlstate::kNullValueNotAllowed, "observations must not be NULL");
    const Oid relation = PG_GETARG_OID(0);
    bool full_rebuild = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
    connect();
    Phases phases;
    cdp::Interrupts interrupts = pg_interrupts();
    MemoryGuard memory;
    const int64_t run_id = start_run("merge", relation, full_rebuild);
    if (!full_rebuild) {
      // Without stored links an incremental run has nothing to re-resolve against; it reads every row as a
      // full rebuild: a first run (nothing stored, no earlier run of this relation; the graph it reads is
      // then resolved at once instead of stored, read back and resolved, ~1.3x faster), or links lost.
      const Stored s = stored(relation);
      const bool first_run = !s.links && !s.map && !s.relation_read, lost = !s.links && s.map;
      if (lost)
        notice("merge_identities: cdp.identity_links is empty (unlogged, emptied by a crash or a restore without "
               "it): this run re-reads all observations, as a full rebuild");
      if (first_run || lost) {
        full_rebuild = true;
        spi_run("UPDATE cdp.merge_runs SET full_rebuild = true WHERE run_id = $1", {int8_param(run_id)});
      }
    }
    const std::string fingerprint = rules_fingerprint();
    const Config config = load_config();
    Skipped skipped;
    int64_t read = 0, new_links = 0, hwm = 0;
    bool has_hwm = false;
    std::unique_ptr<cdp::identity::IdentityGraph> graph, staged;
    BackgroundResolve background;  // declared after the graph: stopped and joined before the graph goes
    std::vector<NewLink> new_pairs;
    ingest(relation, full_rebuild, config, interrupts, memory, phases, skipped, read, new_links, hwm, has_hwm, graph,
           staged, new_pairs, background);
    // pg_cdp's own statements over its own tables (index probes with tens of thousands of outer rows, scans
    // of identity_links) are estimated far above jit_above_cost, so each one was JIT-compiled with inlining
    // and optimisation: ~100 ms per statement for plans that run a few hundred ms. Off for the rest.
    StatementSettings jit_off({{"jit", "off"}});
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
                fingerprint, &background);
    jit_off.restore();
    disconnect();
    PG_RETURN_VOID();
  });
}

