// Identity merge, resolving and writing (docs/identity.md, section 4): the stored links and the previous
// results are loaded, the graph resolved, person ids assigned, and only what changed is written.
#include "pg/identity_internal.h"

#include "core/byte_sort.h"

extern "C" {
#include "access/xact.h"  // GetCurrentTransactionStartTimestamp
}

namespace cdp::pg::identity_glue {

void load_previous(IdentityGraph& graph, MemoryGuard& memory, Previous& previous) {
  // The previous map: ids to keep, and records that no longer exist.
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
        previous_row[identifier] = identifier_row_fingerprint(
            DatumGetInt64(row.datum(2)), row.cell(3).view(), DatumGetInt64(row.datum(4)),
            static_cast<int64_t>(row.datum(5)), static_cast<int64_t>(row.datum(6)));
      });
  memory.check(graph.memory_bytes() + previous_row.capacity() * 8);
}

void BackgroundResolve::prepare(IdentityGraph& graph, const Config& config, MemoryGuard& memory, Phases& phases) {
  load_previous(graph, memory, previous);
  phases.lap("load");
  blocklist_ = load_blocklist(graph, identity::ValueNormaliser(config.phone_region));
  graph.release_lookups();  // nothing is looked up by key from here on; storing and resolving do without them
  graph_ = &graph;
}

void BackgroundResolve::start(std::size_t held_bytes) {
  held_bytes_ = held_bytes;
  started_ = true;
  worker_ = std::make_unique<WorkerThread>();
  if (!worker_->threaded()) {  // no thread to be had: resolve now, on the backend, as without overlap
    graph_->resolve(blocklist_);
    return;
  }
  WorkerThread* worker = worker_.get();
  worker_interrupts_ = Interrupts([worker] {
    if (worker->stop_requested()) throw Error(sqlstate::kQueryCanceled, "resolving abandoned");
  });
  graph_->set_interrupts(&worker_interrupts_);
  worker_->post([this] { graph_->resolve(blocklist_); });
}

void BackgroundResolve::finish(Interrupts& interrupts, MemoryGuard& memory) {
  worker_->finish([&interrupts] { interrupts.poll(); });  // joins: what resolve wrote is visible from here on
  graph_->set_interrupts(&interrupts);
  memory.check(graph_->memory_bytes() + held_bytes_);  // both were held at once
}

// Loads every stored link and the previous map, resolves, assigns ids and writes the results.
void resolve_and_write(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
                       Phases& phases, identity::ResolveStats& stats, std::unique_ptr<IdentityGraph> built,
                       BackgroundResolve* background) {
  std::unique_ptr<IdentityGraph> owned = built ? std::move(built) : std::make_unique<IdentityGraph>(config.types, &interrupts);
  IdentityGraph& graph = *owned;
  // Declared after the graph, so destroyed before it: a worker still resolving (the run left by an error or a
  // cancel before it was waited for) is stopped and joined before the graph is freed.
  struct StopBackground {
    BackgroundResolve* background;
    ~StopBackground() {
      if (background) background->stop();
    }
  } stop_background{background};
  if (background && background->started()) {  // the previous results are loaded, resolving is under way
    resolve_write(run_id, config, interrupts, memory, phases, stats, graph, background->previous, background);
    return;
  }
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
  Previous previous;
  load_previous(graph, memory, previous);
  phases.lap("load");

  previous.unknown_links = unknown_links;
  resolve_write(run_id, config, interrupts, memory, phases, stats, graph, previous);
}

