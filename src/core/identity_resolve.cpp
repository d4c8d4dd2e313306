#include "core/identity_resolve.h"

#include "core/error.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <numeric>
#include <sys/mman.h>
#include <unordered_map>

#include "core/no_postgres.h"

namespace cdp::identity {

uint64_t hash_bytes(std::string_view bytes) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h += 0x9E3779B97F4A7C15ULL;
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
  return h ^ (h >> 31);
}

// ---- StringInterner ----

void* allocate_huge_page_aligned(std::size_t bytes) {
  constexpr std::size_t kHuge = 2 << 20;
  if (bytes < kHuge) {
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) throw std::bad_alloc();
    return p;
  }
  const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, rounded);
  if (!p) throw std::bad_alloc();
  madvise(p, rounded, MADV_HUGEPAGE);  // before the pages are touched; failure just leaves small pages
  return p;
}

void StringInterner::reserve(std::size_t count, std::size_t bytes) {
  arena_.reserve(bytes);
  offsets_.reserve(count + 1);
}

void StringInterner::grow() {
  const std::size_t capacity = slots_.empty() ? 1024 : slots_.size() * 2;
  decltype(slots_) old(capacity, 0);
  old.swap(slots_);
  shift_ = 64 - __builtin_ctzll(capacity);
  const std::size_t mask = capacity - 1;
  // The home slot is the top bits of the hash, which the tag holds (capacity <= 2^32).
  for (uint64_t entry : old) {
    if (entry == 0) continue;
    std::size_t slot = (entry >> 32) >> (shift_ - 32);
    while (slots_[slot] != 0) slot = (slot + 1) & mask;
    slots_[slot] = entry;
  }
}

int32_t StringInterner::probe(std::string_view key, uint64_t h, std::size_t& slot) const {
  const std::size_t mask = slots_.size() - 1;
  const uint32_t tag = static_cast<uint32_t>(h >> 32);
  for (slot = h >> shift_;; slot = (slot + 1) & mask) {
    const uint64_t entry = slots_[slot];
    if (entry == 0) return -1;
    if (static_cast<uint32_t>(entry >> 32) != tag) continue;
    const int32_t index = static_cast<int32_t>(static_cast<uint32_t>(entry) - 1);
    if (at(index) == key) return index;
  }
}

int32_t StringInterner::find(std::string_view key) const {
  if (slots_.empty()) return -1;
  std::size_t slot;
  return probe(key, hash_bytes(key), slot);
}

int32_t StringInterner::intern(std::string_view key) { return intern(key, hash_bytes(key)); }

int32_t StringInterner::intern(std::string_view key, uint64_t h) {
  // Load factor at most 2/3 keeps probes short.
  if ((static_cast<std::size_t>(size()) + 1) * 3 > slots_.size() * 2) grow();
  std::size_t slot;
  const int32_t found = probe(key, h, slot);
  if (found >= 0) return found;
  if (size() >= INT32_MAX - 1)
    throw Error(sqlstate::kProgramLimitExceeded, "identity merge supports at most 2147483646 records and identifiers");
  // 32-bit offsets (4 bytes per string instead of 8): the keys of one kind, each stored once, must fit in 4 GB.
  if (arena_.size() + key.size() > UINT32_MAX)
    throw Error(sqlstate::kProgramLimitExceeded,
                "identity merge supports at most 4294967295 bytes of distinct record keys, and as many of "
                "distinct identifier values, per run");
  const int32_t index = size();
  arena_.append(key.begin(), key.end());
  offsets_.push_back(static_cast<uint32_t>(arena_.size()));
  slots_[slot] = (h >> 32) << 32 | (static_cast<uint64_t>(index) + 1);
  return index;
}

void StringInterner::release_lookup() {
  decltype(slots_)().swap(slots_);
  shift_ = 64;
}

std::size_t StringInterner::memory_bytes() const {
  return arena_.memory_bytes() + offsets_.memory_bytes() + slots_.capacity() * sizeof(uint64_t);
}

// ---- IdentityGraph ----

const char* reason_name(Reason reason) {
  switch (reason) {
    case Reason::kNone: return "";
    case Reason::kInvalid: return "invalid";
    case Reason::kBlocklist: return "blocklist";
    case Reason::kHub: return "hub";
    case Reason::kConflictCut: return "conflict_cut";
  }
  return "";
}

