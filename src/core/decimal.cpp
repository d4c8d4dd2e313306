#include "core/decimal.h"

#include "core/error.h"

#include <cstring>

#include "core/no_postgres.h"

namespace cdp {
namespace {

using int128 = __int128;

// PostgreSQL's numeric layout (src/backend/utils/adt/numeric.c): base-10000 digits, a 16-bit
// header word, and either a short (2-byte) or long (4-byte) header.
constexpr std::uint16_t kSignMask = 0xC000;
constexpr std::uint16_t kPositive = 0x0000;
constexpr std::uint16_t kNegative = 0x4000;
constexpr std::uint16_t kShort = 0x8000;
constexpr std::uint16_t kSpecial = 0xC000;
constexpr std::uint16_t kExtSignMask = 0xF000;
constexpr std::uint16_t kNaN = 0xC000;
constexpr std::uint16_t kPosInf = 0xD000;
constexpr std::uint16_t kNegInf = 0xF000;
constexpr std::uint16_t kShortSignMask = 0x2000;
constexpr std::uint16_t kShortDscaleMask = 0x1F80;
constexpr int kShortDscaleShift = 7;
constexpr std::uint16_t kShortWeightSignMask = 0x0040;
constexpr std::uint16_t kShortWeightMask = 0x003F;
constexpr std::uint16_t kDscaleMask = 0x3FFF;
constexpr int kBase = 10000;
constexpr int kBaseDigits = 4;

constexpr int128 kInt128Max = static_cast<int128>((~static_cast<unsigned __int128>(0)) >> 1);

int128 pow10(int exponent) {
  int128 result = 1;
  for (int i = 0; i < exponent; ++i) result *= 10;
  return result;
}

[[noreturn]] void out_of_range() {
  throw Error(sqlstate::kNumericOutOfRange, "value out of range for pg_cdp's exact decimal arithmetic",
              "pg_cdp sums money exactly in 38 significant digits.");
}

[[noreturn]] void malformed() {
  throw Error(sqlstate::kInvalidBinaryRepresentation, "malformed numeric value");
}

int128 checked_mul(int128 a, int128 b) {
  int128 result;
  if (__builtin_mul_overflow(a, b, &result)) out_of_range();
  return result;
}

int128 checked_add(int128 a, int128 b) {
  int128 result;
  if (__builtin_add_overflow(a, b, &result)) out_of_range();
  return result;
}

std::uint16_t read_u16(const std::uint8_t* p) {
  std::uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::int16_t read_i16(const std::uint8_t* p) {
  std::int16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

Decimal::Decimal(__int128 units, int scale) : units_(units), scale_(scale) {
  if (scale < 0 || scale > kMaxScale)
    throw Error(sqlstate::kNumericOutOfRange, "decimal scale " + std::to_string(scale) + " is out of range");
}

Decimal Decimal::rescaled(int new_scale) const {
  if (new_scale == scale_) return *this;
  if (new_scale < scale_ || new_scale > kMaxScale) out_of_range();
  return Decimal(checked_mul(units_, pow10(new_scale - scale_)), new_scale);
}

Decimal& Decimal::operator+=(const Decimal& other) {
  if (other.scale_ > scale_) *this = rescaled(other.scale_);
  const int128 addend = other.scale_ == scale_ ? other.units_ : other.rescaled(scale_).units_;
  units_ = checked_add(units_, addend);
  return *this;
}

Decimal Decimal::operator+(const Decimal& other) const {
  Decimal sum = *this;
  sum += other;
  return sum;
}

int Decimal::compare(const Decimal& other) const {
  if (sign() != other.sign()) return sign() < other.sign() ? -1 : 1;
  const int scale = scale_ > other.scale_ ? scale_ : other.scale_;
  int128 a = units_, b = other.units_;
  // Rescaling may overflow for huge values; fall back to comparing integer parts first.
  int128 a_scaled, b_scaled;
  if (!__builtin_mul_overflow(a, pow10(scale - scale_), &a_scaled) &&
      !__builtin_mul_overflow(b, pow10(scale - other.scale_), &b_scaled))
    return a_scaled < b_scaled ? -1 : (a_scaled > b_scaled ? 1 : 0);
  const int128 a_int = a / pow10(scale_), b_int = b / pow10(other.scale_);
  if (a_int != b_int) return a_int < b_int ? -1 : 1;
  const double a_frac = static_cast<double>(a % pow10(scale_)) / static_cast<double>(pow10(scale_));
  const double b_frac = static_cast<double>(b % pow10(other.scale_)) / static_cast<double>(pow10(other.scale_));
  return a_frac < b_frac ? -1 : (a_frac > b_frac ? 1 : 0);
}

double Decimal::to_double() const {
  const int128 divisor = pow10(scale_);
  const int128 whole = units_ / divisor, fraction = units_ % divisor;
  return static_cast<double>(whole) + static_cast<double>(fraction) / static_cast<double>(divisor);
}

std::string Decimal::to_string() const {
  unsigned __int128 magnitude = units_ < 0 ? -static_cast<unsigned __int128>(units_) : units_;
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  } while (magnitude != 0);
  if (static_cast<int>(digits.size()) <= scale_) digits.insert(0, scale_ - digits.size() + 1, '0');
  if (scale_ > 0) digits.insert(digits.size() - scale_, 1, '.');
  if (units_ < 0) digits.insert(digits.begin(), '-');
  return digits;
}

Decimal Decimal::parse(const std::string& text) {
  std::size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) negative = text[i++] == '-';
  int128 units = 0;
  int scale = 0;
  bool seen_digit = false, seen_point = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.' && !seen_point) {
      seen_point = true;
    } else if (c >= '0' && c <= '9') {
      seen_digit = true;
      units = checked_add(checked_mul(units, 10), c - '0');
      if (seen_point && ++scale > kMaxScale) out_of_range();
    } else {
      seen_digit = false;
      break;
    }
  }
  if (!seen_digit)
    throw Error(sqlstate::kInvalidTextRepresentation, "invalid decimal value: \"" + text + "\"");
  return Decimal(negative ? -units : units, scale);
}

