#include "core/error.h"
#include "core/identity_normalize.h"
#include "core/identity_resolve.h"
#include "core/worker_thread.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace cdp::identity;

namespace {

std::string email(const char* raw) {
  std::string out;
  return normalise_email(raw, out) == Outcome::kOk ? out : "<" + std::string(raw) + ">";
}
std::string phone(const char* raw, const char* region = "US") {
  std::string out;
  return normalise_phone(raw, region, out) == Outcome::kOk ? out : "<invalid>";
}

std::vector<TypeRule> default_types() {
  return {{"customer_id", Normaliser::kTrim, 1, 100, 0}, {"loyalty_id", Normaliser::kTrim, 1, 90, 0},
          {"email", Normaliser::kEmail, 0, 80, 500},     {"phone", Normaliser::kPhone, 0, 70, 500},
          {"anonymous_id", Normaliser::kTrim, 0, 30, 1000}, {"device_id", Normaliser::kLower, 0, 20, 3}};
}

struct Obs {
  std::string source, key, type, value;
};

// Runs the resolver over observations (in the given order) and returns the person of each record.
std::map<std::string, int64_t> resolve(const std::vector<Obs>& obs, const Blocklist& blocklist = {},
                                       const std::map<std::string, int64_t>& previous = {},
                                       IdentityGraph** keep = nullptr, int64_t first_id = 1) {
  auto* graph = new IdentityGraph(default_types());
  for (const Obs& o : obs) {
    int32_t r = graph->add_record(o.source, o.key);
    int32_t i = graph->add_identifier(graph->type_index(o.type), o.value, true);
    graph->add_link(r, i, 0, 0);
  }
  for (const auto& [key, person] : previous) {
    int32_t r = graph->find_record(key.substr(0, key.find(':')), key.substr(key.find(':') + 1));
    if (r >= 0) graph->set_previous_person(r, person);
  }
  graph->resolve(blocklist);
  graph->assign_ids(first_id);
  std::map<std::string, int64_t> out;
  for (int32_t r = 0; r < graph->record_count(); ++r)
    out[std::string(graph->record_source(r)) + ":" + std::string(graph->record_key(r))] = graph->record_person(r);
  if (keep)
    *keep = graph;
  else
    delete graph;
  return out;
}

// The partition as a set of sets of record names.
std::set<std::set<std::string>> partition(const std::map<std::string, int64_t>& persons) {
  std::map<int64_t, std::set<std::string>> groups;
  for (const auto& [record, person] : persons) groups[person].insert(record);
  std::set<std::set<std::string>> out;
  for (auto& [person, records] : groups) out.insert(records);
  return out;
}

}  // namespace

TEST(IdentityNormalise, EmailTrimsLowerCasesAndFoldsGmail) {
  EXPECT_EQ(email("  Jane.Doe@Example.COM "), "jane.doe@example.com");
  EXPECT_EQ(email("Jane.Doe+news@googlemail.com"), "janedoe@gmail.com");
  EXPECT_EQ(email("j.a.n.e.doe@GMAIL.com"), "janedoe@gmail.com");
  EXPECT_EQ(email("jane+x@other.com"), "jane+x@other.com");  // +tags kept outside gmail
  EXPECT_EQ(email("no-at-sign"), "<no-at-sign>");
  EXPECT_EQ(email("a@b@c"), "<a@b@c>");
  EXPECT_EQ(email("@mail.com"), "<@mail.com>");
  EXPECT_EQ(email("+tag@gmail.com"), "<+tag@gmail.com>");
  std::string out;
  EXPECT_EQ(normalise_email("   ", out), Outcome::kEmpty);
}

TEST(IdentityNormalise, PhoneToE164WithDefaultRegion) {
  EXPECT_EQ(phone("(415) 555-2671"), "+14155552671");
  EXPECT_EQ(phone("+1 415.555.2671"), "+14155552671");
  EXPECT_EQ(phone("020 7946 0958", "GB"), "+442079460958");
  EXPECT_EQ(phone("+44 20 7946 0958", "US"), "+442079460958");
  EXPECT_EQ(phone("12"), "<invalid>");
  EXPECT_EQ(phone("0000000000"), "<invalid>");
  EXPECT_EQ(phone("call me"), "<invalid>");
}