IdentityGraph::IdentityGraph(std::vector<TypeRule> types, Interrupts* interrupts)
    : types_(std::move(types)), interrupts_(interrupts) {
  std::sort(types_.begin(), types_.end(), [](const TypeRule& a, const TypeRule& b) { return a.name < b.name; });
  if (types_.size() > 255)
    throw Error(sqlstate::kProgramLimitExceeded, "cdp.identifier_types may hold at most 255 types");
}

int IdentityGraph::type_index(std::string_view name) const {
  auto it = std::lower_bound(types_.begin(), types_.end(), name,
                             [](const TypeRule& t, std::string_view n) { return t.name < n; });
  return it != types_.end() && it->name == name ? static_cast<int>(it - types_.begin()) : -1;
}

namespace {
thread_local std::string key_buffer;
std::string_view record_key_of(std::string_view source, std::string_view key) {
  key_buffer.assign(source);
  key_buffer.push_back('\0');  // PostgreSQL text never contains NUL, so the split is unambiguous
  key_buffer.append(key);
  return key_buffer;
}
std::string_view identifier_key_of(int type, std::string_view value) {
  key_buffer.assign(1, static_cast<char>(static_cast<uint8_t>(type)));
  key_buffer.append(value);
  return key_buffer;
}
}  // namespace

int32_t IdentityGraph::add_record(std::string_view source, std::string_view source_key) {
  return add_record(source, source_key, record_hash(source, source_key));
}

uint64_t IdentityGraph::record_hash(std::string_view source, std::string_view source_key) {
  return hash_bytes(record_key_of(source, source_key));
}

uint64_t IdentityGraph::identifier_hash(int type, std::string_view value) {
  return hash_bytes(identifier_key_of(type, value));
}

int32_t IdentityGraph::add_record(std::string_view source, std::string_view source_key, uint64_t hash) {
  int32_t index = records_.intern(record_key_of(source, source_key), hash);
  if (index == static_cast<int32_t>(previous_.size())) previous_.push_back(0);
  return index;
}

int32_t IdentityGraph::find_record(std::string_view source, std::string_view source_key) const {
  return records_.find(record_key_of(source, source_key));
}

int32_t IdentityGraph::add_identifier(int type, std::string_view value, bool valid) {
  return add_identifier(type, value, valid, identifier_hash(type, value));
}

int32_t IdentityGraph::add_identifier(int type, std::string_view value, bool valid, uint64_t hash) {
  int32_t index = identifiers_.intern(identifier_key_of(type, value), hash);
  if (index == static_cast<int32_t>(reason_.size())) {
    reason_.push_back(static_cast<uint8_t>(Reason::kNone));
    first_seen_.push_back(INT64_MAX);
    last_seen_.push_back(INT64_MIN);
  }
  if (!valid) reason_[index] = static_cast<uint8_t>(Reason::kInvalid);
  return index;
}

int32_t IdentityGraph::find_identifier(int type, std::string_view value) const {
  return identifiers_.find(identifier_key_of(type, value));
}

void IdentityGraph::add_link(int32_t record, int32_t identifier, int64_t first_seen, int64_t last_seen) {
  link_pairs_.push_back(static_cast<uint64_t>(record) << 32 | static_cast<uint32_t>(identifier));
  note_seen(identifier, first_seen, last_seen);
}

void IdentityGraph::set_identifier_totals(int32_t identifier, int64_t records, int64_t first_seen, int64_t last_seen) {
  if (total_records_.size() < static_cast<std::size_t>(identifiers_.size())) total_records_.resize(identifiers_.size(), 0);
  total_records_[identifier] = records;
  first_seen_[identifier] = std::min(first_seen_[identifier], first_seen);
  last_seen_[identifier] = std::max(last_seen_[identifier], last_seen);
}

std::string_view IdentityGraph::record_source(int32_t record) const {
  std::string_view key = records_.at(record);
  return key.substr(0, key.find('\0'));
}

std::string_view IdentityGraph::record_key(int32_t record) const {
  std::string_view key = records_.at(record);
  return key.substr(key.find('\0') + 1);
}

