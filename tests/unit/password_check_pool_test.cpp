#include "portrelay/server/password_check_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "portrelay/net/dns_cache.hpp"

namespace portrelay {
namespace {

using namespace std::chrono_literals;

TEST(PasswordCheckPool, RunsChecksOffTheLoopAndAnswersOnIt) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_idle_t keep_alive;  // outlives the loop run that completes its uv_close
  {
    server::PasswordCheckPool pool(&loop, {1, 4});
    const auto loop_thread = std::this_thread::get_id();
    std::vector<bool> results;
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(pool.submit(
          [loop_thread, i]() {
            EXPECT_NE(std::this_thread::get_id(), loop_thread);
            return i % 2 == 0;
          },
          [&results, loop_thread](bool ok) {
            EXPECT_EQ(std::this_thread::get_id(), loop_thread);
            results.push_back(ok);
          }));
    }
    // The pool does not keep the loop alive (an idle daemon must be able to stop), so
    // something else must, as the listeners do in the daemon.
    uv_idle_init(&loop, &keep_alive);
    uv_idle_start(&keep_alive, [](uv_idle_t*) {});
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (results.size() < 4 && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(1ms);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&keep_alive), nullptr);
    EXPECT_EQ(results, (std::vector<bool>{true, false, true, false}));
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(PasswordCheckPool, RefusesAtOnceWhenTheQueueIsFull) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  // Declared before the pool: its destructor joins a thread that may still be in `slow`.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> started{0};
  {
    server::PasswordCheckPool pool(&loop, {1, 2});
    auto slow = [&started, released]() {
      ++started;
      released.wait();
      return false;
    };
    ASSERT_TRUE(pool.submit(slow, [](bool) {}));
    while (started == 0) std::this_thread::sleep_for(1ms);  // the one thread is busy
    EXPECT_TRUE(pool.submit(slow, [](bool) {}));
    EXPECT_TRUE(pool.submit(slow, [](bool) {}));
    EXPECT_EQ(pool.queued(), 2u);
    const auto before = std::chrono::steady_clock::now();
    EXPECT_FALSE(pool.submit(slow, [](bool) { ADD_FAILURE() << "a refused check was answered"; }));
    EXPECT_LT(std::chrono::steady_clock::now() - before, 100ms);
    release.set_value();
  }  // joins the thread; queued checks are dropped
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

sockaddr_storage address(std::uint8_t last) {
  sockaddr_storage storage{};
  auto* in = reinterpret_cast<sockaddr_in*>(&storage);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(0x7f000000u | last);
  return storage;
}

TEST(DnsCache, AnswersExpireAfterTheirLifetime) {
  net::DnsCache cache(60s, 8);
  const auto t0 = net::DnsCache::Clock::time_point{} + 1h;
  EXPECT_FALSE(cache.find("smtp.example.test", 587, t0));
  cache.store("smtp.example.test", 587, {address(1), address(2)}, t0);
  auto hit = cache.find("smtp.example.test", 587, t0 + 59s);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->size(), 2u);
  EXPECT_FALSE(cache.find("smtp.example.test", 465, t0)) << "the port is part of the key";
  EXPECT_FALSE(cache.find("smtp.example.test", 587, t0 + 60s));
  EXPECT_EQ(cache.size(), 0u);
  cache.store("empty.example.test", 25, {}, t0);
  EXPECT_EQ(cache.size(), 0u) << "nothing to remember from an empty answer";
}

TEST(DnsCache, KeepsAtMostMaxEntries) {
  net::DnsCache cache(60s, 3);
  const auto t0 = net::DnsCache::Clock::time_point{} + 1h;
  for (int i = 0; i < 100; ++i)
    cache.store("host" + std::to_string(i), 25, {address(1)}, t0 + std::chrono::seconds(i % 7));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_TRUE(cache.find("host99", 25, t0 + 10s)) << "the newest entry stays";
}

}  // namespace
}  // namespace portrelay