TEST(IdentityNormalise, NormaliserNamesAndTrimLower) {
  EXPECT_EQ(parse_normaliser("phone"), Normaliser::kPhone);
  EXPECT_THROW(parse_normaliser("soundex"), cdp::Error);
  ValueNormaliser n("us");
  Normalised out;
  n.normalise(Normaliser::kLower, "  ABC-1 ", out);
  EXPECT_EQ(out.value, "abc-1");
  n.normalise(Normaliser::kTrim, "  ABC-1 ", out);
  EXPECT_EQ(out.value, "ABC-1");
  n.normalise(Normaliser::kTrim, " \t ", out);
  EXPECT_EQ(out.outcome, Outcome::kEmpty);
  n.normalise(Normaliser::kPhone, "415 555 2671", out);
  EXPECT_EQ(out.value, "+14155552671");
  // The pre-check (fewer than two ASCII digits) gives what libphonenumber gives: invalid, trimmed raw value.
  for (const char* junk : {"n/a", " - ", "x1", "none", "+", "(1)"}) {
    n.normalise(Normaliser::kPhone, junk, out);
    EXPECT_EQ(out.outcome, Outcome::kInvalid) << junk;
  }
  n.normalise(Normaliser::kPhone, " n/a ", out);
  EXPECT_EQ(out.value, "n/a");
  n.normalise(Normaliser::kPhone, "\xef\xbc\x94\xef\xbc\x91\xef\xbc\x95 555 2671", out);  // full-width 415
  EXPECT_EQ(out.outcome, Outcome::kOk);
  EXPECT_EQ(out.value, "+14155552671");
}

// PhoneMemo remembers validity and E.164 per parsed number: every result (outcome and stored value,
// the trimmed raw value when invalid) equals normalise_phone's, first time and from the memo.
TEST(IdentityNormalise, PhoneMemoEqualsNormalisePhone) {
  const std::vector<const char*> raws = {
      "020 7946 0958", "+44 20 7946 0958", "0044 20 7946 0958", "(020) 7946-0958", "020-7946-0958",
      "+442079460958", " 02079460958 ", "+44 (0)20 7946 0958", "020 7946 0958 ext. 12", "020 7946 0958 x3",
      "+39 06 1234 5678", "+39 06 1234 5679", "0039 06 1234 5678", "+39 335 123 4567", "(415) 555-2671",
      "+1 415.555.2671", "415 555 2671", "+1 415 555 2671 ext 7", "0000000000", "1234567890", "+44 0000 000000",
      "12", "n/a", " - ", "", "  ", "call me", "tel:+1-415-555-2671", "07700 900123", "+44 7700 900123",
      "\xef\xbc\x94\xef\xbc\x91\xef\xbc\x95 555 2671", "+49 30 123456", "030 123456", "+800 1234 5678",
      "+882 1234 567890", "+1 800 FLOWERS", "1-800-356-9377", "01 23 45 67 89", "+33 1 23 45 67 89"};
  for (const char* region : {"GB", "US", "it", "DE"}) {
    PhoneMemo memo(region);
    std::string upper = region;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (int pass = 0; pass < 2; ++pass) {
      for (const char* raw : raws) {
        std::string expected, got = "garbage";
        const Outcome want = normalise_phone(raw, upper, expected);
        EXPECT_EQ(memo.normalise(raw, got), want) << region << " " << raw;
        if (want != Outcome::kEmpty) {
          EXPECT_EQ(got, expected) << region << " " << raw;
        }
      }
    }
    EXPECT_LT(memo.numbers(), raws.size()) << region;  // spellings of one number share an entry
    EXPECT_GT(memo.memory_bytes(), 0u);
  }
}

// A valid number's E.164 form is remembered as a spelling of its own: the "+44 ..." of a number first seen
// in national form is answered from the memo, with normalise_phone's result (Italian leading zeros too).
TEST(IdentityNormalise, PhoneMemoRemembersTheE164FormOfValidNumbers) {
  const std::vector<std::pair<const char*, std::vector<const char*>>> cases = {
      {"GB", {"020 7946 0958", "+44 20 7946 0958", "+442079460958", "0044 20 7946 0958"}},
      {"IT", {"06 1234 5678", "+39 06 1234 5678", "+390612345678"}},
      {"US", {"(415) 555-2671", "+1 415 555 2671", "+14155552671"}}};
  for (const auto& [region, raws] : cases) {
    PhoneMemo memo(region);
    std::string got, expected;
    ASSERT_EQ(memo.normalise(raws[0], got), Outcome::kOk) << raws[0];
    EXPECT_EQ(memo.spellings(), 2u) << region;  // the national digits and the E.164 form
    for (const char* raw : raws) {
      ASSERT_EQ(memo.normalise(raw, got), normalise_phone(raw, region, expected)) << raw;
      EXPECT_EQ(got, expected) << raw;
    }
    // The E.164 spellings were answered without a parse; GB's "0044 ..." form is parsed (other digits).
    EXPECT_EQ(memo.parses(), std::string(region) == "GB" ? 2u : 1u) << region;
  }
}

