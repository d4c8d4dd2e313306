// Identifier normalisation and the junk-value blocklist for identity merge (docs/identity.md).
// Pure C++: the glue hands raw values in and stores what comes out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cdp::identity {

// How a type's values are brought to one canonical spelling (cdp.identifier_types.normaliser).
enum class Normaliser { kTrim, kLower, kEmail, kPhone };

// Parses the normaliser name stored in cdp.identifier_types; throws cdp::Error 22023 when unknown.
Normaliser parse_normaliser(std::string_view name);

enum class Outcome { kOk, kEmpty, kInvalid };

struct Normalised {
  Outcome outcome = Outcome::kEmpty;
  std::string value;  // canonical value when kOk; the trimmed raw value when kInvalid
};

// Longest normalised value (bytes) pg_cdp stores; longer ones are skipped and counted ("too_long"),
// because a b-tree entry in cdp.person_identifiers must stay well under PostgreSQL's ~2.7 kB limit.
inline constexpr std::size_t kMaxValueBytes = 512;

class ValueNormaliser {
 public:
  // default_region: ISO 3166 two-letter region used for phone numbers written without "+country".
  explicit ValueNormaliser(std::string default_region);
  void normalise(Normaliser kind, std::string_view raw, Normalised& out) const;
  const std::string& default_region() const { return region_; }

 private:
  std::string region_;
};

// Individual normalisers (exposed for unit tests).
void trim_into(std::string_view raw, std::string& out);
std::size_t trimmed_size(std::string_view raw);  // the size trim_into would give
// trim + ASCII lower-case; gmail.com/googlemail.com: drop "+tag" and dots in the local part,
// googlemail.com -> gmail.com. Anything without exactly one '@' and text on both sides is invalid.
Outcome normalise_email(std::string_view raw, std::string& out);
// E.164 through libphonenumber; numbers libphonenumber does not consider valid are invalid.
Outcome normalise_phone(std::string_view raw, const std::string& region, std::string& out);

// normalise_phone for many values of one run: libphonenumber's IsValidNumber (about half of the cost of a
// phone) and the E.164 formatting are remembered per parsed number, so the spellings of one number
// ("020 7946 0958", "+44 20 7946 0958", "0044 20 7946 0958") are checked once; and spellings that differ
// only in spaces, '-', '(', ')' and '.' ("(020) 7946-0958", "020-7946-0958") are parsed once. Same results
// as normalise_phone with the same region. memory_bytes(): an estimate of what the memo holds.
class PhoneMemo {
 public:
  explicit PhoneMemo(std::string default_region);
  Outcome normalise(std::string_view raw, std::string& out);
  std::size_t numbers() const { return formatted_.size(); }
  std::size_t spellings() const { return spelled_.size(); }
  std::size_t parses() const { return parses_; }  // calls into libphonenumber's Parse
  std::size_t memory_bytes() const {
    return bytes_ + (formatted_.bucket_count() + spelled_.bucket_count()) * sizeof(void*);
  }

 private:
  // Parses `spelling` (the trimmed value, or its digits for a plain one); out becomes E.164 when valid.
  Outcome parse_and_check(const std::string& spelling, std::string& out);
  std::string region_;
  // Plain spellings ('+' and digits only kept, see normalise) -> E.164, "" = not valid.
  std::unordered_map<std::string, std::string> spelled_;
  std::string spelled_key_;
  std::unordered_map<std::string, std::string> formatted_;  // serialised number -> E.164, "" = not valid
  std::string key_;
  std::size_t bytes_ = 0;
  std::size_t parses_ = 0;
};

// SQL LIKE matching ('%' any run, '_' one byte, '\' escapes), the pattern syntax of
// cdp.identifier_blocklist.match = 'like'. Both sides are compared as given (callers lower-case).
bool like_match(std::string_view text, std::string_view pattern);

// Junk values: exact entries (hash set) and LIKE patterns, each for one type or for any type.
// Matching is case-insensitive on the normalised value.
class Blocklist {
 public:
  struct Entry {
    int type = -1;  // index into the resolver's type table; -1 = any type
    std::string pattern;
    bool is_like = false;
    std::string reason;
  };
  void add(Entry entry);
  // Returns the entry's reason text (never empty for a match) or nullptr when the value is not blocked.
  const std::string* match(int type, std::string_view normalised_value) const;
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<Entry> entries_;
  // exact entries keyed by type index (or -1) + '\x1f' + lower-case value -> entry index
  std::unordered_map<std::string, std::size_t> exact_;
  std::vector<std::size_t> like_entries_;
  mutable std::string key_;
  mutable std::string lowered_;
};

}  // namespace cdp::identity
