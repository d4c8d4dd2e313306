// Identity merge, reading (docs/identity.md, section 4): the observation relation is checked, read through
// the executor with the caller's privileges, normalised, and its links stored in cdp.identity_links.
#include "pg/identity_internal.h"

#include "core/phone_worker.h"

namespace cdp::pg::identity_glue {

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


namespace {
// The phone worker of the read in progress, stopped by an exit callback: a FATAL error (e.g. a terminated
// backend) leaves through proc_exit without unwinding the reader, and the thread must not run on while the
// process tears itself down.
identity::PhoneWorker* active_phone_worker = nullptr;
bool phone_exit_hook = false;
void stop_phone_worker(int, Datum) {
  if (active_phone_worker) active_phone_worker->stop();
}

// Owns the read's PhoneWorker (its destructor stops and joins the thread on every way out of the read).
class ActivePhoneWorker {
 public:
  explicit ActivePhoneWorker(const std::string& region) {
    if (!phone_exit_hook) {
      pg_call([] { before_shmem_exit(stop_phone_worker, (Datum)0); });
      phone_exit_hook = true;
    }
    worker_ = std::make_unique<identity::PhoneWorker>(region);
    active_phone_worker = worker_.get();
  }
  ~ActivePhoneWorker() { reset(); }
  ActivePhoneWorker(const ActivePhoneWorker&) = delete;
  ActivePhoneWorker& operator=(const ActivePhoneWorker&) = delete;
  identity::PhoneWorker* operator->() { return worker_.get(); }
  void reset() {
    active_phone_worker = nullptr;
    worker_.reset();
  }

