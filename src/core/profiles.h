// Profiles (PostgreSQL-free): RFM scores of every person of a snapshot in one call, without the
// memory of one keyed copy per value. The rule is cdp::rfm::score_tie_groups (docs/rfm_scoring.md),
// the same as the cdp.rfm_score window function; persons without a value (SQL NULL) get score 0.
#pragma once
#include "core/interrupt.h"
#include "core/rfm_scoring.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cdp::profiles {

// Scores the rows `present` selects: sorts their indices (4 bytes per row) by less(a, b) over the
// caller's own arrays, groups equal values and writes each row's score (1..bins) into scores[row];
// rows not present keep scores[row] = 0. Less must be a strict weak order on row indices.
template <typename Present, typename Less>
void score_rows(std::size_t rows, int bins, Present present, Less less, std::uint8_t* scores,
                Interrupts& interrupts) {
  cdp::rfm::check_bins(bins);
  std::vector<std::uint32_t> order;
  order.reserve(rows);
  for (std::size_t row = 0; row < rows; ++row) {
    scores[row] = 0;
    if (present(row)) order.push_back(static_cast<std::uint32_t>(row));
  }
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    interrupts.tick();
    return less(a, b);
  });
  std::vector<std::size_t> group_sizes;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i == 0 || less(order[i - 1], order[i])) group_sizes.push_back(0);
    ++group_sizes.back();
  }
  const std::vector<int> group_scores = cdp::rfm::score_tie_groups(group_sizes, bins);
  std::size_t at = 0;
  for (std::size_t g = 0; g < group_sizes.size(); ++g)
    for (std::size_t k = 0; k < group_sizes[g]; ++k) scores[order[at++]] = static_cast<std::uint8_t>(group_scores[g]);
}

// Bytes score_rows needs besides the caller's arrays and scores (for a memory budget).
inline std::size_t score_rows_memory(std::size_t rows) { return rows * sizeof(std::uint32_t); }

}  // namespace cdp::profiles