// The memo's premise for plain spellings: libphonenumber's result depends only on the '+' and the digits
// when the rest is spaces, '-', '(', ')' and '.'. Random numbers (national, +country, 00 country, short,
// long, junk) in random punctuation, five regions: every spelling normalises like its bare digits, and
// PhoneMemo (sharing entries between them) gives normalise_phone's result for each.
TEST(IdentityNormalise, PhoneMemoPlainSpellingsDependOnDigitsOnly) {
  std::mt19937 random(20261129);
  const std::vector<std::string> bases = {"2079460958", "4155552671", "30123456", "0612345678",
                                          "7700900123", "0612345", "800123456", "335123456"};
  const char punctuation[] = {' ', '-', '(', ')', '.'};
  int valid = 0, checked = 0;
  for (const char* region : {"GB", "US", "DE", "IT", "FR"}) {
    PhoneMemo memo(region);
    for (int n = 0; n < 300; ++n) {
      std::string digits;
      if (n < 160) {
        digits = bases[n % bases.size()];
        if (n % 3 == 1) digits = "0" + digits;
        const int change = static_cast<int>(random() % digits.size());
        digits[change] = static_cast<char>('0' + random() % 10);
      } else {
        const int length = 3 + static_cast<int>(random() % 15);
        for (int i = 0; i < length; ++i) digits.push_back(static_cast<char>('0' + random() % 10));
      }
      std::string prefix = n % 4 == 0 ? "+44" : n % 4 == 1 ? "+" : n % 4 == 2 ? "0049" : "";
      if (n % 7 == 0) prefix = "+39";
      const std::string bare = prefix + digits;
      std::string expected;
      const Outcome want = normalise_phone(bare, region, expected);
      valid += want == Outcome::kOk;
      for (int variant = 0; variant < 4; ++variant) {
        std::string spelled = variant == 3 && bare[0] == '+' ? "(" : "";
        for (std::size_t i = 0; i < bare.size(); ++i) {
          spelled.push_back(bare[i]);
          if (bare[i] != '+' || variant > 0)
            while (random() % 3 == 0) spelled.push_back(punctuation[random() % 5]);
        }
        std::string got, memo_got;
        const Outcome outcome = normalise_phone(spelled, region, got);
        EXPECT_EQ(outcome, want) << region << " '" << spelled << "' vs '" << bare << "'";
        if (want == Outcome::kOk) {
          EXPECT_EQ(got, expected) << region << " '" << spelled << "'";
        }
        EXPECT_EQ(memo.normalise(spelled, memo_got), outcome) << region << " '" << spelled << "'";
        EXPECT_EQ(memo_got, got) << region << " '" << spelled << "'";
        ++checked;
      }
    }
    EXPECT_LT(memo.spellings(), 1200u) << region;
  }
  EXPECT_GT(valid, 100);
  EXPECT_EQ(checked, 6000);
}

TEST(IdentityNormalise, LikeMatching) {
  EXPECT_TRUE(like_match("noreply@shop.com", "noreply@%"));
  EXPECT_TRUE(like_match("a@example.com", "%@example.com"));
  EXPECT_FALSE(like_match("a@example.com.au", "%@example.com"));
  EXPECT_TRUE(like_match("abc", "a_c"));
  EXPECT_FALSE(like_match("abbc", "a_c"));
  EXPECT_TRUE(like_match("50%", "50\\%"));
  EXPECT_FALSE(like_match("500", "50\\%"));
  EXPECT_TRUE(like_match("", "%"));
  EXPECT_TRUE(like_match("xaaay", "x%a%y"));
}

TEST(IdentityNormalise, BlocklistExactAnyTypeAndPatternsCaseInsensitive) {
  Blocklist b;
  b.add({-1, "NULL", false, "placeholder"});
  b.add({2, "%@example.com", true, "reserved"});
  EXPECT_NE(b.match(0, "null"), nullptr);
  EXPECT_NE(b.match(4, "Null"), nullptr);
  EXPECT_NE(b.match(2, "X@Example.com"), nullptr);
  EXPECT_EQ(b.match(3, "x@example.com"), nullptr);  // pattern is for type 2 only
  EXPECT_EQ(*b.match(2, "x@example.com"), "reserved");
  EXPECT_EQ(b.match(2, "x@example.org"), nullptr);
}

