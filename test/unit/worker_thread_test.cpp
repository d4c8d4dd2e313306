#include "core/phone_worker.h"
#include "core/worker_thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <pthread.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using cdp::WorkerThread;

TEST(WorkerThread, RunsTasksInOrderOffTheOwnerThread) {
  std::vector<int> seen;
  std::thread::id owner = std::this_thread::get_id(), ran_on;
  {
    WorkerThread worker;
    ASSERT_TRUE(worker.threaded());
    for (int i = 0; i < 1000; ++i)
      worker.post([&seen, &ran_on, i] {
        seen.push_back(i);
        ran_on = std::this_thread::get_id();
      });
    worker.finish(nullptr);
  }
  ASSERT_EQ(seen.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_NE(ran_on, owner);
}

TEST(WorkerThread, WorkerHasEverySignalBlockedAndOwnerMaskIsRestored) {
  sigset_t before, after, in_worker;
  pthread_sigmask(SIG_SETMASK, nullptr, &before);
  {
    WorkerThread worker;
    worker.post([&in_worker] { pthread_sigmask(SIG_SETMASK, nullptr, &in_worker); });
    worker.finish(nullptr);
  }
  pthread_sigmask(SIG_SETMASK, nullptr, &after);
  for (int s : {SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGQUIT, SIGHUP}) {
    EXPECT_EQ(sigismember(&in_worker, s), 1) << s;
    EXPECT_EQ(sigismember(&after, s), sigismember(&before, s)) << s;
  }
}

TEST(WorkerThread, TaskExceptionIsRethrownByFinishAndLaterTasksAreDropped) {
  std::atomic<int> ran{0};
  WorkerThread worker;
  worker.post([&] { ++ran; });
  worker.post([] { throw std::runtime_error("boom"); });
  worker.post([&] { ++ran; });
  try {
    worker.finish(nullptr);
    FAIL() << "finish did not rethrow";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
  EXPECT_EQ(ran.load(), 1);
  worker.post([&] { ++ran; });  // after the failure: dropped
  EXPECT_EQ(ran.load(), 1);
}

TEST(WorkerThread, PollIsCalledWhileWaitingAndMayAbandonTheWait) {
  std::atomic<bool> release{false};
  std::atomic<bool> saw_stop{false};
  int polls = 0;
  {
    WorkerThread worker;
    worker.post([&] {
      // A long task that notices the stop request.
      while (!release.load() && !worker.stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      saw_stop = worker.stop_requested();
    });
    worker.post([] { ADD_FAILURE() << "queued task ran after stop"; });
    EXPECT_THROW(worker.finish([&] {
                   if (++polls == 3) throw std::runtime_error("cancelled");
                 }, std::chrono::milliseconds(1)),
                 std::runtime_error);
    // The owner left finish by the exception; the destructor stops and joins the worker.
  }
  EXPECT_EQ(polls, 3);
  EXPECT_TRUE(saw_stop.load());
}

TEST(WorkerThread, DestructorWithoutFinishStopsAndJoins) {
  std::atomic<int> ran{0};
  {
    WorkerThread worker;
    for (int i = 0; i < 100; ++i)
      worker.post([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ++ran;
      });
  }  // must not terminate (joinable std::thread) nor wait for all 100
  EXPECT_LE(ran.load(), 100);
}

TEST(WorkerThread, StopIsIdempotentAndFinishAfterFinishIsHarmless) {
  WorkerThread worker;
  int n = 0;
  worker.post([&] { ++n; });
  worker.finish(nullptr);
  worker.finish(nullptr);
  worker.stop();
  worker.stop();
  EXPECT_EQ(n, 1);
}

using cdp::identity::Outcome;
using cdp::identity::PhoneMemo;
using cdp::identity::PhoneWorker;

// The worker's result for every spelling equals PhoneMemo::normalise's on the owner, in order, across
// batches (a small batch size makes many hand-overs), including repeats, junk and invalid numbers.
TEST(PhoneWorker, EqualsPhoneMemoInOrder) {
  std::vector<std::string> spellings = {"020 7946 0958", "+44 20 7946 0958", "(020) 7946-0958", "0044 20 7946 0958",
                                        "n/a", "-", "0000000000", "1234567890", "+1 650 253 0000", "650-253-0000",
                                        "  07700 900123 ", "+44 7700 900123 ext. 12", "tel:+44-20-7946-0958",
                                        "１２３", "0", "+999 123", std::string(300, '7'),
                                        "020 7946" + std::string(400, ' ') + "0958"};
  for (int i = 0; i < 3000; ++i) spellings.push_back("07700 9" + std::to_string(10000 + i * 7));
  for (const std::string region : {"GB", "US"}) {
    PhoneMemo memo(region);
    PhoneWorker worker(region, 7);
    for (const std::string& s : spellings) worker.add(s);
    EXPECT_GT(worker.memory_bytes(), 0u);
    worker.finish(nullptr);
    ASSERT_EQ(worker.count(), static_cast<int32_t>(spellings.size()));
    std::string expected;
    for (std::size_t i = 0; i < spellings.size(); ++i) {
      const Outcome outcome = memo.normalise(spellings[i], expected);
      ASSERT_EQ(worker.outcome(static_cast<int32_t>(i)), outcome) << spellings[i];
      ASSERT_EQ(worker.value(static_cast<int32_t>(i)), expected) << spellings[i];
    }
    // After finish the owner may use the worker's memo itself.
    std::string out;
    EXPECT_EQ(worker.memo().normalise("020 7946 0958", out), memo.normalise("020 7946 0958", expected));
    EXPECT_EQ(out, expected);
  }
}

// With many spellings still queued when the reader finishes, the owner normalises batches from the back
// while the worker goes on from the front; every result is still PhoneMemo's, in add order.
TEST(PhoneWorker, OwnerSharesTheQueuedBatches) {
  std::vector<std::string> spellings;
  for (int i = 0; i < 20000; ++i)
    spellings.push_back(i % 3 ? "07700 9" + std::to_string(10000 + i) : "+44 20 7946 " + std::to_string(1000 + i));
  PhoneMemo memo("GB");
  PhoneWorker worker("GB", 64);
  for (const std::string& s : spellings) worker.add(s);
  int polls = 0;
  worker.finish([&polls] { ++polls; });
  EXPECT_GT(worker.batches_by_owner(), 0);  // 20,000 parses take the worker far longer than the adds
  EXPECT_GT(polls, 0);
  std::string expected;
  for (std::size_t i = 0; i < spellings.size(); ++i) {
    const Outcome outcome = memo.normalise(spellings[i], expected);
    ASSERT_EQ(worker.outcome(static_cast<int32_t>(i)), outcome) << spellings[i];
    ASSERT_EQ(worker.value(static_cast<int32_t>(i)), expected) << spellings[i];
  }
}

TEST(PhoneWorker, DestroyedWhileBusyStopsCleanly) {
  for (int round = 0; round < 5; ++round) {
    PhoneWorker worker("GB", 16);
    for (int i = 0; i < 20000; ++i) worker.add("07700 9" + std::to_string(10000 + i));
  }  // no finish: destructor stops and joins
}

}  // namespace
