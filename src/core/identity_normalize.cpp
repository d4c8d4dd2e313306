#include "core/identity_normalize.h"

#include "core/error.h"

#include <boost/algorithm/string/case_conv.hpp>
#include <boost/algorithm/string/classification.hpp>
#include <boost/algorithm/string/erase.hpp>
#include <boost/algorithm/string/predicate.hpp>
#include <boost/algorithm/string/trim.hpp>
#include <phonenumbers/phonenumberutil.h>

#include "core/no_postgres.h"

namespace cdp::identity {

Normaliser parse_normaliser(std::string_view name) {
  if (name == "trim") return Normaliser::kTrim;
  if (name == "lower") return Normaliser::kLower;
  if (name == "email") return Normaliser::kEmail;
  if (name == "phone") return Normaliser::kPhone;
  throw Error(sqlstate::kInvalidParameterValue, "unknown identifier normaliser \"" + std::string(name) + "\"",
              {}, "Use one of trim, lower, email, phone.");
}

namespace {
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// ASCII case folding, byte by byte, so UTF-8 sequences are never touched. boost::algorithm::to_lower
// gives the same in the classic locale but looks the locale's ctype facet up for every character (a
// dynamic_cast each): at 10M observations that was over a second of backend CPU.
void fold_ascii_case(std::string& text) {
  for (char& c : text)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
}
}  // namespace

namespace {
std::string_view trimmed(std::string_view raw) {
  std::size_t begin = 0, end = raw.size();
  while (begin < end && is_space(raw[begin])) ++begin;
  while (end > begin && is_space(raw[end - 1])) --end;
  return raw.substr(begin, end - begin);
}
}  // namespace

void trim_into(std::string_view raw, std::string& out) { out.assign(trimmed(raw)); }

std::size_t trimmed_size(std::string_view raw) { return trimmed(raw).size(); }

Outcome normalise_email(std::string_view raw, std::string& out) {
  trim_into(raw, out);
  if (out.empty()) return Outcome::kEmpty;
  fold_ascii_case(out);  // domains and almost all mailboxes are case-blind
  const std::size_t at = out.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == out.size() || out.find('@', at + 1) != std::string::npos ||
      std::any_of(out.begin(), out.end(), is_space))
    return Outcome::kInvalid;
  std::string_view domain(out.data() + at + 1, out.size() - at - 1);
  if (domain == "gmail.com" || domain == "googlemail.com") {
    std::string local = out.substr(0, at);
    const std::size_t plus = local.find('+');
    if (plus != std::string::npos) local.erase(plus);
    boost::algorithm::erase_all(local, ".");
    if (local.empty()) return Outcome::kInvalid;
    out = local + "@gmail.com";
  }
  return Outcome::kOk;
}

namespace {
// Trim and the cheap pre-check shared by normalise_phone and PhoneMemo: false when the value is empty
// (outcome kEmpty) or certainly invalid (kInvalid); out holds the trimmed value.
bool phone_precheck(std::string_view raw, std::string& out, Outcome& outcome) {
  trim_into(raw, out);
  if (out.empty()) {
    outcome = Outcome::kEmpty;
    return false;
  }
  // libphonenumber finds no number with fewer than two digits (its shortest viable number), so junk such
  // as "n/a" or "-" skips the parse. Only ASCII is judged here (other scripts have digits of their own,
  // e.g. full-width ones, which libphonenumber accepts).
  std::size_t digits = 0;
  bool ascii = true;
  for (const char c : out) {
    if (c >= '0' && c <= '9') ++digits;
    else if (static_cast<unsigned char>(c) >= 0x80) ascii = false;
  }
  if (ascii && digits < 2) {
    outcome = Outcome::kInvalid;
    return false;
  }
  return true;
}
const i18n::phonenumbers::PhoneNumberUtil* phone_util() {
  static const i18n::phonenumbers::PhoneNumberUtil* util = i18n::phonenumbers::PhoneNumberUtil::GetInstance();
  return util;
}
}  // namespace

