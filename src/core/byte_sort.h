// Sorting indexes by byte strings (bytewise, unsigned; a prefix before the longer string), as the C
// collation orders text: the order in which rows are written so b-tree builds and inserts see key order.
// Each string is read as big-endian 8-byte chunks, so most comparisons are one integer compare in a
// flat array instead of chasing the strings; only groups with equal chunks read the next 8 bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace cdp {

namespace byte_sort_detail {
struct Item {
  uint64_t chunk;  // bytes [depth, depth + 8) of the string, big-endian, zero-padded
  uint32_t tail;   // how many of those 8 bytes exist (0..8): decides between a prefix and its zero-padded extension
  int32_t index;
};
inline void load(Item& item, std::string_view s, std::size_t depth) {
  const std::size_t n = s.size() > depth ? std::min<std::size_t>(s.size() - depth, 8) : 0;
  unsigned char buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (n) std::memcpy(buf, s.data() + depth, n);
  uint64_t v;
  std::memcpy(&v, buf, 8);
  item.chunk = __builtin_bswap64(v);  // little-endian hosts: the first byte becomes the most significant
  item.tail = static_cast<uint32_t>(n);
}
inline bool less(const Item& a, const Item& b) { return a.chunk != b.chunk ? a.chunk < b.chunk : a.tail < b.tail; }
inline bool same(const Item& a, const Item& b) { return a.chunk == b.chunk && a.tail == b.tail; }

// Sorts items[begin, end), whose chunks are loaded at depth.
template <class Bytes>
void sort_range(std::vector<Item>& items, std::size_t begin, std::size_t end, std::size_t depth, const Bytes& bytes) {
  while (end - begin > 1) {
    bool all_same = true;
    for (std::size_t i = begin + 1; i < end && all_same; ++i) all_same = same(items[i], items[begin]);
    if (!all_same) break;
    if (items[begin].tail < 8) return;  // equal strings
    depth += 8;  // a prefix shared by the whole range: look further without sorting
    for (std::size_t i = begin; i < end; ++i) load(items[i], bytes(items[i].index), depth);
  }
  if (end - begin < 2) return;
  std::sort(items.begin() + begin, items.begin() + end, less);
  for (std::size_t i = begin; i < end;) {
    std::size_t j = i + 1;
    while (j < end && same(items[i], items[j])) ++j;
    if (j - i > 1 && items[i].tail == 8) {  // equal so far and all go on: decided by the next chunk
      for (std::size_t k = i; k < j; ++k) load(items[k], bytes(items[k].index), depth + 8);
      sort_range(items, i, j, depth + 8, bytes);
    }
    i = j;
  }
}
}  // namespace byte_sort_detail

// Sorts indexes by bytes(index) (a std::string_view), bytewise ascending. Equal strings end up adjacent
// in unspecified order.
template <class Bytes>
void sort_by_bytes(std::vector<int32_t>& indexes, const Bytes& bytes) {
  using byte_sort_detail::Item;
  std::vector<Item> items(indexes.size());
  for (std::size_t i = 0; i < indexes.size(); ++i) {
    items[i].index = indexes[i];
    byte_sort_detail::load(items[i], bytes(indexes[i]), 0);
  }
  byte_sort_detail::sort_range(items, 0, items.size(), 0, bytes);
  for (std::size_t i = 0; i < items.size(); ++i) indexes[i] = items[i].index;
}

}  // namespace cdp
