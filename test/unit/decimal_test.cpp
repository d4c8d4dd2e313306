#include "core/decimal.h"
#include "core/error.h"

#include <gtest/gtest.h>

using cdp::Decimal;

TEST(Decimal, AddsAcrossScalesExactly) {
  Decimal sum = Decimal::parse("12.50");
  sum += Decimal::parse("-0.125");
  sum += Decimal::parse("100");
  EXPECT_EQ(sum.to_string(), "112.375");
  EXPECT_EQ(sum.scale(), 3);
}

TEST(Decimal, ParsesAndPrintsPlainNotation) {
  EXPECT_EQ(Decimal::parse("-0.05").to_string(), "-0.05");
  EXPECT_EQ(Decimal::parse("+7").to_string(), "7");
  EXPECT_EQ(Decimal::parse("0.000").to_string(), "0.000");
  EXPECT_THROW(Decimal::parse("12a"), cdp::Error);
  EXPECT_THROW(Decimal::parse(""), cdp::Error);
}

TEST(Decimal, ComparesValuesOfDifferentScales) {
  EXPECT_EQ(Decimal::parse("1.50").compare(Decimal::parse("1.5")), 0);
  EXPECT_LT(Decimal::parse("-2").compare(Decimal::parse("1.5")), 0);
  EXPECT_GT(Decimal::parse("10.01").compare(Decimal::parse("10.001")), 0);
}

TEST(Decimal, OverflowIsAnErrorNotAWrap) {
  Decimal big = Decimal::parse("99999999999999999999999999999999999999");  // 38 nines
  try {
    big += Decimal::parse("99999999999999999999999999999999999999");
    big += Decimal::parse("99999999999999999999999999999999999999");
    FAIL() << "expected overflow";
  } catch (const cdp::Error& e) {
    EXPECT_STREQ(e.sqlstate(), "22003");
  }
}

TEST(Decimal, ToDouble) { EXPECT_DOUBLE_EQ(Decimal::parse("-12.25").to_double(), -12.25); }

namespace {
std::string bytes(std::initializer_list<int> words) {
  std::string out;
  for (int w : words) {
    std::uint16_t v = static_cast<std::uint16_t>(w);
    out.append(reinterpret_cast<const char*>(&v), 2);
  }
  return out;
}
cdp::DecodedNumeric decode(const std::string& payload) {
  return cdp::decode_numeric(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size());
}
}  // namespace

TEST(NumericCodec, DecodesLongFormat) {
  // 12345.67: sign/dscale = 2, weight 1, digits [1, 2345, 6700]
  auto d = decode(bytes({0x0002, 1, 1, 2345, 6700}));
  ASSERT_EQ(d.kind, cdp::NumericKind::kFinite);
  EXPECT_EQ(d.value.to_string(), "12345.67");
  // -0.05: negative, dscale 2, weight -1, digits [500]
  EXPECT_EQ(decode(bytes({0x4002, 0xFFFF, 500})).value.to_string(), "-0.05");
}

TEST(NumericCodec, DecodesShortFormat) {
  // Short header: 0x8000 | dscale<<7 | weight. 19.99 -> dscale 2, weight 0, digits [19, 9900]
  auto d = decode(bytes({0x8000 | (2 << 7) | 0, 19, 9900}));
  EXPECT_EQ(d.value.to_string(), "19.99");
  // Negative with negative weight: -0.0001 -> sign bit 0x2000, dscale 4, weight -1 (0x40 | 0x3F)
  auto n = decode(bytes({0x8000 | 0x2000 | (4 << 7) | 0x7F, 1}));
  EXPECT_EQ(n.value.to_string(), "-0.0001");
  // Zero: no digits
  EXPECT_EQ(decode(bytes({0x8000})).value.to_string(), "0");
}

TEST(NumericCodec, DecodesSpecialValues) {
  EXPECT_EQ(decode(bytes({0xC000})).kind, cdp::NumericKind::kNaN);
  EXPECT_EQ(decode(bytes({0xD000})).kind, cdp::NumericKind::kPositiveInfinity);
  EXPECT_EQ(decode(bytes({0xF000})).kind, cdp::NumericKind::kNegativeInfinity);
}

TEST(NumericCodec, RejectsMalformedBytes) {
  EXPECT_THROW(decode(std::string(1, '\0')), cdp::Error);
  EXPECT_THROW(decode(bytes({0x0002, 1, 12000})), cdp::Error);  // digit >= 10000
  EXPECT_THROW(decode(bytes({0x0002, 1}) + std::string(1, '\0')), cdp::Error);  // odd length
}

TEST(NumericCodec, EncodeDecodeRoundTrips) {
  for (const char* text : {"0", "1", "-1", "12345.67", "0.0001", "-98765432109876543.210", "10000", "0.50",
                           "123456789012345678901234567890.12345678"}) {
    Decimal value = Decimal::parse(text);
    auto back = decode(cdp::encode_numeric(value));
    EXPECT_EQ(back.value.to_string(), value.to_string()) << text;
  }
}