// Resolves a loaded graph, assigns ids and writes what changed against `previous` (the stored rows of the
// graph's records and identifiers). With previous.component_persons set the graph is a closed part of the
// whole (an incremental run's subgraph) and only its cuts are replaced.
void resolve_write(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
                   Phases& phases, identity::ResolveStats& stats, IdentityGraph& graph, Previous& previous,
                   BackgroundResolve* background) {
  int64_t& previous_map_rows = previous.map_rows;
  int64_t& previous_identifier_rows = previous.identifier_rows;
  std::vector<Removed>& removed = previous.removed;
  std::vector<uint64_t>& previous_row = previous.row;
  std::vector<Gone>& gone_identifiers = previous.gone;
  const int64_t unknown_links = previous.unknown_links;
  if (background) {
    background->finish(interrupts, memory);
  } else {
    const identity::Blocklist blocklist = load_blocklist(graph, identity::ValueNormaliser(config.phone_region));
    graph.release_lookups();  // nothing is looked up by key from here on; resolving's peak does without them
    graph.resolve(blocklist);
  }
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
  graph.release_resolving_state();  // what remains is what the writes read
  stats = graph.stats();
  phases.lap("resolve");
  notice("merge_identities: resolved " + std::to_string(stats.links) + " links between " +
         std::to_string(stats.records) + " records and " + std::to_string(stats.identifiers) + " identifiers into " +
         std::to_string(stats.persons) + " persons (" + std::to_string(stats.merges) + " merges, " +
         std::to_string(stats.splits) + " splits, " + std::to_string(stats.cut_links) + " cut links) in " +
         std::to_string(phases.ms.back().second) + " ms");

  // person_identifiers rows to write: those that differ from the stored row (by fingerprint), in key order.
  // A worker thread works them out while the backend writes identity_map; both only read the graph and the
  // previous rows from here on.
  auto fingerprint_of = [&](int32_t identifier) {
    return identifier_row_fingerprint(graph.identifier_person(identifier),
                                      identity::reason_name(graph.identifier_reason(identifier)),
                                      graph.identifier_records(identifier), graph.identifier_first_seen(identifier),
                                      graph.identifier_last_seen(identifier));
  };
  // Many rows gone (a full rebuild over another relation): the table is emptied and written whole.
  const bool rewrite_identifiers =
      gone_identifiers.size() > 10000 && gone_identifiers.size() * 10 > static_cast<std::size_t>(previous_identifier_rows);
  std::vector<int32_t> identifier_order;
  WorkerThread identifier_sorter;  // declared after what it reads: joined before those go
  auto sort_identifiers = [&] {
    for (int32_t i = 0; i < graph.identifier_count() && !identifier_sorter.stop_requested(); ++i)
      // A value without a stored row (0; fingerprints are odd) is written whatever its fingerprint.
      if (rewrite_identifiers || previous_row[i] == 0 || previous_row[i] != fingerprint_of(i))
        identifier_order.push_back(i);
    sort_by_bytes(identifier_order, [&](int32_t identifier) { return graph.identifier_bytes(identifier); });
  };
  // identity_map rows to write (records whose person changed, or all when the table is rewritten), in key
  // order (bytewise, the C collation's): b-tree inserts then mostly hit the rightmost leaf, several times
  // faster than random order, and the primary key's build after a first load is a single pass over presorted
  // input. Many records gone (a full rebuild over another relation): the map is emptied and written whole,
  // since keyed deletes in batches would each rescan it. A worker thread picks and sorts the rows while the
  // backend writes persons.
  const bool rewrite_map = removed.size() > 10000 && removed.size() * 10 > static_cast<std::size_t>(previous_map_rows);
  std::vector<int32_t> changed;
  WorkerThread record_sorter;  // declared after what it reads: joined before those go
  record_sorter.post([&] {
    for (int32_t record = 0; record < graph.record_count() && !record_sorter.stop_requested(); ++record)
      if (rewrite_map || graph.record_person(record) != graph.previous_person(record)) changed.push_back(record);
    sort_by_bytes(changed, [&](int32_t record) { return graph.record_bytes(record); });
  });

  // persons: ids that vanished are deleted; persons whose records changed are upserted.
  {
    // Into an empty table (a first load) nothing can conflict and nothing is deleted: append directly.
    bool persons_empty = false;
    if (previous_map_rows == 0 && !previous.component_persons) {
      spi_run("SELECT (NOT EXISTS (SELECT FROM cdp.persons))::int4::int8");
      persons_empty = result_int64(0, 1) != 0;
    }
    RowWriter appender("persons", 5, kPersonTypes, persons_empty && config.bulk_index_first_load);
    const bool bulk = persons_empty && appender.usable();
    // An id no record had before is new (ids are never reused), so it has no row: appended.
    const bool append_new = appender.usable();
    const int64_t created_at =
        append_new ? pg_call([]() -> int64_t { return GetCurrentTransactionStartTimestamp(); }) : 0;
    auto append = [&](int64_t id, int64_t records) {
      appender.int8(0, id);
      appender.int8(1, created_at);  // the column default, now()
      appender.int8(2, run_id);
      appender.int8(3, run_id);
      appender.int8(4, records);
      appender.append();
    };
    std::vector<int64_t> touched, previous_ids;  // a first load (bulk) needs neither
    for (int32_t record = 0; !bulk && record < graph.record_count(); ++record) {
      const int64_t before = graph.previous_person(record), after = graph.record_person(record);
      if (before != 0) previous_ids.push_back(before);
      if (before != after) {
        touched.push_back(after);
        if (before != 0) touched.push_back(before);
      }
    }
    for (std::size_t i = 0; !bulk && i < removed.size(); ++i) {
      touched.push_back(removed[i].person);
      previous_ids.push_back(removed[i].person);
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
    // A first load writes every person (persons() is sorted by id), without collecting what changed.
    if (bulk)
      for (const auto& [id, records] : persons) append(id, records);
    for (int64_t id : touched) {
      const int64_t n = records_of(id);
      if (append_new && n >= 0 && !std::binary_search(previous_ids.begin(), previous_ids.end(), id)) {
        append(id, n);
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
  // identity_map: delete records that are gone, upsert records whose person changed or that are new.
  record_sorter.finish([&interrupts] { interrupts.poll(); });
  identifier_sorter.post(sort_identifiers);  // while the map is written
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
    // Into an empty table nothing can conflict: append directly instead of INSERT ... ON CONFLICT.
    RowWriter appender("identity_map", 3, kMapTypes, previous_map_rows == 0 && config.bulk_index_first_load);
    const bool bulk = previous_map_rows == 0 && appender.usable();
    // A record without a previous person has no row (every stored row was read into previous_person or
    // `removed`): it is appended too, with its index entries, instead of INSERT ... ON CONFLICT.
    const bool append_new = appender.usable();
    for (int32_t record : changed) {
      const int64_t person = graph.record_person(record);
      if (bulk || (append_new && graph.previous_person(record) == 0)) {
        appender.repeated_text(0, graph.record_source(record));
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
  identifier_sorter.finish([&interrupts] { interrupts.poll(); });
  // person_identifiers: rows that changed, rows that are gone (many gone: rewrite the table).
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
    // A value without a stored row (previous_row 0: every stored row was read, or listed as gone) is
    // appended with its index entries instead of INSERT ... ON CONFLICT.
    const bool append_new = appender.usable();
    for (int32_t identifier : identifier_order) {
      interrupts.tick();
      const int64_t person = graph.identifier_person(identifier);
      const char* reason = identity::reason_name(graph.identifier_reason(identifier));
      const int64_t records = graph.identifier_records(identifier);
      const int64_t first = graph.identifier_first_seen(identifier), last = graph.identifier_last_seen(identifier);
      if (bulk || (append_new && previous_row[identifier] == 0)) {
        appender.repeated_text(0, graph.types()[graph.identifier_type(identifier)].name);
        appender.text(1, graph.identifier_value(identifier));
        if (person) appender.int8(2, person); else appender.null(2);
        appender.repeated_text(3, *reason ? "excluded" : "linked");
        if (*reason) appender.repeated_text(4, reason); else appender.null(4);
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
               std::unique_ptr<IdentityGraph> built, std::string fingerprint, BackgroundResolve* background) {
  identity::ResolveStats stats;
  resolve_and_write(run_id, config, interrupts, memory, phases, stats, std::move(built), background);
  if (fingerprint.empty()) fingerprint = rules_fingerprint();
  finish_run(run_id, stats, skipped, read, new_links, has_hwm, hwm, memory, phases, fingerprint, stats.links);
  report_written(phases, memory);
}


}  // namespace cdp::pg::identity_glue