TEST(IdentityResolve, ChainsJunkHubsAndConflicts) {
  std::vector<Obs> obs = {
      {"web", "s1", "anonymous_id", "c1"}, {"web", "s1", "email", "a@x.com"},
      {"shop", "o1", "email", "a@x.com"},  {"shop", "o1", "customer_id", "1"},
      // conflicting accounts sharing an email
      {"shop", "o6", "customer_id", "6"},  {"shop", "o6", "email", "fam@x.com"},
      {"shop", "o7", "customer_id", "7"},  {"shop", "o7", "email", "fam@x.com"},
      // junk
      {"shop", "o8", "email", "null"},     {"shop", "o9", "email", "null"},
      // a hub device on 4 records (threshold 3)
      {"app", "d1", "device_id", "dev"},   {"app", "d2", "device_id", "dev"},
      {"app", "d3", "device_id", "dev"},   {"app", "d4", "device_id", "dev"},
  };
  Blocklist blocklist;
  blocklist.add({-1, "null", false, "placeholder"});
  IdentityGraph* graph = nullptr;
  auto persons = resolve(obs, blocklist, {}, &graph);
  EXPECT_EQ(persons["web:s1"], persons["shop:o1"]);
  EXPECT_NE(persons["shop:o6"], persons["shop:o7"]);
  EXPECT_NE(persons["shop:o8"], persons["shop:o9"]);
  EXPECT_NE(persons["app:d1"], persons["app:d2"]);
  ASSERT_EQ(graph->cuts().size(), 1u);
  EXPECT_EQ(graph->types()[graph->cuts()[0].conflict_type].name, "customer_id");
  EXPECT_EQ(graph->stats().hubs, 1);
  EXPECT_EQ(graph->stats().blocklisted, 1);
  EXPECT_EQ(graph->stats().persons, 9);  // {s1,o1}, o6, o7, o8, o9, d1..d4
  delete graph;
}

TEST(IdentityResolve, LongChainIsOnePerson) {
  std::vector<Obs> obs;
  for (int i = 0; i < 5000; ++i) {
    obs.push_back({"web", "s" + std::to_string(i), "anonymous_id", "c" + std::to_string(i)});
    obs.push_back({"web", "s" + std::to_string(i), "anonymous_id", "c" + std::to_string(i + 1)});
  }
  auto persons = resolve(obs);
  EXPECT_EQ(partition(persons).size(), 1u);
}

TEST(IdentityResolve, RowOrderDoesNotMatterForPartitionIdsOrCuts) {
  std::vector<Obs> obs;
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string key = "r" + std::to_string(i);
    obs.push_back({"src", key, "customer_id", std::to_string(rng() % 400)});
    obs.push_back({"src", key, "email", "e" + std::to_string(rng() % 900) + "@x.com"});
    if (i % 3 == 0) obs.push_back({"src", key, "anonymous_id", "c" + std::to_string(rng() % 1500)});
  }
  auto first = resolve(obs);
  for (int round = 0; round < 3; ++round) {
    std::shuffle(obs.begin(), obs.end(), rng);
    EXPECT_EQ(resolve(obs), first);  // the very same ids, not just the same partition
  }
}

TEST(IdentityResolve, PerTypeLimitHoldsForEveryPerson) {
  std::vector<Obs> obs;
  std::mt19937 rng(11);
  for (int i = 0; i < 2000; ++i) {
    std::string key = "r" + std::to_string(i);
    obs.push_back({"src", key, "customer_id", std::to_string(rng() % 300)});
    obs.push_back({"src", key, "email", "e" + std::to_string(rng() % 300) + "@x.com"});
  }
  IdentityGraph* graph = nullptr;
  auto persons = resolve(obs, {}, {}, &graph);
  std::map<int64_t, std::set<std::string>> customers;
  for (int32_t i = 0; i < graph->identifier_count(); ++i)
    if (graph->types()[graph->identifier_type(i)].name == "customer_id" && graph->identifier_person(i) != 0)
      customers[graph->identifier_person(i)].insert(std::string(graph->identifier_value(i)));
  for (const auto& [person, ids] : customers) EXPECT_EQ(ids.size(), 1u) << "person " << person;
  EXPECT_GT(graph->cuts().size(), 0u);
  delete graph;
}

