#include "core/numeric_order.h"

#include "core/decimal.h"
#include "core/error.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

using cdp::compare_numeric;
using cdp::Decimal;
using cdp::numeric_order_key;

namespace {

cdp::NumericOrderKey key_of(const std::string& payload) {
  return numeric_order_key(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size());
}

std::string u16(std::uint16_t v) {
  std::string s(2, '\0');
  std::memcpy(&s[0], &v, 2);
  return s;
}

std::string long_payload(bool negative, std::int16_t weight, std::uint16_t dscale, const std::vector<std::int16_t>& digits) {
  std::string s = u16(static_cast<std::uint16_t>((negative ? 0x4000 : 0) | dscale)) + u16(static_cast<std::uint16_t>(weight));
  for (auto d : digits) s += u16(static_cast<std::uint16_t>(d));
  return s;
}

}  // namespace

TEST(NumericOrder, AgreesWithDecimalOnRandomValues) {
  std::mt19937_64 random(42);
  std::vector<Decimal> values;
  for (int i = 0; i < 300; ++i) {
    const long long units = static_cast<long long>(random() % 2000001) - 1000000;
    values.emplace_back(static_cast<__int128>(units) * (i % 7 == 0 ? 1000000007LL : 1), static_cast<int>(random() % 5));
  }
  values.push_back(Decimal(0, 0));
  values.push_back(Decimal(0, 3));
  for (const Decimal& a : values) {
    const std::string pa = cdp::encode_numeric(a);
    for (std::size_t j = 0; j < values.size(); j += 7) {
      const Decimal& b = values[j];
      const std::string pb = cdp::encode_numeric(b);
      const int expected = a.compare(b);
      const int got = compare_numeric(key_of(pa), key_of(pb));
      ASSERT_EQ((got > 0) - (got < 0), (expected > 0) - (expected < 0)) << a.to_string() << " vs " << b.to_string();
    }
  }
}

TEST(NumericOrder, ShortAndLongFormatsOfTheSameValueAreEqual) {
  // 12.5 in the short format: header 0x8000 | dscale 1 << 7, weight 0, digits 12, 5000.
  const std::string short_form = u16(0x8000 | (1 << 7)) + u16(12) + u16(5000);
  const std::string long_form = cdp::encode_numeric(Decimal::parse("12.50"));
  EXPECT_EQ(compare_numeric(key_of(short_form), key_of(long_form)), 0);
  // -0.0001 short: sign bit, weight -1 (0x7F in 7-bit two's complement), digit 1.
  const std::string tiny_negative = u16(0x8000 | 0x2000 | (4 << 7) | 0x007F) + u16(1);
  EXPECT_EQ(compare_numeric(key_of(tiny_negative), key_of(cdp::encode_numeric(Decimal::parse("-0.0001")))), 0);
  EXPECT_LT(compare_numeric(key_of(tiny_negative), key_of(cdp::encode_numeric(Decimal::parse("0")))), 0);
}

TEST(NumericOrder, HandlesValuesBeyondThirtyEightDigits) {
  const std::string huge = long_payload(false, 20, 0, {1});           // 10^80
  const std::string huge_negative = long_payload(true, 20, 0, {1});   // -10^80
  const std::string big = cdp::encode_numeric(Decimal::parse("99999999999999999999999999999999999"));
  EXPECT_GT(compare_numeric(key_of(huge), key_of(big)), 0);
  EXPECT_LT(compare_numeric(key_of(huge_negative), key_of(big)), 0);
  const std::string tiny = long_payload(false, -30, 120, {1});         // 10^-120
  EXPECT_GT(compare_numeric(key_of(tiny), key_of(cdp::encode_numeric(Decimal::parse("0")))), 0);
  EXPECT_LT(compare_numeric(key_of(tiny), key_of(cdp::encode_numeric(Decimal::parse("0.0001")))), 0);
}

TEST(NumericOrder, SpecialValuesFollowPostgresOrder) {
  const std::string nan = u16(0xC000), pos_inf = u16(0xD000), neg_inf = u16(0xF000);
  const std::string one = cdp::encode_numeric(Decimal::parse("1"));
  const std::string huge = long_payload(false, 1000, 0, {9999});
  EXPECT_LT(compare_numeric(key_of(neg_inf), key_of(one)), 0);
  EXPECT_GT(compare_numeric(key_of(pos_inf), key_of(huge)), 0);
  EXPECT_GT(compare_numeric(key_of(nan), key_of(pos_inf)), 0);
  EXPECT_EQ(compare_numeric(key_of(nan), key_of(nan)), 0);
  EXPECT_EQ(compare_numeric(key_of(pos_inf), key_of(pos_inf)), 0);
  EXPECT_EQ(key_of(nan).kind(), cdp::NumericKind::kNaN);
  EXPECT_EQ(key_of(neg_inf).kind(), cdp::NumericKind::kNegativeInfinity);
  EXPECT_EQ(key_of(one).kind(), cdp::NumericKind::kFinite);
}

TEST(NumericOrder, RejectsMalformedPayloads) {
  EXPECT_THROW(key_of(std::string(1, '\0')), cdp::Error);
  EXPECT_THROW(key_of(u16(0xE000)), cdp::Error);            // unknown special value
  EXPECT_THROW(key_of(u16(0x0000) + u16(0) + "x"), cdp::Error);  // odd number of digit bytes
  EXPECT_THROW(key_of(long_payload(false, 0, 0, {1, 12345})), cdp::Error);  // digit out of range
  const std::string bad = u16(0xE000);
  EXPECT_FALSE(cdp::numeric_order_key_nothrow(reinterpret_cast<const std::uint8_t*>(bad.data()), bad.size()).valid());
}

TEST(NumericOrder, DigitsBeyondTheHeadStillDecide) {
  auto cmp = [](const char* a, const char* b) {
    return compare_numeric(key_of(cdp::encode_numeric(Decimal::parse(a))), key_of(cdp::encode_numeric(Decimal::parse(b))));
  };
  EXPECT_LT(cmp("1.00000000000001", "1.00000000000002"), 0);
  EXPECT_GT(cmp("-1.00000000000001", "-1.00000000000002"), 0);
  EXPECT_EQ(cmp("123456789012.3456789", "123456789012.34567890"), 0);
  EXPECT_LT(cmp("9999.9999", "10000"), 0);
  EXPECT_LT(cmp("-10000", "-9999.9999"), 0);
  // A payload with a leading zero digit (PostgreSQL never writes one) orders by its value.
  const std::string padded = long_payload(false, 1, 0, {0, 5});  // 0*10000 + 5 = 5
  EXPECT_EQ(compare_numeric(key_of(padded), key_of(cdp::encode_numeric(Decimal::parse("5")))), 0);
  const std::string zero_digits = long_payload(false, 0, 0, {0, 0});
  EXPECT_EQ(compare_numeric(key_of(zero_digits), key_of(cdp::encode_numeric(Decimal::parse("0")))), 0);
}
