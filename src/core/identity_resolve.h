// The identity resolver: records and identifiers form a bipartite graph; linked identifiers join
// records into persons under hub caps and per-type limits; stable person ids survive reruns.
// Pure C++ (docs/identity.md, "Rules"). The glue feeds it through add_* and reads the results.
#pragma once

#include "core/identity_normalize.h"
#include "core/interrupt.h"
#include "core/pod_array.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace cdp::identity {

// 64-bit hash of a byte string (FNV-1a finished with a splitmix64 avalanche); the canonical
// order of records and identifiers, so results never depend on input row order.
uint64_t hash_bytes(std::string_view bytes);

// Allocates large arrays on 2 MB boundaries and asks for transparent huge pages: a hash table of
// hundreds of MB probed at random then costs far fewer TLB misses (a hint; ordinary pages otherwise).
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(std::size_t n);
  void deallocate(T* p, std::size_t) { std::free(p); }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};
void* allocate_huge_page_aligned(std::size_t bytes);  // std::bad_alloc when out of memory
template <class T>
T* HugePageAllocator<T>::allocate(std::size_t n) {
  return static_cast<T*>(allocate_huge_page_aligned(n * sizeof(T)));
}
// The graph's per-record, per-identifier and per-link arrays, read at random while resolving and writing.
template <class T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

// Strings stored once in an arena and numbered densely (0, 1, ...) in insertion order; open addressing.
// Each slot holds the top 32 bits of its key's hash with the key's index, so a probe rejects other keys
// without touching them and confirms a candidate by one look at its bytes; a key's home slot is the top
// bits of its hash, so growing re-places the slots without rehashing. The hashes themselves are not kept:
// hash(index) recomputes one from the bytes.
class StringInterner {
 public:
  int32_t intern(std::string_view key);     // index of key, inserting it when new
  // The same with hash == hash_bytes(key) computed earlier. A reader interning many keys hashes them
  // ahead, calls prefetch_slot(hash) and later prefetch_entry(hash) for each, then interns them in order:
  // the table's cache lines are on their way while other keys are handled (hints only; any order works).
  int32_t intern(std::string_view key, uint64_t hash);
  void prefetch_slot(uint64_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash >> shift_]);
  }
  void prefetch_entry(uint64_t hash) const {
    if (slots_.empty()) return;
    const std::size_t mask = slots_.size() - 1;
    const uint32_t tag = static_cast<uint32_t>(hash >> 32);
    // The offsets of the candidates on the key's probe sequence (up to 8) whose hash tags match.
    for (std::size_t slot = hash >> shift_, n = 0; n < 8; slot = (slot + 1) & mask, ++n) {
      const uint64_t entry = slots_[slot];
      if (entry == 0) return;
      if (static_cast<uint32_t>(entry >> 32) == tag) __builtin_prefetch(&offsets_[static_cast<uint32_t>(entry) - 1]);
    }
  }
  int32_t find(std::string_view key) const;  // -1 when absent
  StringInterner() { offsets_.push_back(0); }
  std::string_view at(int32_t index) const {
    return std::string_view(arena_.data() + offsets_[index], offsets_[index + 1] - offsets_[index]);
  }
  uint64_t hash(int32_t index) const { return hash_bytes(at(index)); }  // recomputed: works after release_lookup too
  int32_t size() const { return static_cast<int32_t>(offsets_.size() - 1); }
  std::size_t memory_bytes() const;
  void reserve(std::size_t count, std::size_t bytes);
  // Frees the hash table; at(), hash() and size() keep working, intern/find must not be called.
  void release_lookup();

 private:
  void grow();
  int32_t probe(std::string_view key, uint64_t hash, std::size_t& slot) const;  // index, or -1 at the empty `slot`
  // PodArray: grown by realloc, only what is written is resident (pod_array.h).
  PodArray<char> arena_;
  PodArray<uint32_t> offsets_;  // string i is arena_[offsets_[i], offsets_[i + 1])
  std::vector<uint64_t, HugePageAllocator<uint64_t>> slots_;  // 0 = empty, else (hash >> 32) << 32 | (index + 1); a power of two
  int shift_ = 64;               // home slot of a hash: hash >> shift_ (64 - log2 of the slot count)
};

// One row of cdp.identifier_types.
struct TypeRule {
  std::string name;
  Normaliser normaliser = Normaliser::kTrim;
  int max_per_person = 0;     // 0 = unlimited
  int priority = 0;           // higher links first and wins conflicts
  int64_t hub_threshold = 0;  // 0 = no cap; a value on more records than this links nobody
};

