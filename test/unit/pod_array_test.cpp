#include "core/pod_array.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>

namespace {

using cdp::PodArray;

TEST(PodArray, GrowsKeepsValuesAndCountsOnlyWrittenBytes) {
  PodArray<int64_t> a;
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.memory_bytes(), 0u);
  for (int64_t i = 0; i < 100000; ++i) a.push_back(i * 3);
  ASSERT_EQ(a.size(), 100000u);
  for (int64_t i = 0; i < 100000; ++i) ASSERT_EQ(a[i], i * 3);
  EXPECT_GE(a.capacity(), a.size());
  EXPECT_EQ(a.memory_bytes(), 100000u * sizeof(int64_t));  // not the capacity
  a.reserve(1000000);
  EXPECT_EQ(a.memory_bytes(), 100000u * sizeof(int64_t));
  EXPECT_EQ(a[99999], 99999 * 3);
}

TEST(PodArray, AssignAppendSortAndRelease) {
  PodArray<int32_t> a;
  a.assign(5, 7);
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[4], 7);
  const int32_t more[] = {3, 1, 2};
  a.append(more, more + 3);
  std::sort(a.begin(), a.end());
  EXPECT_EQ(a[0], 1);
  EXPECT_EQ(a[7], 7);
  a.release();
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.memory_bytes(), 0u);
}

TEST(PodArray, CopyAndMove) {
  PodArray<char> a;
  for (char c : std::string("identity")) a.push_back(c);
  PodArray<char> b(a);
  a[0] = 'I';
  EXPECT_EQ(std::string(b.begin(), b.end()), "identity");
  PodArray<char> c(std::move(a));
  EXPECT_EQ(std::string(c.begin(), c.end()), "Identity");
  EXPECT_TRUE(a.empty());
  b = c;
  EXPECT_EQ(std::string(b.begin(), b.end()), "Identity");
}

TEST(PodArray, TruncateAndDiscardFrontKeepTheRest) {
  PodArray<int64_t> a;
  const int64_t n = 1 << 20;  // 8 MB: served by mmap, many whole pages
  for (int64_t i = 0; i < n; ++i) a.push_back(i);
  a.discard_front(n / 2);  // values before n / 2 are gone; the rest, and the array itself, are untouched
  ASSERT_EQ(a.size(), static_cast<std::size_t>(n));
  for (int64_t i = n / 2; i < n; ++i) ASSERT_EQ(a[i], i);
  a.discard_front(0);
  a.discard_front(2 * n);  // past the end: clamped to size()
  a.truncate(10);
  a.shrink_to_fit();
  EXPECT_EQ(a.size(), 10u);
  a.push_back(42);  // a discarded page takes a fresh one when written again
  EXPECT_EQ(a[10], 42);
  PodArray<int64_t> empty;
  empty.discard_front(5);  // nothing to discard
  EXPECT_TRUE(empty.empty());
}

struct Wide {
  int32_t a, b;
  int64_t c;
};

TEST(PodArray, ReinterpretCompactsIntoTheSameBlock) {
  PodArray<Wide> wide;
  for (int32_t i = 0; i < 5000; ++i) wide.push_back(Wide{i, i + 1, 0});
  // Compact into the front as 8-byte values, as the identity reader does.
  uint64_t* out = reinterpret_cast<uint64_t*>(wide.data());
  std::size_t n = 0;
  for (std::size_t i = 0; i < wide.size(); ++i) {
    const Wide w = wide[i];
    if (w.a % 2) continue;
    out[n++] = static_cast<uint64_t>(w.a) << 32 | static_cast<uint32_t>(w.b);
  }
  PodArray<uint64_t> narrow = wide.reinterpret_as<uint64_t>(n);
  EXPECT_TRUE(wide.empty());
  ASSERT_EQ(narrow.size(), 2500u);
  narrow.shrink_to_fit();
  EXPECT_EQ(narrow.capacity(), 2500u);
  EXPECT_EQ(narrow.memory_bytes(), 2500u * 8);
  for (std::size_t k = 0; k < narrow.size(); ++k) {
    ASSERT_EQ(narrow[k] >> 32, 2 * k);
    ASSERT_EQ(static_cast<uint32_t>(narrow[k]), 2 * k + 1);
  }
  narrow.push_back(42);
  EXPECT_EQ(narrow.back(), 42u);
}

}  // namespace
