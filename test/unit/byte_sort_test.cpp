#include "core/byte_sort.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace {

// Sorts 0..n-1 by keys[i] with sort_by_bytes and returns the keys in that order.
std::vector<std::string> sorted(const std::vector<std::string>& keys) {
  std::vector<int32_t> indexes(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) indexes[i] = static_cast<int32_t>(i);
  cdp::sort_by_bytes(indexes, [&](int32_t i) { return std::string_view(keys[i]); });
  std::vector<std::string> out;
  for (int32_t i : indexes) out.push_back(keys[i]);
  return out;
}

std::vector<std::string> expected(std::vector<std::string> keys) {
  std::sort(keys.begin(), keys.end());  // std::string compares bytes as unsigned char
  return keys;
}

TEST(ByteSort, EmptyAndSingle) {
  EXPECT_TRUE(sorted({}).empty());
  EXPECT_EQ(sorted({"x"}), std::vector<std::string>{"x"});
  EXPECT_EQ(sorted({""}), std::vector<std::string>{""});
}

TEST(ByteSort, PrefixesZeroBytesAndHighBytes) {
  using namespace std::string_literals;
  std::vector<std::string> keys = {"abc", "abc\0"s, "ab", "", "\0"s, "\0\0"s, "abcdefgh", "abcdefgh\0"s,
                                   "abcdefghi", "abcdefg", "\xff", "\x7f", "\x80", "abcdefgh\xff", "abcdefgg\xff",
                                   "b", "abcdefghabcdefgh", "abcdefghabcdefg", "abcdefghabcdefgh\0"s};
  EXPECT_EQ(sorted(keys), expected(keys));
}

TEST(ByteSort, LongSharedPrefixesAndDuplicates) {
  std::mt19937 rng(7);
  std::vector<std::string> keys;
  const std::string shared(37, 's');
  for (int i = 0; i < 5000; ++i) {
    std::string k = shared + '\0' + std::to_string(rng() % 3000);  // duplicates too
    if (i % 7 == 0) k.resize(rng() % k.size());                      // prefixes of others
    if (i % 11 == 0) k += std::string(rng() % 20, static_cast<char>(rng() % 256));
    keys.push_back(k);
  }
  EXPECT_EQ(sorted(keys), expected(keys));
}

TEST(ByteSort, RandomBinaryKeys) {
  std::mt19937 rng(11);
  std::vector<std::string> keys;
  for (int i = 0; i < 20000; ++i) {
    std::string k(rng() % 24, '\0');
    for (char& c : k) c = static_cast<char>(rng() % 4);  // a small alphabet: many equal chunks
    keys.push_back(k);
  }
  EXPECT_EQ(sorted(keys), expected(keys));
}

}  // namespace