TEST(IdentityResolve, StableIdsOldestSurvivesLargestPartKeepsId) {
  std::vector<Obs> obs = {{"a", "1", "email", "x@m.com"}, {"a", "2", "email", "x@m.com"},
                          {"a", "3", "email", "x@m.com"}, {"b", "1", "email", "y@m.com"}};
  auto run1 = resolve(obs, {}, {}, nullptr, 1);
  EXPECT_EQ(run1["a:1"], run1["a:3"]);
  EXPECT_NE(run1["a:1"], run1["b:1"]);
  // Rerun: same ids, nothing new.
  IdentityGraph* graph = nullptr;
  EXPECT_EQ(resolve(obs, {}, run1, &graph, 100), run1);
  EXPECT_EQ(graph->new_ids_needed(), 0);
  EXPECT_TRUE(graph->events().empty());
  delete graph;
  // Merge: the oldest (smallest) id survives.
  obs.push_back({"b", "1", "phone", "+14155552671"});
  obs.push_back({"a", "2", "phone", "+14155552671"});
  auto run2 = resolve(obs, {}, run1, &graph, 100);
  EXPECT_EQ(run2["b:1"], std::min(run1["a:1"], run1["b:1"]));
  ASSERT_EQ(graph->events().size(), 1u);
  EXPECT_EQ(graph->events()[0].kind, EventKind::kMerge);
  EXPECT_EQ(graph->events()[0].from_person, std::max(run1["a:1"], run1["b:1"]));
  EXPECT_EQ(graph->identifier_value(graph->events()[0].identifier), "+14155552671");
  delete graph;
  // Split: blocking the email leaves a:2+b:1 (via phone, 2 records) and a:1, a:3 alone;
  // the part with most records keeps the id, the others get new ids.
  Blocklist blocklist;
  blocklist.add({-1, "x@m.com", false, "test"});
  auto run3 = resolve(obs, blocklist, run2, &graph, 100);
  EXPECT_EQ(run3["a:2"], run2["a:2"]);
  EXPECT_EQ(run3["b:1"], run2["a:2"]);
  EXPECT_GE(run3["a:1"], 100);
  EXPECT_GE(run3["a:3"], 100);
  EXPECT_NE(run3["a:1"], run3["a:3"]);
  EXPECT_EQ(graph->stats().splits, 2);
  for (const Event& e : graph->events()) {
    EXPECT_EQ(e.kind, EventKind::kSplit);
    EXPECT_EQ(graph->identifier_value(e.identifier), "x@m.com");
  }
  EXPECT_DOUBLE_EQ(graph->stats().jitter(), 2.0 / 4.0);
  delete graph;
}

TEST(IdentityResolve, InterruptsArePolled) {
  int polls = 0;
  cdp::Interrupts interrupts([&] {
    if (++polls == 3) throw cdp::Error(cdp::sqlstate::kQueryCanceled, "cancelled");
  });
  IdentityGraph graph(default_types(), &interrupts);
  for (int i = 0; i < 50000; ++i) {
    int32_t r = graph.add_record("s", std::to_string(i));
    graph.add_link(r, graph.add_identifier(graph.type_index("anonymous_id"), std::to_string(i / 2), true), 0, 0);
  }
  EXPECT_THROW(graph.resolve(Blocklist{}), cdp::Error);
}

TEST(IdentityInterner, InternsFindsAndGrows) {
  StringInterner interner;
  for (int i = 0; i < 100000; ++i) EXPECT_EQ(interner.intern("k" + std::to_string(i)), i);
  for (int i = 0; i < 100000; i += 997) EXPECT_EQ(interner.find("k" + std::to_string(i)), i);
  EXPECT_EQ(interner.intern("k5"), 5);
  EXPECT_EQ(interner.find("missing"), -1);
  EXPECT_EQ(interner.at(42), "k42");
}

// Interning with hashes computed ahead and prefetched entries gives the same indexes as plain interning.
TEST(IdentityInterner, PrefetchedInterningMatchesPlain) {
  StringInterner plain, batched;
  std::vector<std::string> keys;
  for (int i = 0; i < 50000; ++i) keys.push_back("k" + std::to_string((i * 7919) % 20000));
  for (std::size_t b = 0; b < keys.size(); b += 32) {
    const std::size_t end = std::min(keys.size(), b + 32);
    std::vector<uint64_t> h;
    for (std::size_t i = b; i < end; ++i) {
      h.push_back(cdp::identity::hash_bytes(keys[i]));
      batched.prefetch_slot(h.back());
    }
    for (std::size_t i = b; i < end; ++i) batched.prefetch_entry(h[i - b]);
    for (std::size_t i = b; i < end; ++i) EXPECT_EQ(batched.intern(keys[i], h[i - b]), plain.intern(keys[i]));
  }
  EXPECT_EQ(batched.size(), 20000);
  IdentityGraph graph(default_types());
  const int email = graph.type_index("email");
  const int32_t r = graph.add_record("web", "1", IdentityGraph::record_hash("web", "1"));
  EXPECT_EQ(graph.add_record("web", "1"), r);
  EXPECT_EQ(graph.find_record("web", "1"), r);
  const int32_t v = graph.add_identifier(email, "a@b.c", true, IdentityGraph::identifier_hash(email, "a@b.c"));
  EXPECT_EQ(graph.add_identifier(email, "a@b.c", true), v);
  EXPECT_EQ(graph.find_identifier(email, "a@b.c"), v);
}

