// Exact numeric ordering on PostgreSQL's numeric payload; mirrors cmp_var_common/cmp_abs_common
// of PostgreSQL's numeric.c so that ties and order match the server's own comparison.
#include "core/numeric_order.h"

#include "core/error.h"

#include <cstdint>
#include <cstring>

#include "core/no_postgres.h"

namespace cdp {
namespace {

constexpr std::uint16_t kSignMask = 0xC000;
constexpr std::uint16_t kNegative = 0x4000;
constexpr std::uint16_t kShort = 0x8000;
constexpr std::uint16_t kSpecial = 0xC000;
constexpr std::uint16_t kExtSignMask = 0xF000;
constexpr std::uint16_t kNaN = 0xC000;
constexpr std::uint16_t kPosInf = 0xD000;
constexpr std::uint16_t kNegInf = 0xF000;
constexpr std::uint16_t kShortSignMask = 0x2000;
constexpr std::uint16_t kShortWeightSignMask = 0x0040;
constexpr std::uint16_t kShortWeightMask = 0x003F;

[[noreturn]] void malformed() {
  throw Error(sqlstate::kInvalidBinaryRepresentation, "malformed numeric value");
}

std::int16_t digit_at(const std::uint8_t* digits, int i) {
  std::int16_t digit;
  std::memcpy(&digit, digits + static_cast<std::size_t>(i) * sizeof digit, sizeof digit);
  return digit;
}

int compare_abs(const NumericOrderKey& a, const NumericOrderKey& b) {
  int weight1 = a.weight, weight2 = b.weight;
  int i1 = 0, i2 = 0;
  while (weight1 > weight2 && i1 < a.ndigits) {
    if (digit_at(a.digits, i1++) != 0) return 1;
    --weight1;
  }
  while (weight2 > weight1 && i2 < b.ndigits) {
    if (digit_at(b.digits, i2++) != 0) return -1;
    --weight2;
  }
  if (weight1 == weight2) {
    while (i1 < a.ndigits && i2 < b.ndigits) {
      const int difference = digit_at(a.digits, i1++) - digit_at(b.digits, i2++);
      if (difference != 0) return difference > 0 ? 1 : -1;
    }
  }
  while (i1 < a.ndigits)
    if (digit_at(a.digits, i1++) != 0) return 1;
  while (i2 < b.ndigits)
    if (digit_at(b.digits, i2++) != 0) return -1;
  return 0;
}

// -Infinity, finite, +Infinity, NaN.
int rank(NumericKind kind) {
  switch (kind) {
    case NumericKind::kNegativeInfinity: return 0;
    case NumericKind::kFinite: return 1;
    case NumericKind::kPositiveInfinity: return 2;
    case NumericKind::kNaN: return 3;
  }
  return 3;
}

// head: -Infinity < negatives < 0 < positives < +Infinity < NaN. A finite non-zero value's
// magnitude is (weight, d0, d1, d2) after skipping leading zero digits, packed as
// (weight + 2^17) << 42 | d0 << 28 | d1 << 14 | d2 (each digit < 2^14), so heads that differ
// order their values exactly and equal heads need the full comparison.
std::int64_t head_of(NumericOrderKey& key) {
  switch (key.kind) {
    case NumericKind::kNegativeInfinity: return INT64_MIN;
    case NumericKind::kPositiveInfinity: return INT64_MAX - 1;
    case NumericKind::kNaN: return INT64_MAX;
    case NumericKind::kFinite: break;
  }
  int first = 0;
  long weight = key.weight;
  while (first < key.ndigits && digit_at(key.digits, first) == 0) {
    ++first;
    --weight;
  }
  if (first == key.ndigits) return 0;  // zero, however it is stored
  std::int64_t magnitude = (weight + (1L << 17)) << 42;
  for (int k = 0; k < 3; ++k) {
    const int i = first + k;
    const std::int64_t digit = i < key.ndigits ? digit_at(key.digits, i) : 0;
    if (digit < 0 || digit >= 10000) malformed();
    magnitude |= digit << (28 - 14 * k);
  }
  for (int i = first + 3; i < key.ndigits; ++i)
    if (digit_at(key.digits, i) != 0) {
      key.head_is_exact = false;
      break;
    }
  return key.negative ? -(magnitude + 1) : magnitude + 1;
}

}  // namespace

NumericOrderKey numeric_order_key(const std::uint8_t* payload, std::size_t length) {
  if (length < sizeof(std::uint16_t)) malformed();
  std::uint16_t header;
  std::memcpy(&header, payload, sizeof header);
  NumericOrderKey key;
  if ((header & kSignMask) == kSpecial) {
    switch (header & kExtSignMask) {
      case kNaN: key.kind = NumericKind::kNaN; break;
      case kPosInf: key.kind = NumericKind::kPositiveInfinity; break;
      case kNegInf: key.kind = NumericKind::kNegativeInfinity; break;
      default: malformed();
    }
    key.head = head_of(key);
    return key;
  }
  std::size_t header_size;
  if ((header & kSignMask) == kShort) {
    key.negative = (header & kShortSignMask) != 0;
    key.weight = (header & kShortWeightSignMask) ? static_cast<int>(~kShortWeightMask | (header & kShortWeightMask))
                                                 : (header & kShortWeightMask);
    header_size = sizeof(std::uint16_t);
  } else {
    if (length < 2 * sizeof(std::uint16_t)) malformed();
    key.negative = (header & kSignMask) == kNegative;
    std::int16_t weight;
    std::memcpy(&weight, payload + sizeof(std::uint16_t), sizeof weight);
    key.weight = weight;
    header_size = 2 * sizeof(std::uint16_t);
  }
  if ((length - header_size) % sizeof(std::int16_t) != 0) malformed();
  key.ndigits = static_cast<int>((length - header_size) / sizeof(std::int16_t));
  key.digits = payload + header_size;
  key.head = head_of(key);
  return key;
}

int compare_numeric(const NumericOrderKey& a, const NumericOrderKey& b) {
  if (a.head != b.head) return a.head < b.head ? -1 : 1;
  if (a.head == 0 || (a.head_is_exact && b.head_is_exact)) return 0;  // both zero, or all digits equal
  if (a.kind != NumericKind::kFinite || b.kind != NumericKind::kFinite) {
    const int ra = rank(a.kind), rb = rank(b.kind);
    return ra < rb ? -1 : (ra > rb ? 1 : 0);
  }
  if (a.ndigits == 0) {
    if (b.ndigits == 0) return 0;
    return b.negative ? 1 : -1;
  }
  if (b.ndigits == 0) return a.negative ? -1 : 1;
  if (!a.negative) return b.negative ? 1 : compare_abs(a, b);
  if (!b.negative) return -1;
  return compare_abs(b, a);
}

}  // namespace cdp