 private:
  std::unique_ptr<identity::PhoneWorker> worker_;
};
}  // namespace

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
            std::vector<NewLink>& new_pairs, BackgroundResolve& background) {
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
  PodArray<IngestLink> links;  // grown by realloc: no copy, no slack resident (core/pod_array.h)
  std::set<std::string> unknown_types;
  identity::Normalised normalised;
  // Phones: libphonenumber takes ~25 us per number and one number repeats on many records, written in a
  // few ways: each distinct raw value (per type) is normalised once, and the validity check (half of the
  // cost) runs once per parsed number (PhoneMemo). That work runs on a worker thread (core/phone_worker.h)
  // while this thread scans: a new raw value is handed to it, and links to phones carry ~entry (its
  // phone_raw index, negative) until the scan ends; then each entry becomes an identifier and the links are
  // rewritten. Whether a phone row is skipped must be known when it is read (a skipped row adds no record),
  // and needs no libphonenumber: empty <=> blank after trimming; too long <=> longer than kMaxValueBytes
  // after trimming and not valid (a valid number's E.164 form is short). So blank values are skipped here,
  // values up to kMaxValueBytes are always kept (as E.164 or as invalid), and the rare longer ones wait in
  // `long_phones` for the memo once the worker has ended.
  constexpr int32_t kSkipEmpty = -1, kSkipTooLong = -2;
  ActivePhoneWorker phone_worker(config.phone_region);
  identity::StringInterner phone_raw;  // type byte + raw value; entry i is the worker's spelling i
  std::vector<int32_t> phone_identifier;  // per phone_raw entry, after the scan: its identifier
  struct LongPhone {
    int type;
    std::string source, key, value;
    int64_t at;
  };
  std::vector<LongPhone> long_phones;
  std::size_t long_phone_bytes = 0;
  std::string phone_key;
  std::string last_type_name;
  int last_type = -1;
  // Rows of one record often come together (a table's identifier columns unpivoted): the previous row's
  // record is reused without a hash lookup when (source, source_key) repeats.
  std::string last_source, last_key;
  int32_t last_record = -1;
  int64_t rows_seen = 0;

  // Rows are handled in batches of kBatch: as a row arrives it is checked, its value normalised (other
  // than phones) and the hashes of its record and identifier keys computed, with a prefetch of their
  // hash-table slots; when the batch is full, the slots' entries are prefetched, then the rows are interned
  // in arrival order. The lookups into tables of millions of entries (cache misses one after the other
  // when done row by row) then overlap. Same identifiers, records and links as row by row.
  constexpr int kBatch = 32;
  struct Pending {
    int type;
    bool phone;
    uint32_t source_at, source_len, key_at, key_len;  // in batch_bytes
    uint32_t value_at, value_len;  // a phone's phone_raw key in batch_bytes (other values: batch_normalised)
    int64_t at;
    uint64_t record_hash, value_hash;  // value_hash: of the identifier key, or of phone_raw's key
  };
  Pending pending[kBatch];
  identity::Normalised batch_normalised[kBatch];
  std::string batch_bytes;
  int batched = 0;
  auto keep = [&](std::string_view text, uint32_t& at, uint32_t& len) {
    at = static_cast<uint32_t>(batch_bytes.size());
    len = static_cast<uint32_t>(text.size());
    batch_bytes.append(text);
  };
  auto bytes_of = [&](uint32_t at, uint32_t len) { return std::string_view(batch_bytes.data() + at, len); };
  // The identifier of a normalised value, or kSkipEmpty / kSkipTooLong.
  auto identifier_of = [&](int type, const identity::Normalised& norm, uint64_t hash) -> int32_t {
    if (norm.outcome == identity::Outcome::kEmpty) return kSkipEmpty;
    if (norm.value.size() > identity::kMaxValueBytes) return kSkipTooLong;
    return staged.add_identifier(type, norm.value, norm.outcome == identity::Outcome::kOk, hash);
  };
  // A skipped value is counted and true returned; a kept one moves the high-water mark.
  auto skipped_value = [&](int32_t identifier) {
    if (identifier == kSkipEmpty) ++skipped.empty;
    if (identifier == kSkipTooLong) ++skipped.too_long;
    return identifier == kSkipEmpty || identifier == kSkipTooLong;
  };
  auto advance_high_water_mark = [&](int64_t at) {
    high_water_mark = has_hwm ? std::max(high_water_mark, at) : at;
    has_hwm = true;
  };
  auto finish_row = [&](const Pending& p, identity::Normalised& norm) {
    int32_t identifier;
    if (p.phone) {
      const std::string_view raw_key = bytes_of(p.value_at, p.value_len);  // type byte + raw value
      const int32_t entry = phone_raw.intern(raw_key, p.value_hash);
      if (entry == phone_worker->count()) phone_worker->add(raw_key.substr(1));  // first time: normalised by the worker
      // A placeholder, replaced once the scan has ended: ~entry is negative, and may equal kSkipEmpty or
      // kSkipTooLong, which is why the skip checks below are for other values only (a phone row that got
      // here is kept).
      identifier = ~entry;
    } else {
      identifier = identifier_of(p.type, norm, p.value_hash);
      if (skipped_value(identifier)) return;
    }
    advance_high_water_mark(p.at);
    const std::string_view source = bytes_of(p.source_at, p.source_len), key = bytes_of(p.key_at, p.key_len);
    if (last_record < 0 || key != last_key || source != last_source) {
      last_record = staged.add_record(source, key, p.record_hash);
      last_source.assign(source);
      last_key.assign(key);
    }
    links.push_back(IngestLink{last_record, identifier, p.at});
  };
  auto flush_batch = [&] {
    for (int i = 0; i < batched; ++i) {
      staged.prefetch_record(pending[i].record_hash, 1);
      if (pending[i].phone)
        phone_raw.prefetch_entry(pending[i].value_hash);
      else if (pending[i].value_hash != 0)
        staged.prefetch_identifier(pending[i].value_hash, 1);
    }
    for (int i = 0; i < batched; ++i) finish_row(pending[i], batch_normalised[i]);
    batched = 0;
    batch_bytes.clear();
  };
  for_each_row(sql.c_str(), params, {true, true, true, true, false}, [&](const RowView& row) {
    ++read;
    if ((++rows_seen & 16383) == 0)
      memory.check(staged.memory_bytes() + links.memory_bytes() + phone_raw.memory_bytes() +
                   phone_worker->memory_bytes() + long_phone_bytes);
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
    const bool phone = staged.types()[type].normaliser == identity::Normaliser::kPhone;
    if (phone) {  // skipped or kept: decided now, without libphonenumber (see phone_worker above)
      const std::size_t trimmed = identity::trimmed_size(value.view());
      if (trimmed == 0) {
        ++skipped.empty;
        return;
      }
      if (trimmed > identity::kMaxValueBytes) {
        long_phones.push_back(LongPhone{type, std::string(source.view()), std::string(key.view()),
                                        std::string(value.view()), static_cast<int64_t>(row.datum(4))});
        long_phone_bytes += sizeof(LongPhone) + source.len + key.len + value.len;
        return;
      }
    }
    Pending& p = pending[batched];
    p.type = type;
    p.phone = phone;
    keep(source.view(), p.source_at, p.source_len);
    keep(key.view(), p.key_at, p.key_len);
    p.at = static_cast<int64_t>(row.datum(4));
    p.record_hash = IdentityGraph::record_hash(source.view(), key.view());
    staged.prefetch_record(p.record_hash, 0);
    if (p.phone) {  // kept as phone_raw's key, built once: type byte + value
      phone_key.assign(1, static_cast<char>(type));
      phone_key.append(value.view());
      keep(phone_key, p.value_at, p.value_len);
      p.value_hash = identity::hash_bytes(phone_key);
      phone_raw.prefetch_slot(p.value_hash);
    } else {
      identity::Normalised& norm = batch_normalised[batched];
      normaliser.normalise(staged.types()[type].normaliser, value.view(), norm);
      p.value_hash = 0;
      if (norm.outcome != identity::Outcome::kEmpty && norm.value.size() <= identity::kMaxValueBytes) {
        p.value_hash = IdentityGraph::identifier_hash(type, norm.value);
        staged.prefetch_identifier(p.value_hash, 0);
      }
    }
    if (++batched == kBatch) flush_batch();
  }, /*parallel_ok=*/true);  // the planner decides; it pays off for the few rows after a high-water mark
  flush_batch();
  memory.check(staged.memory_bytes() + links.memory_bytes() + phone_raw.memory_bytes() +
               phone_worker->memory_bytes() + long_phone_bytes);
  if (!unknown_types.empty()) {
    std::string list;
    for (const std::string& t : unknown_types) list += (list.empty() ? "\"" : ", \"") + t + "\"";
    fail(sqlstate::kInvalidParameterValue, "unknown id_type " + list + " in " + name,
         "cdp.identifier_types lists the identifier types merge_identities accepts.",
         "Add the type to cdp.identifier_types or filter it out of the observations.");
  }

  // The phones: wait for the worker (cancel is polled meanwhile), then number the normalised values as
  // identifiers in entry order and put them into the links in place of the placeholders.
  phone_worker->finish([&interrupts] { interrupts.poll(); });
  phone_identifier.reserve(static_cast<std::size_t>(phone_raw.size()));
  for (int32_t entry = 0; entry < phone_raw.size(); ++entry) {
    interrupts.tick();
    const int type = static_cast<uint8_t>(phone_raw.at(entry)[0]);
    normalised.outcome = phone_worker->outcome(entry);
    normalised.value.assign(phone_worker->value(entry));
    const int32_t identifier =
        identifier_of(type, normalised, IdentityGraph::identifier_hash(type, normalised.value));
    if (identifier < 0)  // cannot happen: the value was not blank and at most kMaxValueBytes long
      fail(sqlstate::kInternalError, "phone value skipped after it was linked");
    phone_identifier.push_back(identifier);
  }
  for (IngestLink& link : links) {
    interrupts.tick();
    if (link.identifier < 0) link.identifier = phone_identifier[~link.identifier];
  }
  memory.check(staged.memory_bytes() + links.memory_bytes() + phone_raw.memory_bytes() +
               phone_worker->memory_bytes() + long_phone_bytes + phone_identifier.capacity() * sizeof(int32_t));
  // Phone values longer than kMaxValueBytes (kept only if valid): the worker has ended, so its memo is free.
  for (const LongPhone& row : long_phones) {
    interrupts.tick();
    normalised.outcome = phone_worker->memo().normalise(row.value, normalised.value);
    const int32_t identifier =
        identifier_of(row.type, normalised, IdentityGraph::identifier_hash(row.type, normalised.value));
    if (skipped_value(identifier)) continue;
    advance_high_water_mark(row.at);
    links.push_back(IngestLink{staged.add_record(row.source, row.key), identifier, row.at});
  }

  // What only reading needs goes before the links are sorted and stored (the run's memory peak).
  phone_worker.reset();
  phone_raw = identity::StringInterner();
  std::vector<int32_t>().swap(phone_identifier);
  std::vector<LongPhone>().swap(long_phones);
  phases.lap("read");
  notice("merge_identities: read " + std::to_string(read) + " observations (" +
         std::to_string(skipped.null_field + skipped.empty + skipped.too_long) + " skipped) in " +
         std::to_string(phases.ms.back().second) + " ms");

  // Sorted so that a link read twice is adjacent (merged when written, below). An incremental run appends
  // into a table whose index (hashtext(source_key)) is kept row by row: records in that index's order put
  // consecutive entries on the same leaf pages instead of a random leaf per link.
  if (full_rebuild) {
    std::sort(links.begin(), links.end(), [](const IngestLink& a, const IngestLink& b) {
      return a.record != b.record ? a.record < b.record : a.identifier < b.identifier;
    });
  } else {
    std::vector<int32_t> key_hash(staged.record_count());
    for (int32_t r = 0; r < staged.record_count(); ++r) key_hash[r] = hashtext_of(staged.record_key(r));
    std::sort(links.begin(), links.end(), [&](const IngestLink& a, const IngestLink& b) {
      if (a.record != b.record)
        return key_hash[a.record] != key_hash[b.record] ? key_hash[a.record] < key_hash[b.record] : a.record < b.record;
      return a.identifier < b.identifier;
    });
  }
  spi_run("SELECT EXISTS (SELECT FROM cdp.identity_tombstones)::int4::int8");
  const bool tombstones = result_int64(0, 1) != 0;
  if (full_rebuild) {
    // TRUNCATE is transactional and far cheaper than DELETE; only this procedure reads identity_links.
    spi_run("SELECT pg_catalog.has_table_privilege('cdp.identity_links', 'TRUNCATE')::int4::int8");
    spi_run(result_int64(0, 1) ? "TRUNCATE cdp.identity_links" : "DELETE FROM cdp.identity_links");
  }

  // A full rebuild without tombstones stores exactly the links read, so they are the graph: it is resolved
  // on a worker thread while they are stored (background). The links are compacted first, in place: a
  // distinct link keeps (record, identifier, first seen) where its first observation was, the few seen at
  // several times keep their last seen aside, and the graph gets its own record << 32 | identifier pairs.
  const bool to_graph = full_rebuild && !tombstones;
  // The distinct link starting at links[i] (a link read twice lies next to its twin), first and last seen
  // merged; i moves past it.
  struct Distinct {
    int32_t record, identifier;
    int64_t first_seen, last_seen;
  };
  auto next_distinct = [&links](std::size_t& i) {
    Distinct d{links[i].record, links[i].identifier, links[i].at, links[i].at};
    for (++i; i < links.size() && links[i].record == d.record && links[i].identifier == d.identifier; ++i) {
      d.first_seen = std::min(d.first_seen, links[i].at);
      d.last_seen = std::max(d.last_seen, links[i].at);
    }
    return d;
  };
  std::vector<std::pair<std::size_t, int64_t>> later_seen;  // (distinct link, last seen) when not its first seen
  std::vector<uint8_t> valid;  // per identifier, read before resolving (which rewrites the reasons) starts
  if (to_graph) {
    background.prepare(staged, config, memory, phases);  // frees the lookups before the pairs take room
    PodArray<uint64_t> pairs;
    pairs.reserve(links.size());  // address space only: what is written is resident
    std::size_t distinct = 0;
    for (std::size_t i = 0; i < links.size();) {
      const Distinct d = next_distinct(i);
      pairs.push_back(static_cast<uint64_t>(d.record) << 32 | static_cast<uint32_t>(d.identifier));
      staged.note_seen(d.identifier, d.first_seen, d.last_seen);
      if (d.last_seen != d.first_seen) later_seen.emplace_back(distinct, d.last_seen);
      links[distinct++] = IngestLink{d.record, d.identifier, d.first_seen};  // never past i: written behind it
      if ((distinct & 4095) == 0) interrupts.tick();
    }
    links.truncate(distinct);
    links.shrink_to_fit();
    staged.adopt_links(std::move(pairs));
    valid.resize(static_cast<std::size_t>(staged.identifier_count()));
    for (int32_t i = 0; i < staged.identifier_count(); ++i)
      valid[i] = staged.identifier_reason(i) != identity::Reason::kInvalid;
    background.start(links.memory_bytes() + later_seen.capacity() * sizeof(later_seen[0]) + valid.size());
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
  const bool direct = !tombstones && appender.usable();
  // While a background resolve runs this reads only the graph's strings, which it does not change.
  auto store = [&](int32_t record, int32_t identifier, int64_t first_seen, int64_t last_seen, bool is_valid) {
    const std::string_view type_name = staged.types()[staged.identifier_type(identifier)].name;
    if (direct) {
      appender.repeated_text(0, staged.record_source(record));
      appender.text(1, staged.record_key(record));
      appender.repeated_text(2, type_name);
      appender.text(3, staged.identifier_value(identifier));
      appender.boolean(4, is_valid);
      appender.int8(5, first_seen);
      appender.int8(6, last_seen);
      appender.append();
    } else {
      batch.text(0, staged.record_source(record));
      batch.text(1, staged.record_key(record));
      batch.text(2, type_name);
      batch.text(3, staged.identifier_value(identifier));
      batch.int8(4, is_valid);
      batch.int8(5, first_seen);
      batch.int8(6, last_seen);
      batch.row_done();
    }
  };
  if (to_graph) {
    std::size_t next_later = 0;
    for (std::size_t w = 0; w < links.size(); ++w) {
      const IngestLink& link = links[w];
      int64_t last_seen = link.at;
      if (next_later < later_seen.size() && later_seen[next_later].first == w) last_seen = later_seen[next_later++].second;
      store(link.record, link.identifier, link.at, last_seen, valid[link.identifier] != 0);
      if ((w & 4095) == 4095) interrupts.tick();
      if ((w & 0xFFFFF) == 0xFFFFF) links.discard_front(w);  // what is stored goes back to the kernel
    }
  } else {
    // One pass over the sorted links: each distinct link (first/last seen merged) is stored, and added to
    // the new pairs (an incremental run re-resolves what they touch).
    if (!full_rebuild) new_pairs.reserve(links.size());
    int64_t distinct = 0;
    for (std::size_t i = 0; i < links.size();) {
      const Distinct d = next_distinct(i);
      if ((++distinct & 4095) == 0) interrupts.tick();
      store(d.record, d.identifier, d.first_seen, d.last_seen,
            staged.identifier_reason(d.identifier) != identity::Reason::kInvalid);
      if (!full_rebuild) new_pairs.push_back(NewLink{d.record, d.identifier, d.first_seen, d.last_seen});
    }
  }
  links.release();
  std::vector<std::pair<std::size_t, int64_t>>().swap(later_seen);
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


}  // namespace cdp::pg::identity_glue