DecodedNumeric decode_numeric(const std::uint8_t* payload, std::size_t length) {
  if (length < sizeof(std::uint16_t)) malformed();
  const std::uint16_t header = read_u16(payload);
  DecodedNumeric result;
  if ((header & kSignMask) == kSpecial) {
    switch (header & kExtSignMask) {
      case kNaN: result.kind = NumericKind::kNaN; return result;
      case kPosInf: result.kind = NumericKind::kPositiveInfinity; return result;
      case kNegInf: result.kind = NumericKind::kNegativeInfinity; return result;
      default: malformed();
    }
  }
  bool negative;
  int dscale, weight;
  std::size_t header_size;
  if ((header & kSignMask) == kShort) {
    negative = (header & kShortSignMask) != 0;
    dscale = (header & kShortDscaleMask) >> kShortDscaleShift;
    weight = (header & kShortWeightSignMask) ? static_cast<int>(~kShortWeightMask | (header & kShortWeightMask))
                                             : (header & kShortWeightMask);
    header_size = sizeof(std::uint16_t);
  } else {
    if (length < 2 * sizeof(std::uint16_t)) malformed();
    negative = (header & kSignMask) == kNegative;
    if ((header & kSignMask) != kNegative && (header & kSignMask) != kPositive) malformed();
    dscale = header & kDscaleMask;
    weight = read_i16(payload + sizeof(std::uint16_t));
    header_size = 2 * sizeof(std::uint16_t);
  }
  if ((length - header_size) % sizeof(std::int16_t) != 0) malformed();
  const int ndigits = static_cast<int>((length - header_size) / sizeof(std::int16_t));
  // Digit i is worth 10000^(weight - i); the value's scale is dscale (digits past it are zero).
  const int scale = dscale;
  if (scale > Decimal::kMaxScale) out_of_range();
  int128 units = 0;
  // units = sum digit_i * 10^(4*(weight-i) + scale)
  for (int i = 0; i < ndigits; ++i) {
    const int digit = read_i16(payload + header_size + i * sizeof(std::int16_t));
    if (digit < 0 || digit >= kBase) malformed();
    const int exponent = kBaseDigits * (weight - i) + scale;
    if (digit == 0) continue;
    if (exponent >= 0) {
      if (exponent > 38) out_of_range();
      units = checked_add(units, checked_mul(digit, pow10(exponent)));
    } else {
      // Trailing digit partly below the display scale: PostgreSQL never stores those non-zero.
      const int128 divisor = pow10(-exponent);
      if (-exponent >= kBaseDigits || digit % divisor != 0) malformed();
      units = checked_add(units, digit / divisor);
    }
  }
  (void)kInt128Max;
  result.value = Decimal(negative ? -units : units, scale);
  return result;
}

std::string encode_numeric(const Decimal& value) {
  // Split |units| * 10^-scale into base-10000 digits aligned on the decimal point.
  unsigned __int128 magnitude =
      value.units() < 0 ? -static_cast<unsigned __int128>(value.units()) : value.units();
  const int scale = value.scale();
  // Pad the fraction to a multiple of 4 digits so the digit groups align with the point.
  const int padded_scale = (scale + kBaseDigits - 1) / kBaseDigits * kBaseDigits;
  magnitude *= static_cast<unsigned __int128>(pow10(padded_scale - scale));
  std::int16_t groups[16];
  int count = 0;
  while (magnitude != 0) {
    groups[count++] = static_cast<std::int16_t>(magnitude % kBase);
    magnitude /= kBase;
  }
  // groups[0] is the least significant; its weight is -padded_scale/4.
  int lowest_weight = -padded_scale / kBaseDigits;
  int start = 0;
  while (start < count && groups[start] == 0) {  // strip trailing zero digits
    ++start;
    ++lowest_weight;
  }
  int end = count;  // leading zeros do not occur (count stops at the most significant non-zero)
  const int ndigits = end - start;
  const int weight = ndigits == 0 ? 0 : lowest_weight + ndigits - 1;
  std::string out(2 * sizeof(std::uint16_t) + ndigits * sizeof(std::int16_t), '\0');
  const std::uint16_t sign_dscale =
      static_cast<std::uint16_t>((value.units() < 0 ? kNegative : kPositive) | (scale & kDscaleMask));
  const std::int16_t weight16 = static_cast<std::int16_t>(ndigits == 0 ? 0 : weight);
  std::memcpy(&out[0], &sign_dscale, sizeof sign_dscale);
  std::memcpy(&out[2], &weight16, sizeof weight16);
  for (int i = 0; i < ndigits; ++i) {
    const std::int16_t digit = groups[end - 1 - i];
    std::memcpy(&out[4 + 2 * i], &digit, sizeof digit);
  }
  return out;
}

}  // namespace cdp