// Why an identifier links nobody (cdp.person_identifiers.reason).
enum class Reason : uint8_t { kNone = 0, kInvalid, kBlocklist, kHub, kConflictCut };
const char* reason_name(Reason reason);

struct Cut {
  int32_t identifier;     // the weaker identifier whose link was cut
  int32_t record;         // the record it no longer joins
  int32_t conflict_type;  // the limited type that would have exceeded its maximum
};

enum class EventKind : uint8_t { kMerge, kSplit };
struct Event {
  EventKind kind;
  int64_t from_person;
  int64_t to_person;
  int32_t identifier;  // the identifier that caused it, -1 when unknown (e.g. an erased identifier)
};

struct ResolveStats {
  int64_t records = 0, identifiers = 0, links = 0, persons = 0;
  int64_t linked_identifiers = 0, invalid = 0, blocklisted = 0, hubs = 0, conflict_cut_identifiers = 0;
  int64_t cut_links = 0, merges = 0, splits = 0, new_persons = 0;
  int64_t previous_records = 0, changed_records = 0;  // jitter = changed / previous
  double jitter() const { return previous_records ? double(changed_records) / double(previous_records) : 0.0; }
};

class IdentityGraph {
 public:
  // Types are kept sorted by name; type indexes refer to that order.
  explicit IdentityGraph(std::vector<TypeRule> types, Interrupts* interrupts = nullptr);

  const std::vector<TypeRule>& types() const { return types_; }
  int type_index(std::string_view name) const;  // -1 when unknown
  // Where resolve() and the other long loops poll for cancellation (nullptr: never). A graph resolved on a
  // worker thread polls one that never calls into PostgreSQL.
  void set_interrupts(Interrupts* interrupts) { interrupts_ = interrupts; }

  int32_t add_record(std::string_view source, std::string_view source_key);
  // Batched reading (see StringInterner::prefetch_slot): the hashes of a record's and of an identifier's
  // key, prefetches of their hash-table entries (stage 0: slot, 1: entry), and add_* with the hash given.
  static uint64_t record_hash(std::string_view source, std::string_view source_key);
  static uint64_t identifier_hash(int type, std::string_view value);
  void prefetch_record(uint64_t hash, int stage) const {
    stage == 0 ? records_.prefetch_slot(hash) : records_.prefetch_entry(hash);
  }
  void prefetch_identifier(uint64_t hash, int stage) const {
    stage == 0 ? identifiers_.prefetch_slot(hash) : identifiers_.prefetch_entry(hash);
  }
  int32_t add_record(std::string_view source, std::string_view source_key, uint64_t hash);
  int32_t add_identifier(int type, std::string_view value, bool valid, uint64_t hash);
  int32_t find_record(std::string_view source, std::string_view source_key) const;
  // valid = false: a value its normaliser rejected (kept for reporting, never linked).
  int32_t add_identifier(int type, std::string_view value, bool valid);
  int32_t find_identifier(int type, std::string_view value) const;
  void add_link(int32_t record, int32_t identifier, int64_t first_seen, int64_t last_seen);
  void reserve_links(std::size_t links) { link_pairs_.reserve(links); }  // room for this many links
  // Links written elsewhere as record << 32 | identifier (the reader compacts them into its own buffer),
  // with their identifiers' first/last seen already merged by note_seen; replaces the links added so far.
  void adopt_links(PodArray<uint64_t> pairs) {
    link_pairs_ = std::move(pairs);
    link_pairs_.shrink_to_fit();
  }
  void note_seen(int32_t identifier, int64_t first_seen, int64_t last_seen) {
    if (first_seen < first_seen_[identifier]) first_seen_[identifier] = first_seen;
    if (last_seen > last_seen_[identifier]) last_seen_[identifier] = last_seen;
  }
  void set_previous_person(int32_t record, int64_t person_id) { previous_[record] = person_id; }
  // For a value of which only some records are loaded (an incremental run's subgraph): its true number of
  // records (which the hub cap tests and identifier_records reports) and its first/last seen over all of them.
  void set_identifier_totals(int32_t identifier, int64_t records, int64_t first_seen, int64_t last_seen);

  // Blocklist is applied here (not at ingest) so a new entry splits persons on the next run.
  void resolve(const Blocklist& blocklist);
  // How many never-used person ids assign_ids needs; it then numbers them first_new_id, +1, ...
  int64_t new_ids_needed() const { return new_components_; }
  void assign_ids(int64_t first_new_id);
  // Frees the string hash tables (a few hundred MB at 10M records) before resolving, whose peak then no
  // longer holds them: add_* and find_* must not be called again; the strings themselves stay.
  void release_lookups() {
    records_.release_lookup();
    identifiers_.release_lookup();
  }
  // After assign_ids, frees what only resolving needs (the string hash tables and hashes, the adjacency,
  // union sizes, limited-value lists): a run writes its results with ~25 bytes per link less resident.
  // The result accessors keep working; add_*, find_*, resolve and assign_ids must not be called again.
  void release_resolving_state();