Outcome normalise_phone(std::string_view raw, const std::string& region, std::string& out) {
  using i18n::phonenumbers::PhoneNumber;
  using i18n::phonenumbers::PhoneNumberUtil;
  Outcome outcome;
  if (!phone_precheck(raw, out, outcome)) return outcome;
  const PhoneNumberUtil* util = phone_util();
  PhoneNumber number;
  if (util->Parse(out, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR || !util->IsValidNumber(number))
    return Outcome::kInvalid;
  util->Format(number, PhoneNumberUtil::E164, &out);
  return Outcome::kOk;
}

PhoneMemo::PhoneMemo(std::string default_region) : region_(std::move(default_region)) {
  boost::algorithm::to_upper(region_);
}

Outcome PhoneMemo::normalise(std::string_view raw, std::string& out) {
  Outcome outcome;
  if (!phone_precheck(raw, out, outcome)) return outcome;
  // Spellings made of digits, spaces, '-', '(', ')', '.' and at most one '+' before the first digit, with
  // at least three digits and at most 250 bytes: libphonenumber drops the punctuation before it looks at
  // the number (no extension, second number, letters or RFC 3966 parts can be written with these
  // characters), so its result depends only on the '+' and the digits. Such spellings share one entry.
  bool plain = out.size() <= 250;
  bool plus = false;
  int digits = 0;
  spelled_key_.clear();
  for (std::size_t i = 0; plain && i < out.size(); ++i) {
    const char c = out[i];
    if (c >= '0' && c <= '9') {
      spelled_key_.push_back(c);
      ++digits;
    } else if (c == '+') {
      plain = !plus && digits == 0;
      plus = true;
    } else {
      plain = c == ' ' || c == '-' || c == '(' || c == ')' || c == '.';
    }
  }
  plain = plain && digits >= 3;
  if (plain) {
    if (plus) spelled_key_.insert(spelled_key_.begin(), '+');
    auto hit = spelled_.find(spelled_key_);
    if (hit != spelled_.end()) {
      if (hit->second.empty()) return Outcome::kInvalid;
      out = hit->second;
      return Outcome::kOk;
    }
  }
  // A plain spelling is parsed as its digits (and '+'): the same number, and ~35% less of libphonenumber's
  // time (its regular expressions scan a shorter string; "020 7946 0958" 11.0 us, "02079460958" 7.2 us).
  const Outcome result = parse_and_check(plain ? spelled_key_ : out, out);
  if (plain) {
    bytes_ += spelled_key_.capacity() + 32 + 64;
    spelled_.emplace(spelled_key_, result == Outcome::kOk ? out : std::string());
  }
  // A valid number's E.164 form is itself a plain spelling, and it parses back to the same number in any
  // region: remembered now, a later "+44 20 7946 0958" of a number first seen as "020 7946 0958" needs no
  // parse (about a third of the parses of the benchmark's phones).
  if (result == Outcome::kOk && spelled_.try_emplace(out, out).second) bytes_ += out.capacity() * 2 + 64;
  return result;
}

Outcome PhoneMemo::parse_and_check(const std::string& spelling, std::string& out) {
  using i18n::phonenumbers::PhoneNumber;
  using i18n::phonenumbers::PhoneNumberUtil;
  const PhoneNumberUtil* util = phone_util();
  PhoneNumber number;
  ++parses_;
  if (util->Parse(spelling, region_, &number) != PhoneNumberUtil::NO_PARSING_ERROR) return Outcome::kInvalid;
  // Parse (unlike ParseAndKeepRawInput) keeps nothing of the spelling (no raw input, country code source
  // or carrier code): the number is these fields, and IsValidNumber and E.164 formatting are functions of them.
  // 12 bytes (kept inline by std::string) plus the extension: country codes have at most three digits and
  // leading zeros are few; a number outside that (never seen) is checked without the memo.
  const int32_t country = number.country_code();
  const int32_t zeros = number.has_number_of_leading_zeros() ? number.number_of_leading_zeros() : -1;
  if (country < 0 || country > 65535 || zeros < -1 || zeros > 126) {
    if (!util->IsValidNumber(number)) return Outcome::kInvalid;
    util->Format(number, PhoneNumberUtil::E164, &out);
    return Outcome::kOk;
  }
  const uint16_t short_country = static_cast<uint16_t>(country);
  const uint64_t national = number.national_number();
  key_.clear();
  key_.append(reinterpret_cast<const char*>(&short_country), sizeof short_country);
  key_.append(reinterpret_cast<const char*>(&national), sizeof national);
  key_.push_back(static_cast<char>(zeros));
  key_.push_back(static_cast<char>((number.has_italian_leading_zero() ? 1 : 0) |
                                   (number.italian_leading_zero() ? 2 : 0)));
  key_.append(number.extension());
  auto it = formatted_.find(key_);
  if (it == formatted_.end()) {
    std::string e164;
    if (util->IsValidNumber(number)) util->Format(number, PhoneNumberUtil::E164, &e164);
    bytes_ += key_.capacity() + e164.capacity() + 64;  // two strings, the node and its bucket
    it = formatted_.emplace(key_, std::move(e164)).first;
  }
  if (it->second.empty()) return Outcome::kInvalid;
  out = it->second;
  return Outcome::kOk;
}

ValueNormaliser::ValueNormaliser(std::string default_region) : region_(std::move(default_region)) {
  boost::algorithm::to_upper(region_);
}

void ValueNormaliser::normalise(Normaliser kind, std::string_view raw, Normalised& out) const {
  switch (kind) {
    case Normaliser::kTrim:
      trim_into(raw, out.value);
      out.outcome = out.value.empty() ? Outcome::kEmpty : Outcome::kOk;
      return;
    case Normaliser::kLower:
      trim_into(raw, out.value);
      fold_ascii_case(out.value);
      out.outcome = out.value.empty() ? Outcome::kEmpty : Outcome::kOk;
      return;
    case Normaliser::kEmail:
      out.outcome = normalise_email(raw, out.value);
      return;
    case Normaliser::kPhone:
      out.outcome = normalise_phone(raw, region_, out.value);
      return;
  }
}

bool like_match(std::string_view text, std::string_view pattern) {
  // Iterative wildcard matching with one backtrack point per '%', linear in practice.
  std::size_t t = 0, p = 0, star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      char pc = pattern[p];
      if (pc == '%') {
        star_p = ++p;
        star_t = t;
        continue;
      }
      if (pc == '_') {
        ++p;
        ++t;
        continue;
      }
      if (pc == '\\' && p + 1 < pattern.size()) {
        if (text[t] == pattern[p + 1]) {
          p += 2;
          ++t;
          continue;
        }
      } else if (pc == text[t]) {
        ++p;
        ++t;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '%') ++p;
  return p == pattern.size();
}

namespace {
// Blocklist key: one byte for the type (0 = any type), then the lower-cased value.
void blocklist_key(std::string& key, int type, std::string_view lowered) {
  key.assign(1, static_cast<char>(static_cast<unsigned char>(type + 1)));
  key.append(lowered);
}
// '%literal', 'literal%', '%literal%' and plain literals need no general matcher.
bool is_simple_like(std::string_view pattern) {
  if (pattern.find_first_of("_\\") != std::string_view::npos) return false;
  std::string_view inner = pattern;
  if (!inner.empty() && inner.front() == '%') inner.remove_prefix(1);
  if (!inner.empty() && inner.back() == '%') inner.remove_suffix(1);
  return inner.find('%') == std::string_view::npos;
}
bool simple_like_match(std::string_view text, std::string_view pattern) {
  const bool any_prefix = !pattern.empty() && pattern.front() == '%';
  if (any_prefix) pattern.remove_prefix(1);
  const bool any_suffix = !pattern.empty() && pattern.back() == '%';
  if (any_suffix) pattern.remove_suffix(1);
  if (any_prefix && any_suffix) return text.find(pattern) != std::string_view::npos;
  if (any_prefix) return text.size() >= pattern.size() && text.substr(text.size() - pattern.size()) == pattern;
  if (any_suffix) return text.substr(0, pattern.size()) == pattern;
  return text == pattern;
}
}  // namespace

void Blocklist::add(Entry entry) {
  fold_ascii_case(entry.pattern);
  if (entry.reason.empty()) entry.reason = "blocklist";
  const std::size_t index = entries_.size();
  if (entry.is_like) {
    like_entries_.push_back(index);
  } else {
    blocklist_key(key_, entry.type, entry.pattern);
    exact_.emplace(key_, index);
  }
  entries_.push_back(std::move(entry));
}

const std::string* Blocklist::match(int type, std::string_view value) const {
  if (entries_.empty()) return nullptr;
  lowered_.assign(value);
  fold_ascii_case(lowered_);
  for (int t : {type, -1}) {
    blocklist_key(key_, t, lowered_);
    auto it = exact_.find(key_);
    if (it != exact_.end()) return &entries_[it->second].reason;
  }
  for (std::size_t index : like_entries_) {
    const Entry& entry = entries_[index];
    if (entry.type != -1 && entry.type != type) continue;
    const bool hit = is_simple_like(entry.pattern) ? simple_like_match(lowered_, entry.pattern)
                                                   : like_match(lowered_, entry.pattern);
    if (hit) return &entry.reason;
  }
  return nullptr;
}

}  // namespace cdp::identity
