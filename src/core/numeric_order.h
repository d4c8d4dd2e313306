// Exact ordering of PostgreSQL numeric values straight from their binary payload, with no limit on
// digits (cdp::Decimal stops at 38). Used to sort numeric columns for RFM scoring in C++ without
// calling back into PostgreSQL for every comparison.
#pragma once
#include "core/decimal.h"

#include <cstddef>
#include <cstdint>

namespace cdp {

// A view of one numeric payload (the bytes after the varlena header). It does not own the bytes:
// the payload must outlive the key.
struct NumericOrderKey {
  // Order-preserving summary: -Infinity < negatives < 0 < positives < +Infinity < NaN, and for
  // finite values the sign, weight and first three digits. A different head decides a comparison
  // without touching the digits, which keeps sorts cache-friendly.
  std::int64_t head = 0;
  const std::uint8_t* digits = nullptr;  // ndigits native-endian int16 base-10000 digits
  std::int32_t ndigits = 0;              // 0 for zero; -1 marks a malformed payload
  std::int16_t weight = 0;               // base-10000 exponent of the first digit
  bool head_is_exact = true;             // no non-zero digit beyond the head: equal heads = equal values

  NumericKind kind() const;
  bool valid() const { return ndigits >= 0; }
};

// Throws cdp::Error 22P03 on malformed bytes.
NumericOrderKey numeric_order_key(const std::uint8_t* payload, std::size_t length);
// Never throws (for loops that must not throw): a malformed payload gives a key with valid() false.
NumericOrderKey numeric_order_key_nothrow(const std::uint8_t* payload, std::size_t length) noexcept;

// PostgreSQL's numeric order: -Infinity < finite values < +Infinity < NaN (NaN equals NaN).
// Returns <0, 0 or >0.
int compare_numeric(const NumericOrderKey& a, const NumericOrderKey& b);

struct NumericOrderLess {
  bool operator()(const NumericOrderKey& a, const NumericOrderKey& b) const { return compare_numeric(a, b) < 0; }
};

}  // namespace cdp