  // Results (after assign_ids).
  int32_t record_count() const { return records_.size(); }
  int32_t identifier_count() const { return identifiers_.size(); }
  std::string_view record_source(int32_t record) const;
  std::string_view record_key(int32_t record) const;
  // source '\0' source_key: byte order of these is (source, source_key) order.
  std::string_view record_bytes(int32_t record) const { return records_.at(record); }
  // one byte type index (types are sorted by name) + value: byte order is (type name, value) order.
  std::string_view identifier_bytes(int32_t identifier) const { return identifiers_.at(identifier); }
  int64_t record_person(int32_t record) const {
    return person_per_record_ ? person_of_root_[record] : person_of_root_[find_const(record)];
  }
  int64_t previous_person(int32_t record) const { return previous_[record]; }
  int identifier_type(int32_t identifier) const { return static_cast<uint8_t>(identifiers_.at(identifier)[0]); }
  std::string_view identifier_value(int32_t identifier) const { return identifiers_.at(identifier).substr(1); }
  Reason identifier_reason(int32_t identifier) const { return static_cast<Reason>(reason_[identifier]); }
  int64_t identifier_person(int32_t identifier) const;  // 0 when it links nobody
  int64_t identifier_records(int32_t identifier) const {
    if (static_cast<std::size_t>(identifier) < total_records_.size() && total_records_[identifier] > 0)
      return total_records_[identifier];
    return offsets_[identifier + 1] - offsets_[identifier];
  }
  int64_t identifier_first_seen(int32_t identifier) const { return first_seen_[identifier]; }
  int64_t identifier_last_seen(int32_t identifier) const { return last_seen_[identifier]; }
  // Persons in ascending id order with their record counts.
  const std::vector<std::pair<int64_t, int64_t>>& persons() const { return persons_; }
  const std::vector<Cut>& cuts() const { return cuts_; }
  const std::vector<Event>& events() const { return events_; }
  const ResolveStats& stats() const { return stats_; }
  std::size_t memory_bytes() const;

 private:
  int32_t find(int32_t record);
  int32_t find_const(int32_t record) const;
  // Records in canonical order (hash of the key, then the key's bytes).
  HugeVector<int32_t> canonical_records() const;
  // Identifiers (all, or only those linking: reason kNone) in canonical order: priority descending, type,
  // hash of the key, the key's bytes.
  HugeVector<int32_t> canonical_identifiers(bool linking_only) const;
  void build_adjacency(const HugeVector<int32_t>& record_order);
  void link_components(const HugeVector<int32_t>& order);
  void attribute_events(const HugeVector<int32_t>& order);

  std::vector<TypeRule> types_;
  Interrupts* interrupts_;
  Interrupts no_interrupts_;
  Interrupts& ticks() { return interrupts_ ? *interrupts_ : no_interrupts_; }

  StringInterner records_;      // source '\0' source_key
  StringInterner identifiers_;  // one byte type index + normalised value
  PodArray<int64_t> previous_;
  PodArray<uint8_t> reason_;
  PodArray<int64_t> first_seen_, last_seen_;
  HugeVector<int64_t> total_records_;  // per identifier, 0 = all its records are loaded (set_identifier_totals)
  PodArray<uint64_t> link_pairs_;  // raw links, record << 32 | identifier, released after build_adjacency

  // After resolve.
  HugeVector<int64_t> offsets_;         // identifier -> range in adjacent_
  HugeVector<int32_t> adjacent_;        // records of each identifier, in canonical record order
  HugeVector<uint8_t> cut_;             // per adjacency slot: 1 = link cut
  HugeVector<int32_t> parent_, size_;   // union-find over records
  HugeVector<int32_t> limited_head_;    // per root: first attached value of a limited type
  HugeVector<int32_t> limited_next_, limited_identifier_;
  HugeVector<int32_t> anchor_;          // identifier -> a record of its person, -1 if none
  HugeVector<int32_t> component_order_;  // roots in canonical order (by smallest record)
  HugeVector<int64_t> person_of_root_;  // root -> person id; after assign_ids: record -> person id
  bool person_per_record_ = false;
  int64_t new_components_ = 0;
  std::vector<std::pair<int64_t, int64_t>> persons_;
  std::vector<Cut> cuts_;
  std::vector<Event> events_;
  ResolveStats stats_;
};

}  // namespace cdp::identity
