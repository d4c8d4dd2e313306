// Exact decimal arithmetic for money: a 128-bit integer count of 10^-scale units.
// Sums of numeric(12,2) amounts stay exact to the cent without PostgreSQL's generic (and slow)
// numeric aggregation. Values are read from, and written to, PostgreSQL's numeric binary format
// (the on-disk layout, stable across releases because pg_upgrade keeps data files as they are).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace cdp {

class Decimal {
 public:
  static constexpr int kMaxScale = 30;  // keeps 10^scale within int128 with room for the integer part

  Decimal() = default;
  Decimal(__int128 units, int scale);
  static Decimal from_int(long long value) { return Decimal(value, 0); }

  __int128 units() const { return units_; }
  int scale() const { return scale_; }
  int sign() const { return units_ > 0 ? 1 : (units_ < 0 ? -1 : 0); }
  bool is_zero() const { return units_ == 0; }

  // Exact; throws cdp::Error 22003 when the result does not fit.
  Decimal& operator+=(const Decimal& other);
  Decimal operator+(const Decimal& other) const;
  Decimal operator-() const { return Decimal(-units_, scale_); }
  // Same value at a larger scale (exact; throws 22003 on overflow).
  Decimal rescaled(int new_scale) const;
  // Exact comparison of values of any scales.
  int compare(const Decimal& other) const;
  bool operator==(const Decimal& other) const { return compare(other) == 0; }
  bool operator<(const Decimal& other) const { return compare(other) < 0; }

  double to_double() const;
  std::string to_string() const;  // plain notation with exactly scale() fraction digits, e.g. "-12.50"
  // Parses plain decimal notation ("12", "-0.25", "+3.10"); throws cdp::Error 22P02 on anything else.
  static Decimal parse(const std::string& text);

 private:
  __int128 units_ = 0;
  int scale_ = 0;
};

// PostgreSQL numeric binary payload (the bytes after the varlena header).
enum class NumericKind { kFinite, kNaN, kPositiveInfinity, kNegativeInfinity };

struct DecodedNumeric {
  NumericKind kind = NumericKind::kFinite;
  Decimal value;
};

// Decodes the payload of a numeric datum. Throws cdp::Error 22P03 on malformed bytes and 22003 when
// the value needs more than 38 significant digits.
DecodedNumeric decode_numeric(const std::uint8_t* payload, std::size_t length);

// Encodes a finite decimal as a numeric payload (long format, display scale = value.scale()).
std::string encode_numeric(const Decimal& value);

}  // namespace cdp