// Keys whose hashes share the tag (the top 32 bits) or the whole hash are told apart by their bytes,
// across growth; interning with a given hash finds what was interned with it.
TEST(IdentityInterner, ForcedHashTagCollisionsCompareBytes) {
  StringInterner interner;
  const uint64_t same_hash = 0x123456789abcdef0ULL;
  std::vector<uint64_t> hashes;
  for (int i = 0; i < 3000; ++i) {
    // i % 3 == 0: the very same hash; 1: the same tag (same home slot), other low bits; 2: an ordinary hash.
    const uint64_t h = i % 3 == 0 ? same_hash
                       : i % 3 == 1 ? (same_hash & 0xffffffff00000000ULL) | static_cast<uint32_t>(i)
                                    : cdp::identity::hash_bytes("c" + std::to_string(i));
    hashes.push_back(h);
    EXPECT_EQ(interner.intern("c" + std::to_string(i), h), i);
  }
  for (int i = 0; i < 3000; ++i) {
    EXPECT_EQ(interner.intern("c" + std::to_string(i), hashes[i]), i);
    EXPECT_EQ(interner.at(i), "c" + std::to_string(i));
  }
  EXPECT_EQ(interner.size(), 3000);
  EXPECT_EQ(interner.intern("c", same_hash), 3000);  // a prefix of colliding keys is a key of its own
  EXPECT_EQ(interner.intern("", same_hash), 3001);
  EXPECT_EQ(interner.intern("c", same_hash), 3000);
  EXPECT_EQ(interner.find("c2"), 2);  // an ordinary hash is found by find(), which hashes itself
}

// hash() is the key's hash_bytes (recomputed), also after the lookup table is released.
TEST(IdentityInterner, HashAndAtSurviveReleasingTheLookup) {
  StringInterner interner;
  EXPECT_EQ(interner.find("x"), -1);  // empty
  for (int i = 0; i < 5000; ++i) interner.intern("k" + std::to_string(i));
  const std::size_t before = interner.memory_bytes();
  interner.release_lookup();
  EXPECT_LT(interner.memory_bytes(), before);
  for (int i = 0; i < 5000; i += 7) {
    EXPECT_EQ(interner.at(i), "k" + std::to_string(i));
    EXPECT_EQ(interner.hash(i), cdp::identity::hash_bytes("k" + std::to_string(i)));
  }
  EXPECT_EQ(interner.size(), 5000);
}

TEST(IdentityNormalise, BlocklistPatternShapesAgreeWithLike) {
  const char* patterns[] = {"%@example.com", "noreply@%", "%test%", "exact", "a_c%", "50\\%%", "%"};
  const char* values[] = {"x@example.com", "noreply@x", "mytestcase", "exact", "abcd", "50%off", "", "other"};
  for (const char* p : patterns) {
    Blocklist b;
    b.add({-1, p, true, "r"});
    for (const char* v : values) EXPECT_EQ(b.match(0, v) != nullptr, like_match(v, p)) << p << " / " << v;
  }
}

// An incremental run loads only part of a hub's records: the true count it supplies decides the hub cap.
TEST(IdentityResolve, SuppliedTotalsDecideTheHubCapAndAreReported) {
  for (const int64_t total : {2, 4}) {  // device_id threshold is 3
    IdentityGraph graph(default_types());
    const int32_t a = graph.add_record("app", "a"), b = graph.add_record("app", "b");
    const int32_t dev = graph.add_identifier(graph.type_index("device_id"), "tv", true);
    graph.add_link(a, dev, 100, 100);
    graph.add_link(b, dev, 200, 200);
    graph.set_identifier_totals(dev, total, 50, 300);
    graph.resolve(Blocklist{});
    graph.assign_ids(1);
    EXPECT_EQ(graph.identifier_records(dev), total);
    EXPECT_EQ(graph.identifier_first_seen(dev), 50);
    EXPECT_EQ(graph.identifier_last_seen(dev), 300);
    if (total > 3) {
      EXPECT_EQ(graph.identifier_reason(dev), Reason::kHub);
      EXPECT_NE(graph.record_person(a), graph.record_person(b));
    } else {
      EXPECT_EQ(graph.identifier_reason(dev), Reason::kNone);
      EXPECT_EQ(graph.record_person(a), graph.record_person(b));
    }
  }
}

