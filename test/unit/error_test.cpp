#include "core/error.h"
#include "core/interrupt.h"

#include <gtest/gtest.h>

TEST(Error, CarriesSqlstateDetailAndHint) {
  cdp::Error e(cdp::sqlstate::kInvalidParameterValue, "bins must be between 1 and 100", "got 0", "use 5");
  EXPECT_STREQ(e.sqlstate(), "22023");
  EXPECT_STREQ(e.what(), "bins must be between 1 and 100");
  EXPECT_EQ(e.detail(), "got 0");
  EXPECT_EQ(e.hint(), "use 5");
}

TEST(MemoryBudget, FailsPastTheLimitWithProgramLimitExceeded) {
  cdp::MemoryBudget budget(1024, "work_mem");
  budget.charge(1000);
  try {
    budget.charge(100);
    FAIL() << "expected an error";
  } catch (const cdp::Error& e) {
    EXPECT_STREQ(e.sqlstate(), "54000");
  }
}

TEST(Interrupts, PollsEvery4096Ticks) {
  int polls = 0;
  cdp::Interrupts interrupts([&] { ++polls; });
  for (int i = 0; i < 4096 * 3; ++i) interrupts.tick();
  EXPECT_EQ(polls, 3);
}