namespace {
// A sort key: (group, hash), ties broken by the bytes of index's key.
struct Keyed {
  uint64_t hash;
  uint32_t index;
  uint32_t group;
};
template <class Bytes>
HugeVector<int32_t> sort_keyed(HugeVector<Keyed>& items, Bytes bytes) {
  auto same = [](const Keyed& a, const Keyed& b) { return a.group == b.group && a.hash == b.hash; };
  std::sort(items.begin(), items.end(), [](const Keyed& a, const Keyed& b) {
    return a.group != b.group ? a.group < b.group : a.hash < b.hash;
  });
  for (std::size_t i = 0; i < items.size();) {  // equal hashes (a 64-bit collision): by bytes
    std::size_t j = i + 1;
    while (j < items.size() && same(items[i], items[j])) ++j;
    if (j - i > 1)
      std::sort(items.begin() + i, items.begin() + j,
                [&](const Keyed& a, const Keyed& b) { return bytes(a.index) < bytes(b.index); });
    i = j;
  }
  HugeVector<int32_t> order(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) order[i] = static_cast<int32_t>(items[i].index);
  return order;
}
}  // namespace

HugeVector<int32_t> IdentityGraph::canonical_records() const {
  HugeVector<Keyed> items(records_.size());
  for (int32_t r = 0; r < records_.size(); ++r) items[r] = {records_.hash(r), static_cast<uint32_t>(r), 0};
  return sort_keyed(items, [this](uint32_t r) { return records_.at(static_cast<int32_t>(r)); });
}

HugeVector<int32_t> IdentityGraph::canonical_identifiers(bool linking_only) const {
  // Group of a type: its position by priority descending, then type index.
  std::vector<uint32_t> by_priority(types_.size());
  std::iota(by_priority.begin(), by_priority.end(), 0);
  std::stable_sort(by_priority.begin(), by_priority.end(),
                   [this](uint32_t a, uint32_t b) { return types_[a].priority > types_[b].priority; });
  std::vector<uint32_t> group(types_.size());
  for (std::size_t g = 0; g < by_priority.size(); ++g) group[by_priority[g]] = static_cast<uint32_t>(g);
  HugeVector<Keyed> items;
  for (int32_t i = 0; i < identifiers_.size(); ++i) {
    if (linking_only && static_cast<Reason>(reason_[i]) != Reason::kNone) continue;
    items.push_back({identifiers_.hash(i), static_cast<uint32_t>(i), group[identifier_type(i)]});
  }
  return sort_keyed(items, [this](uint32_t i) { return identifiers_.at(static_cast<int32_t>(i)); });
}

int32_t IdentityGraph::find(int32_t record) {
  while (parent_[record] != record) {
    parent_[record] = parent_[parent_[record]];  // path halving
    record = parent_[record];
  }
  return record;
}

int32_t IdentityGraph::find_const(int32_t record) const {
  while (parent_[record] != record) record = parent_[record];
  return record;
}

int64_t IdentityGraph::identifier_person(int32_t identifier) const {
  int32_t record = anchor_[identifier];
  return record < 0 ? 0 : record_person(record);
}

std::size_t IdentityGraph::memory_bytes() const {
  auto bytes = [](const auto& v) { return v.capacity() * sizeof(v[0]); };
  return records_.memory_bytes() + identifiers_.memory_bytes() + previous_.memory_bytes() + reason_.memory_bytes() +
         first_seen_.memory_bytes() + last_seen_.memory_bytes() + bytes(total_records_) + link_pairs_.memory_bytes() +
         bytes(offsets_) +
         bytes(adjacent_) + bytes(cut_) + bytes(parent_) + bytes(size_) + bytes(limited_head_) +
         bytes(limited_next_) + bytes(limited_identifier_) + bytes(anchor_) + bytes(component_order_) +
         bytes(person_of_root_) + bytes(persons_) + bytes(cuts_) + bytes(events_);
}

