#include "core/profiles.h"

#include "core/error.h"
#include "core/rfm_scoring.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace {

cdp::Interrupts no_interrupts() {
  return cdp::Interrupts([] {});
}

// score_rows must give exactly what the window function's rule (score_values) gives over the rows
// that have a value, and 0 to the others.
TEST(ProfilesScoreRows, MatchesScoreValuesWithTiesAndMissingValues) {
  std::mt19937 random(7);
  for (int bins : {1, 3, 5, 10}) {
    for (std::size_t rows : {0u, 1u, 2u, 7u, 100u, 1000u}) {
      std::vector<long> values(rows);
      std::vector<bool> present(rows);
      for (std::size_t i = 0; i < rows; ++i) {
        values[i] = static_cast<long>(random() % 20);  // many ties
        present[i] = random() % 4 != 0;
      }
      std::vector<long> kept;
      for (std::size_t i = 0; i < rows; ++i)
        if (present[i]) kept.push_back(values[i]);
      const std::vector<int> expected = cdp::rfm::score_values(kept, bins);
      std::vector<std::uint8_t> scores(rows, 99);
      cdp::Interrupts interrupts = no_interrupts();
      cdp::profiles::score_rows(
          rows, bins, [&](std::size_t i) { return present[i]; },
          [&](std::uint32_t a, std::uint32_t b) { return values[a] < values[b]; }, scores.data(), interrupts);
      std::size_t k = 0;
      for (std::size_t i = 0; i < rows; ++i) {
        if (present[i])
          EXPECT_EQ(scores[i], expected[k++]) << "bins " << bins << " rows " << rows << " row " << i;
        else
          EXPECT_EQ(scores[i], 0) << "row without a value keeps score 0";
      }
    }
  }
}

TEST(ProfilesScoreRows, EqualValuesShareAScore) {
  const std::vector<int> values = {5, 5, 5, 1, 9};
  std::vector<std::uint8_t> scores(values.size());
  cdp::Interrupts interrupts = no_interrupts();
  cdp::profiles::score_rows(
      values.size(), 5, [](std::size_t) { return true; },
      [&](std::uint32_t a, std::uint32_t b) { return values[a] < values[b]; }, scores.data(), interrupts);
  EXPECT_EQ(scores[0], scores[1]);
  EXPECT_EQ(scores[1], scores[2]);
  EXPECT_LT(scores[3], scores[0]);
  EXPECT_GT(scores[4], scores[0]);
}

TEST(ProfilesScoreRows, RejectsBadBins) {
  std::vector<std::uint8_t> scores(1);
  cdp::Interrupts interrupts = no_interrupts();
  EXPECT_THROW(cdp::profiles::score_rows(
                   1, 0, [](std::size_t) { return true; }, [](std::uint32_t, std::uint32_t) { return false; },
                   scores.data(), interrupts),
               cdp::Error);
}

}  // namespace