// The reader hands its compacted links over with adopt_links (+ note_seen for first/last seen): the
// graph must resolve exactly as when every link is added with add_link.
TEST(IdentityGraph, AdoptedLinksResolveLikeAddedLinks) {
  std::mt19937 rng(7);
  std::vector<Obs> obs;
  for (int i = 0; i < 3000; ++i) {
    const int person = static_cast<int>(rng() % 400);
    obs.push_back({"web", "s" + std::to_string(rng() % 2500), "anonymous_id", "c" + std::to_string(person)});
    if (rng() % 3 == 0) obs.push_back({"shop", "o" + std::to_string(i), "email", "p" + std::to_string(person) + "@x.com"});
    if (rng() % 7 == 0) obs.push_back({"shop", "o" + std::to_string(i), "customer_id", std::to_string(rng() % 300)});
  }
  IdentityGraph added(default_types()), adopted(default_types());
  cdp::PodArray<uint64_t> pairs;
  for (std::size_t n = 0; n < obs.size(); ++n) {
    const Obs& o = obs[n];
    const int64_t seen = static_cast<int64_t>(n % 97);
    int32_t r = added.add_record(o.source, o.key);
    int32_t i = added.add_identifier(added.type_index(o.type), o.value, true);
    added.add_link(r, i, seen, seen + 5);
    r = adopted.add_record(o.source, o.key);
    i = adopted.add_identifier(adopted.type_index(o.type), o.value, true);
    adopted.note_seen(i, seen, seen + 5);
    pairs.push_back(static_cast<uint64_t>(r) << 32 | static_cast<uint32_t>(i));
  }
  adopted.adopt_links(std::move(pairs));
  for (IdentityGraph* g : {&added, &adopted}) {
    g->resolve(Blocklist{});
    g->assign_ids(1);
  }
  ASSERT_EQ(added.record_count(), adopted.record_count());
  ASSERT_EQ(added.identifier_count(), adopted.identifier_count());
  for (int32_t r = 0; r < added.record_count(); ++r) ASSERT_EQ(added.record_person(r), adopted.record_person(r));
  for (int32_t i = 0; i < added.identifier_count(); ++i) {
    ASSERT_EQ(added.identifier_person(i), adopted.identifier_person(i));
    ASSERT_EQ(added.identifier_records(i), adopted.identifier_records(i));
    ASSERT_EQ(added.identifier_first_seen(i), adopted.identifier_first_seen(i));
    ASSERT_EQ(added.identifier_last_seen(i), adopted.identifier_last_seen(i));
    ASSERT_EQ(added.identifier_reason(i), adopted.identifier_reason(i));
  }
  EXPECT_EQ(added.cuts().size(), adopted.cuts().size());
  EXPECT_GT(added.cuts().size(), 0u);  // customer_id limits were exercised
}

// What resolving alone needs is freed before the results are written; the results stay readable.
TEST(IdentityGraph, ReleasingResolvingStateKeepsResults) {
  std::vector<Obs> obs = {{"web", "s1", "anonymous_id", "c1"}, {"web", "s2", "anonymous_id", "c1"},
                          {"shop", "o1", "email", "a@x.com"},  {"web", "s2", "email", "a@x.com"},
                          {"shop", "o2", "customer_id", "1"},  {"shop", "o3", "customer_id", "2"},
                          {"shop", "o2", "email", "b@x.com"},  {"shop", "o3", "email", "b@x.com"}};
  IdentityGraph* graph = nullptr;
  resolve(obs, Blocklist{}, {}, &graph);
  std::vector<int64_t> person, id_person, id_records;
  std::vector<std::string> record_bytes, identifier_bytes;
  for (int32_t r = 0; r < graph->record_count(); ++r) {
    person.push_back(graph->record_person(r));
    record_bytes.emplace_back(graph->record_bytes(r));
  }
  for (int32_t i = 0; i < graph->identifier_count(); ++i) {
    id_person.push_back(graph->identifier_person(i));
    id_records.push_back(graph->identifier_records(i));
    identifier_bytes.emplace_back(graph->identifier_bytes(i));
  }
  const std::size_t cuts = graph->cuts().size(), persons = graph->persons().size(), before = graph->memory_bytes();
  graph->release_resolving_state();
  EXPECT_LT(graph->memory_bytes(), before);
  ASSERT_EQ(graph->record_count(), static_cast<int32_t>(person.size()));
  ASSERT_EQ(graph->identifier_count(), static_cast<int32_t>(id_person.size()));
  for (int32_t r = 0; r < graph->record_count(); ++r) {
    EXPECT_EQ(graph->record_person(r), person[r]);
    EXPECT_EQ(graph->record_bytes(r), record_bytes[r]);
  }
  for (int32_t i = 0; i < graph->identifier_count(); ++i) {
    EXPECT_EQ(graph->identifier_person(i), id_person[i]);
    EXPECT_EQ(graph->identifier_records(i), id_records[i]);
    EXPECT_EQ(graph->identifier_bytes(i), identifier_bytes[i]);
  }
  EXPECT_EQ(graph->cuts().size(), cuts);
  EXPECT_EQ(cuts, 1u);  // b@x.com cannot join customer ids 1 and 2
  EXPECT_EQ(graph->persons().size(), persons);
  delete graph;
}