void IdentityGraph::build_adjacency(const HugeVector<int32_t>& record_order) {
  const int32_t n_ident = identifiers_.size();
  offsets_.assign(n_ident + 1, 0);
  for (uint64_t pair : link_pairs_) ++offsets_[static_cast<uint32_t>(pair) + 1];
  for (int32_t i = 0; i < n_ident; ++i) offsets_[i + 1] += offsets_[i];
  adjacent_.resize(link_pairs_.size());
  {
    // Filled with each record's canonical rank, so sorting needs no look-ups.
    HugeVector<int32_t> rank(record_order.size());
    for (std::size_t k = 0; k < record_order.size(); ++k) rank[record_order[k]] = static_cast<int32_t>(k);
    HugeVector<int64_t> fill(offsets_.begin(), offsets_.end() - 1);
    for (uint64_t pair : link_pairs_) {
      adjacent_[fill[static_cast<uint32_t>(pair)]++] = rank[static_cast<int32_t>(pair >> 32)];
      ticks().tick();
    }
  }
  link_pairs_.release();
  // Canonical record order inside each identifier; duplicates (the same link twice) dropped.
  int64_t write = 0;
  for (int32_t i = 0; i < n_ident; ++i) {
    int64_t begin = offsets_[i], end = offsets_[i + 1];
    std::sort(adjacent_.begin() + begin, adjacent_.begin() + end);
    offsets_[i] = write;
    int32_t last = -1;  // ranks are >= 0; written over with records as the range is compacted
    for (int64_t p = begin; p < end; ++p) {
      const int32_t rank = adjacent_[p];
      if (rank != last) adjacent_[write++] = record_order[rank];
      last = rank;
    }
    ticks().tick();
  }
  offsets_[n_ident] = write;
  adjacent_.resize(write);
  adjacent_.shrink_to_fit();
  cut_.assign(adjacent_.size(), 0);
}

void IdentityGraph::link_components(const HugeVector<int32_t>& order) {
  const int32_t n_rec = records_.size();
  parent_.resize(n_rec);
  std::iota(parent_.begin(), parent_.end(), 0);
  size_.assign(n_rec, 1);
  limited_head_.assign(n_rec, -1);
  anchor_.assign(identifiers_.size(), -1);
  std::vector<int32_t> counts(types_.size(), 0);

  auto count_into = [&](int32_t root, int sign) {
    for (int32_t node = limited_head_[root]; node >= 0; node = limited_next_[node])
      counts[identifier_type(limited_identifier_[node])] += sign;
  };
  // The first limited type whose maximum the union of roots a and b would exceed, or -1.
  auto violated = [&](int32_t a, int32_t b) -> int32_t {
    if (limited_head_[a] < 0 || limited_head_[b] < 0) return -1;
    count_into(a, 1);
    count_into(b, 1);
    int32_t bad = -1;
    for (std::size_t t = 0; t < types_.size(); ++t)
      if (bad < 0 && types_[t].max_per_person > 0 && counts[t] > types_[t].max_per_person) bad = t;
    count_into(a, -1);
    count_into(b, -1);
    return bad;
  };

  for (int32_t identifier : order) {
    const int type = identifier_type(identifier);
    const int limit = types_[type].max_per_person;
    int32_t anchor = -1;
    for (int64_t slot = offsets_[identifier]; slot < offsets_[identifier + 1]; ++slot) {
      ticks().tick();
      const int32_t record = adjacent_[slot];
      int32_t root = find(record);
      if (anchor < 0) {
        if (limit > 0) {
          int held = 0;
          for (int32_t node = limited_head_[root]; node >= 0; node = limited_next_[node])
            held += identifier_type(limited_identifier_[node]) == type;
          if (held + 1 > limit) {
            cut_[slot] = 1;
            cuts_.push_back({identifier, record, type});
            continue;
          }
          limited_identifier_.push_back(identifier);
          limited_next_.push_back(limited_head_[root]);
          limited_head_[root] = static_cast<int32_t>(limited_identifier_.size() - 1);
        }
        anchor = record;
        anchor_[identifier] = record;
        continue;
      }
      int32_t a = find(anchor);
      if (a == root) continue;
      int32_t bad = violated(a, root);
      if (bad >= 0) {
        cut_[slot] = 1;
        cuts_.push_back({identifier, record, bad});
        continue;
      }
      // Union by size; the lists of limited values are concatenated onto the new root.
      if (size_[a] < size_[root]) std::swap(a, root);
      parent_[root] = a;
      size_[a] += size_[root];
      if (limited_head_[root] >= 0) {
        int32_t tail = limited_head_[root];
        while (limited_next_[tail] >= 0) tail = limited_next_[tail];
        limited_next_[tail] = limited_head_[a];
        limited_head_[a] = limited_head_[root];
        limited_head_[root] = -1;
      }
    }
    if (anchor < 0) reason_[identifier] = static_cast<uint8_t>(Reason::kConflictCut);
  }
}

