// Identity merge, incremental runs (docs/identity.md, section 4): with the rules unchanged, only the part of
// the graph the new links touch is loaded, re-resolved and written.
#include "pg/identity_internal.h"

#include "core/byte_sort.h"

#include <numeric>

namespace cdp::pg::identity_glue {

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
static void collect_ids(const char* sql, const std::vector<SpiArg>& params, std::set<int64_t>& out) {
  const uint64 n = spi_run(sql, params);
  for (uint64 r = 0; r < n; ++r)
    if (!result_is_null(r, 1)) out.insert(result_int64(r, 1));
}

// A stored cdp.person_identifiers row, as an incremental run compares and counts it.
struct StoredValue {
  bool found = false;
  int64_t person = 0;  // 0 = NULL
  std::string reason;  // '' = NULL
  int64_t records = 0;
  bool first_null = true, last_null = true;
  int64_t first_seen = 0, last_seen = 0;
};

// Probes cdp.person_identifiers for (types[k], values[k]) (in key order) and fills out[index[k]].
static void read_stored_values(const std::vector<std::string_view>& types, const std::vector<std::string_view>& values,
                               const std::vector<int64_t>& index, std::vector<StoredValue>& out) {
  Cursor cursor(
      "SELECT u.i, coalesce(p.person_id, 0), coalesce(p.reason, ''), p.records, p.first_seen, p.last_seen "
      "FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::int8[])) "
      "AS u(t, v, i) CROSS JOIN LATERAL (SELECT * FROM cdp.person_identifiers x WHERE x.id_type = u.t "
      "AND x.id_value = u.v OFFSET 0) p",
      {text_array_param(types), text_array_param(values), int8_array_param(index)});
  const std::vector<bool> is_text{false, false, true, false, false, false};
  for (;;) {
    const std::size_t rows = cursor.fetch(6, is_text);
    if (rows == 0) break;
    for (std::size_t r = 0; r < rows; ++r) {
      StoredValue& v = out[DatumGetInt64(cursor.datum(r, 0))];
      v.found = true;
      v.person = DatumGetInt64(cursor.datum(r, 1));
      v.reason.assign(cursor.cell(r, 2).view());
      v.records = DatumGetInt64(cursor.datum(r, 3));
      v.first_null = cursor.cell(r, 4).is_null();
      v.last_null = cursor.cell(r, 5).is_null();
      v.first_seen = v.first_null ? 0 : static_cast<int64_t>(cursor.datum(r, 4));
      v.last_seen = v.last_null ? 0 : static_cast<int64_t>(cursor.datum(r, 5));
    }
    check_for_interrupts();
  }
}

// Settings that make the next statement read `table` through a bitmap scan of an index. For rows of
// thousands of keys (`key = ANY ($1)`), a bitmap scan reads each heap page once, in physical order: at 10M
// records, the links of 370k records came ~2x faster than with one index probe per key, whose heap pages
// come in random order. The planner would scan the whole table instead (its row estimate is far too
// high), so the other scans are off; work_mem covers an exact bitmap of every page of the table (64 bytes
// a page, doubled), as a lossy one rechecks whole pages. (That bitmap, ~20 MB at 10M records, is
// PostgreSQL's memory, outside pg_cdp's MemoryGuard.)
static StatementSettings bitmap_scan_settings(const char* table) {
  spi_run("SELECT pg_catalog.pg_relation_size($1::regclass) / pg_catalog.current_setting('block_size')::int8",
          {text_param(table)});
  const int64_t bitmap_kb = std::min<int64_t>(result_int64(0, 1) * 128 / 1024 + 1024, MAX_KILOBYTES);
  return StatementSettings({{"enable_seqscan", "off"},
                            {"enable_indexscan", "off"},
                            {"work_mem", std::to_string(std::max<int64_t>(work_mem, bitmap_kb))}});
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
                      const std::vector<NewLink>& new_pairs, const PreviousRun& prev,
                      identity::ResolveStats& totals, int64_t& resolved_links) {
  // 1. Seed persons: of the new links' records and values. Probes go in key order (the primary keys'),
  // numbered by the staged index so the rows found can be used again below.
  std::vector<std::string_view> sources, keys, type_names, values;
  std::vector<int64_t> record_index, identifier_index;
  {
    std::vector<int32_t> order(staged.record_count());
    std::iota(order.begin(), order.end(), 0);
    // source '\0' source_key: byte order is (source, source_key) order.
    sort_by_bytes(order, [&](int32_t r) { return staged.record_bytes(r); });
    for (int32_t r : order) {
      sources.push_back(staged.record_source(r));
      keys.push_back(staged.record_key(r));
      record_index.push_back(r);
    }
  }
  {
    std::vector<int32_t> order(staged.identifier_count());
    std::iota(order.begin(), order.end(), 0);
    // type index (types sorted by name) + value: byte order is (id_type, id_value) order.
    sort_by_bytes(order, [&](int32_t i) { return staged.identifier_bytes(i); });
    for (int32_t i : order) {
      type_names.push_back(staged.types()[staged.identifier_type(i)].name);
      values.push_back(staged.identifier_value(i));
      identifier_index.push_back(i);
    }
  }
  std::set<int64_t> persons;
  std::vector<uint8_t> staged_record_known(staged.record_count(), 0);  // has an identity_map row
  {
    Cursor cursor(
        "SELECT u.i, m.person_id FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), "
        "pg_catalog.unnest($3::int8[])) AS u(s, k, i) "
        "CROSS JOIN LATERAL (SELECT x.person_id FROM cdp.identity_map x WHERE x.source = u.s AND x.source_key = u.k "
        "OFFSET 0) m",
        {text_array_param(sources), text_array_param(keys), int8_array_param(record_index)});
    const std::vector<bool> is_text{false, false};
    for (;;) {
      const std::size_t rows = cursor.fetch(2, is_text);
      if (rows == 0) break;
      for (std::size_t r = 0; r < rows; ++r) {
        staged_record_known[DatumGetInt64(cursor.datum(r, 0))] = 1;
        persons.insert(DatumGetInt64(cursor.datum(r, 1)));
      }
      check_for_interrupts();
    }
  }
  // The stored person_identifiers rows of the new links' values, kept for step 5 (which then probes only
  // the other values of the subgraph).
  std::vector<StoredValue> staged_value(staged.identifier_count());
  read_stored_values(type_names, values, identifier_index, staged_value);
  for (const StoredValue& v : staged_value)
    if (v.found && v.person != 0) persons.insert(v.person);
  const std::vector<SpiArg> value_args{text_array_param(type_names), text_array_param(values)};
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

  // 2. The records: of those persons (with their previous person) and the new ones. Past a quarter of all
  // records a full run is cheaper: reading stops there. (The persons' record counts and how many of them
  // exist are counted from these rows; persons.records holds the same numbers, and reading them cost a
  // second pass over the persons.)
  IdentityGraph graph(config.types, &interrupts);
  // Keyed by the primary key, so no record twice; plain vectors (was an ordered map of string pairs: node
  // allocations and string comparisons for a lookup nothing needed).
  struct PreviousRecord {
    std::string source, key;
    int64_t person;
  };
  std::vector<PreviousRecord> previous_of;
  int64_t previous_persons = 0;
  {
    // A bitmap scan of the person_id index, as for the links below (left to itself, the planner scanned the
    // whole map: 3 s at 10M records).
    StatementSettings settings = bitmap_scan_settings("cdp.identity_map");
    Cursor cursor("SELECT m.source, m.source_key, m.person_id FROM cdp.identity_map m WHERE m.person_id = ANY ($1)",
                  {persons_arg});
    const std::vector<bool> is_text{true, true, false};
    std::vector<int64_t> found;
    for (;;) {
      const std::size_t rows = cursor.fetch(3, is_text);
      if (rows == 0) break;
      for (std::size_t r = 0; r < rows; ++r) {
        const int64_t person = DatumGetInt64(cursor.datum(r, 2));
        previous_of.push_back(
            PreviousRecord{std::string(cursor.cell(r, 0).view()), std::string(cursor.cell(r, 1).view()), person});
        found.push_back(person);
      }
      check_for_interrupts();
      if (static_cast<int64_t>(previous_of.size()) + staged.record_count() > prev.records / 4 + 1000) {
        cursor.close();
        settings.restore();
        return false;  // a full run is cheaper
      }
    }
    settings.restore();
    std::sort(found.begin(), found.end());
    previous_persons = static_cast<int64_t>(std::unique(found.begin(), found.end()) - found.begin());
  }
  // A new link's record without an identity_map row is new: its stored links are exactly the ones this
  // run stored, so they are added from the staged graph instead of read back (unless tombstones filtered
  // what was stored; then every record's links are read). The seed persons' records are all read.
  spi_run("SELECT EXISTS (SELECT FROM cdp.identity_tombstones)::int4::int8");
  const bool probe_new_records = result_int64(0, 1) != 0;

  // 3. All stored links of those records (a record without stored links, e.g. a tombstoned one, is no record),
  // in one bitmap scan of the key-hash index. A key hash shared with a record not wanted brings its rows
  // too: dropped here.
  std::vector<uint64_t> loaded_pairs;  // record << 32 | identifier, one per stored row
  int64_t unknown_links = 0;
  {
    // The records whose links are read: those of the seed persons, and (see above) the new ones. A staged
    // record with a map row belongs to a seed person, so it is among previous_of already.
    IdentityGraph wanted(config.types, &interrupts);
    std::vector<int32_t> key_hashes;
    for (const PreviousRecord& p : previous_of) {
      wanted.add_record(p.source, p.key);
      key_hashes.push_back(hashtext_of(p.key));
    }
    if (probe_new_records)
      for (int32_t r = 0; r < staged.record_count(); ++r)
        if (!staged_record_known[r]) {
          wanted.add_record(staged.record_source(r), staged.record_key(r));
          key_hashes.push_back(hashtext_of(staged.record_key(r)));
        }
    std::sort(key_hashes.begin(), key_hashes.end());
    key_hashes.erase(std::unique(key_hashes.begin(), key_hashes.end()), key_hashes.end());
    StatementSettings settings = bitmap_scan_settings("cdp.identity_links");
    Cursor cursor(
        "SELECT l.source, l.source_key, l.id_type, l.id_value, l.valid, l.first_seen, l.last_seen "
        "FROM cdp.identity_links l WHERE pg_catalog.hashtext(l.source_key) = ANY ($1::int4[])",
        {int4_array_param(key_hashes)});
    const std::vector<bool> is_text{true, true, true, true, false, false, false};
    for (;;) {
      const std::size_t rows = cursor.fetch(7, is_text);
      if (rows == 0) break;
      for (std::size_t r = 0; r < rows; ++r) {
        interrupts.tick();
        if (wanted.find_record(cursor.cell(r, 0).view(), cursor.cell(r, 1).view()) < 0) continue;
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
      memory.check(graph.memory_bytes() + wanted.memory_bytes() + loaded_pairs.capacity() * 8);
    }
    settings.restore();
  }
  if (!probe_new_records) {
    for (const NewLink& link : new_pairs) {
      if (staged_record_known[link.record]) continue;
      interrupts.tick();
      const int32_t record = graph.add_record(staged.record_source(link.record), staged.record_key(link.record));
      const int32_t identifier =
          graph.add_identifier(staged.identifier_type(link.identifier), staged.identifier_value(link.identifier),
                               staged.identifier_reason(link.identifier) != identity::Reason::kInvalid);
      graph.add_link(record, identifier, link.first_seen, link.last_seen);
      loaded_pairs.push_back(static_cast<uint64_t>(record) << 32 | static_cast<uint32_t>(identifier));
    }
    memory.check(graph.memory_bytes() + loaded_pairs.capacity() * 8);
  }
  Previous previous;
  previous.component_persons = &component_persons;
  previous.unknown_links = unknown_links;
  previous.map_rows = std::max<int64_t>(1, static_cast<int64_t>(previous_of.size()));  // never the bulk path
  previous.identifier_rows = 1;
  for (const PreviousRecord& p : previous_of) {
    const int32_t record = graph.find_record(p.source, p.key);
    if (record < 0) return false;  // a stored record without stored links: not the state we expect
    graph.set_previous_person(record, p.person);
  }

  // 4. Per value: distinct records loaded, and new links (a pair of this run stored exactly once).
  std::sort(loaded_pairs.begin(), loaded_pairs.end());
  std::vector<int64_t> new_links_of(graph.identifier_count(), 0), loaded_records_of(graph.identifier_count(), 0);
  for (std::size_t i = 0; i < loaded_pairs.size(); ++i)
    if (i == 0 || loaded_pairs[i] != loaded_pairs[i - 1]) ++loaded_records_of[static_cast<uint32_t>(loaded_pairs[i])];
  for (const NewLink& link : new_pairs) {
    const int32_t staged_record = link.record, staged_identifier = link.identifier;
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
    // The new links' values were read in step 1; the others are probed now, in key order.
    std::vector<StoredValue> stored(graph.identifier_count());
    std::vector<int32_t> order;
    for (int32_t i = 0; i < graph.identifier_count(); ++i) {
      const int32_t s = staged.find_identifier(graph.identifier_type(i), graph.identifier_value(i));
      if (s >= 0)
        stored[i] = std::move(staged_value[s]);
      else
        order.push_back(i);
    }
    std::vector<StoredValue>().swap(staged_value);
    sort_by_bytes(order, [&](int32_t i) { return graph.identifier_bytes(i); });
    std::vector<std::string_view> t, v;
    std::vector<int64_t> index;
    for (int32_t i : order) {
      t.push_back(graph.types()[graph.identifier_type(i)].name);
      v.push_back(graph.identifier_value(i));
      index.push_back(i);
    }
    read_stored_values(t, v, index, stored);
    for (int32_t identifier = 0; identifier < graph.identifier_count(); ++identifier) {
      const StoredValue& row = stored[identifier];
      if (!row.found) continue;
      interrupts.tick();
      ++stored_rows;
      const std::string& reason = row.reason;
      const int64_t records = row.records;
      stored_records[identifier] = records;
      previous.row[identifier] = identifier_row_fingerprint(row.person, reason, records, row.first_seen, row.last_seen);
      if (reason == "invalid") ++before_invalid;
      if (reason == "blocklist") ++before_blocklisted;
      if (reason == "hub") ++before_hubs;
      if (reason == "conflict_cut") ++before_cut;
      const bool partial = reason == "invalid" || reason == "blocklist" || reason == "hub";
      if (partial) {
        graph.set_identifier_totals(identifier, records + new_links_of[identifier],
                                    row.first_null ? INT64_MAX : row.first_seen,
                                    row.last_null ? INT64_MIN : row.last_seen);
      } else if (loaded_records_of[identifier] != records + new_links_of[identifier]) {
        return false;  // a value that may link has records outside the subgraph
      }
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


}  // namespace cdp::pg::identity_glue