// A full rebuild resolves its graph on a worker thread while the backend reads the graph's strings to store
// the links (src/pg/identity_write.cpp, BackgroundResolve): resolving must leave the strings alone and give
// exactly the single-threaded result. (Run under -fsanitize=thread to check for data races as well.) A stop
// while resolving ends the worker through its own interrupts, and the graph can then go.
// What a graph resolved on a worker polls, as BackgroundResolve sets it: the worker's stop flag only.
cdp::Interrupts polls_stop_of(const cdp::WorkerThread& worker) {
  return cdp::Interrupts([&worker] {
    if (worker.stop_requested()) throw cdp::Error(cdp::sqlstate::kQueryCanceled, "stopped");
  });
}

TEST(IdentityGraph, ResolvesOnAWorkerWhileItsStringsAreRead) {
  std::mt19937 rng(11);
  std::vector<Obs> obs;
  for (int i = 0; i < 20000; ++i) {
    const int person = static_cast<int>(rng() % 3000);
    obs.push_back({"web", "s" + std::to_string(rng() % 15000), "anonymous_id", "c" + std::to_string(person)});
    if (rng() % 3 == 0) obs.push_back({"shop", "o" + std::to_string(i), "email", "p" + std::to_string(person) + "@x.com"});
    if (rng() % 7 == 0) obs.push_back({"shop", "o" + std::to_string(i), "customer_id", std::to_string(rng() % 2000)});
    if (rng() % 50 == 0) obs.push_back({"shop", "o" + std::to_string(i), "device_id", "kiosk" + std::to_string(rng() % 3)});
  }
  auto build = [&](IdentityGraph& g) {
    for (const Obs& o : obs) {
      const int32_t r = g.add_record(o.source, o.key);
      const int32_t i = g.add_identifier(g.type_index(o.type), o.value, o.value != "c7");  // one invalid value
      g.add_link(r, i, 1, 2);
    }
    g.release_lookups();
  };
  IdentityGraph inline_graph(default_types()), threaded(default_types());
  build(inline_graph);
  build(threaded);
  Blocklist blocklist;
  blocklist.add({threaded.type_index("email"), "p1@x.com", false, "test"});
  inline_graph.resolve(blocklist);
  {
    cdp::WorkerThread worker;
    cdp::Interrupts worker_interrupts = polls_stop_of(worker);
    threaded.set_interrupts(&worker_interrupts);
    worker.post([&] { threaded.resolve(blocklist); });
    std::size_t bytes = 0;  // what storing the links reads meanwhile
    for (int pass = 0; pass < 20; ++pass) {
      for (int32_t r = 0; r < threaded.record_count(); ++r)
        bytes += threaded.record_source(r).size() + threaded.record_key(r).size();
      for (int32_t i = 0; i < threaded.identifier_count(); ++i)
        bytes += threaded.identifier_value(i).size() + threaded.types()[threaded.identifier_type(i)].name.size();
    }
    worker.finish([] {});
    threaded.set_interrupts(nullptr);
    EXPECT_GT(bytes, 0u);
  }
  for (IdentityGraph* g : {&inline_graph, &threaded}) g->assign_ids(1);
  ASSERT_EQ(inline_graph.record_count(), threaded.record_count());
  for (int32_t r = 0; r < threaded.record_count(); ++r) ASSERT_EQ(inline_graph.record_person(r), threaded.record_person(r));
  for (int32_t i = 0; i < threaded.identifier_count(); ++i) {
    ASSERT_EQ(inline_graph.identifier_person(i), threaded.identifier_person(i));
    ASSERT_EQ(inline_graph.identifier_reason(i), threaded.identifier_reason(i));
  }
  EXPECT_EQ(inline_graph.stats().persons, threaded.stats().persons);
  EXPECT_EQ(inline_graph.cuts().size(), threaded.cuts().size());
  EXPECT_GT(threaded.stats().hubs + threaded.stats().blocklisted + threaded.stats().invalid, 0);

  // Stopped at once: the worker ends through its interrupts (or before it starts); the graph is freed after.
  auto stopped = std::make_unique<IdentityGraph>(default_types());
  build(*stopped);
  cdp::WorkerThread worker;
  cdp::Interrupts worker_interrupts = polls_stop_of(worker);
  stopped->set_interrupts(&worker_interrupts);
  worker.post([&] { stopped->resolve(blocklist); });
  worker.stop();
  stopped.reset();
}