void IdentityGraph::resolve(const Blocklist& blocklist) {
  const int32_t n_ident = identifiers_.size();
  const int32_t n_rec = records_.size();
  person_per_record_ = false;
  HugeVector<int32_t> record_order = canonical_records();
  build_adjacency(record_order);
  stats_ = ResolveStats{};
  stats_.records = n_rec;
  stats_.identifiers = n_ident;
  stats_.links = static_cast<int64_t>(adjacent_.size());

  // Exclusions are recomputed every run from the current rules.
  for (int32_t i = 0; i < n_ident; ++i) {
    ticks().tick();
    Reason reason = static_cast<Reason>(reason_[i]) == Reason::kInvalid ? Reason::kInvalid : Reason::kNone;
    const TypeRule& rule = types_[identifier_type(i)];
    if (reason == Reason::kNone && blocklist.match(identifier_type(i), identifier_value(i)))
      reason = Reason::kBlocklist;
    if (reason == Reason::kNone && rule.hub_threshold > 0 && identifier_records(i) > rule.hub_threshold)
      reason = Reason::kHub;
    reason_[i] = static_cast<uint8_t>(reason);
  }
  cuts_.clear();
  link_components(canonical_identifiers(true));

  // Compress and order the components canonically (by their first record in canonical order).
  for (int32_t r = 0; r < n_rec; ++r) {
    parent_[r] = find(r);
    ticks().tick();
  }
  component_order_.clear();
  {
    // A component's place is its first record's in canonical record order.
    std::vector<uint8_t> seen(n_rec, 0);
    for (int32_t r : record_order) {
      const int32_t root = parent_[r];
      if (!seen[root]) {
        seen[root] = 1;
        component_order_.push_back(root);
      }
    }
  }
  decltype(record_order)().swap(record_order);
  HugeVector<int32_t> rank(n_rec, 0);  // root -> canonical rank
  for (std::size_t i = 0; i < component_order_.size(); ++i) rank[component_order_[i]] = static_cast<int32_t>(i);

  // Stable ids: each previous person is kept by the component holding most of its records (ties: the
  // canonically first component); a component keeping several previous persons takes the oldest id.
  person_of_root_.assign(n_rec, 0);
  std::vector<int32_t> known;
  for (int32_t r = 0; r < n_rec; ++r)
    if (previous_[r] != 0) known.push_back(r);
  std::sort(known.begin(), known.end(), [&](int32_t a, int32_t b) {
    if (previous_[a] != previous_[b]) return previous_[a] < previous_[b];
    return rank[parent_[a]] < rank[parent_[b]];
  });
  events_.clear();
  struct Pending {
    int64_t from;
    int32_t root;
    bool keeper;
  };
  std::vector<Pending> pairs;
  for (std::size_t i = 0; i < known.size();) {
    const int64_t person = previous_[known[i]];
    std::size_t end = i;
    int32_t best_root = -1;
    std::size_t best_count = 0;
    std::size_t first_pair = pairs.size();
    while (end < known.size() && previous_[known[end]] == person) {
      const int32_t root = parent_[known[end]];
      std::size_t run = end;
      while (run < known.size() && previous_[known[run]] == person && parent_[known[run]] == root) ++run;
      if (run - end > best_count) {
        best_count = run - end;
        best_root = root;
      }
      pairs.push_back({person, root, false});
      end = run;
      ticks().tick();
    }
    for (std::size_t p = first_pair; p < pairs.size(); ++p) {
      if (pairs[p].root != best_root) continue;
      pairs[p].keeper = true;
      int64_t& id = person_of_root_[best_root];
      if (id == 0 || person < id) id = person;
    }
    i = end;
  }
  std::vector<int32_t>().swap(known);
  decltype(rank)().swap(rank);
  new_components_ = 0;
  for (int32_t root : component_order_)
    if (person_of_root_[root] == 0) ++new_components_;
  // Remember the pairs as events; to_person is filled in by assign_ids.
  for (const Pending& p : pairs) {
    if (p.keeper && p.from == person_of_root_[p.root]) continue;
    events_.push_back({p.keeper ? EventKind::kMerge : EventKind::kSplit, p.from, p.root, -1});
  }
}

void IdentityGraph::assign_ids(int64_t first_new_id) {
  int64_t next = first_new_id;
  persons_.clear();
  persons_.reserve(component_order_.size());
  for (int32_t root : component_order_) {
    if (person_of_root_[root] == 0) person_of_root_[root] = next++;
    persons_.emplace_back(person_of_root_[root], size_[root]);
  }
  std::sort(persons_.begin(), persons_.end());
  for (Event& e : events_) e.to_person = person_of_root_[e.to_person];  // held the root until now
  std::sort(events_.begin(), events_.end(), [](const Event& a, const Event& b) {
    if (a.from_person != b.from_person) return a.from_person < b.from_person;
    if (a.to_person != b.to_person) return a.to_person < b.to_person;
    return a.kind < b.kind;
  });

  if (!events_.empty()) attribute_events(canonical_identifiers(false));  // excluded ones included

  stats_.persons = static_cast<int64_t>(persons_.size());
  stats_.new_persons = next - first_new_id;
  stats_.cut_links = static_cast<int64_t>(cuts_.size());
  for (int32_t i = 0; i < identifiers_.size(); ++i) {
    switch (identifier_reason(i)) {
      case Reason::kNone: ++stats_.linked_identifiers; break;
      case Reason::kInvalid: ++stats_.invalid; break;
      case Reason::kBlocklist: ++stats_.blocklisted; break;
      case Reason::kHub: ++stats_.hubs; break;
      case Reason::kConflictCut: ++stats_.conflict_cut_identifiers; break;
    }
  }
  for (const Event& e : events_) (e.kind == EventKind::kMerge ? stats_.merges : stats_.splits)++;
  for (int32_t r = 0; r < records_.size(); ++r) {
    if (previous_[r] == 0) continue;
    ++stats_.previous_records;
    if (previous_[r] != person_of_root_[parent_[r]]) ++stats_.changed_records;
  }
  // Every record's person in place (roots keep theirs; parent_ points at roots since resolve), so
  // record_person and identifier_person need no union-find look-up while the results are written.
  for (int32_t r = 0; r < records_.size(); ++r)
    if (parent_[r] != r) person_of_root_[r] = person_of_root_[parent_[r]];
  person_per_record_ = true;
}

void IdentityGraph::release_resolving_state() {
  release_lookups();
  decltype(adjacent_)().swap(adjacent_);
  decltype(cut_)().swap(cut_);
  decltype(size_)().swap(size_);
  if (person_per_record_) decltype(parent_)().swap(parent_);
  decltype(limited_head_)().swap(limited_head_);
  decltype(limited_next_)().swap(limited_next_);
  decltype(limited_identifier_)().swap(limited_identifier_);
  decltype(component_order_)().swap(component_order_);
}

// The identifier named in merge_history: for a merge, the first identifier (in linking order) whose
// linked records span the merged person and another one; for a split, the first identifier of the
// split person that is now excluded or had a link cut.
void IdentityGraph::attribute_events(const HugeVector<int32_t>& order) {
  if (events_.empty()) return;
  std::unordered_map<int64_t, std::vector<std::size_t>> merges_from, splits_from;
  for (std::size_t e = 0; e < events_.size(); ++e)
    (events_[e].kind == EventKind::kMerge ? merges_from : splits_from)[events_[e].from_person].push_back(e);
  std::vector<int64_t> linked, all;
  auto distinct = [](std::vector<int64_t>& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  };
  auto claim = [&](std::unordered_map<int64_t, std::vector<std::size_t>>& pending, int64_t person,
                   int32_t identifier) {
    auto it = pending.find(person);
    if (it == pending.end()) return;
    for (std::size_t e : it->second) events_[e].identifier = identifier;
    pending.erase(it);
  };
  for (int32_t identifier : order) {
    if (merges_from.empty() && splits_from.empty()) break;
    ticks().tick();
    const bool excluded = identifier_reason(identifier) != Reason::kNone;
    linked.clear();
    all.clear();
    bool has_cut = false;
    for (int64_t slot = offsets_[identifier]; slot < offsets_[identifier + 1]; ++slot) {
      const int64_t before = previous_[adjacent_[slot]];
      has_cut |= cut_[slot] != 0;
      all.push_back(before);
      if (!excluded && !cut_[slot]) linked.push_back(before);
    }
    distinct(linked);
    if (linked.size() >= 2)
      for (int64_t person : linked)
        if (person != 0) claim(merges_from, person, identifier);
    if (excluded || has_cut) {
      distinct(all);
      for (int64_t person : all)
        if (person != 0) claim(splits_from, person, identifier);
    }
  }
}

}  // namespace cdp::identity
