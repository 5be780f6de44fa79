// The Committer's contract (committer.hpp) under injected faults: a store job reports ok
// only once the message is durable in queue/; on a fault its completion reports the
// failure (the client then gets 451, never 250: Spool::accept, QueueingSink) and no file
// of it is left in tmp/ or queue/.
#include "portrelay/spool/committer.hpp"

#include <gtest/gtest.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "portrelay/net/loop.hpp"
#include "support/fault_env.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::spool {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using test::FaultEnv;
using Op = FaultEnv::Op;

std::size_t files_in(const std::string& dir) {
  std::size_t count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) count += entry.is_regular_file();
  return count;
}

std::unique_ptr<relay::MessageBody> body_of(std::string_view content) {
  auto body = std::make_unique<relay::MessageBody>();
  EXPECT_TRUE(body->append(content));
  return body;
}

std::string header_for(const std::string& id, std::size_t size) {
  Envelope envelope;
  envelope.id = id;
  envelope.arrival_ms = 1700000000000;
  envelope.sender = "a@x.test";
  envelope.recipients = {"b@x.test"};
  return encode_header(envelope, size);
}

// A libuv loop closed after everything built on it (a base is destroyed after the members).
struct PrivateUvLoop {
  PrivateUvLoop() { uv_loop_init(&uv_); }
  ~PrivateUvLoop() {
    uv_run(&uv_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&uv_), 0) << "a handle was left open";
  }
  uv_loop_t uv_;
};

class CommitterFaults : public ::testing::Test, protected PrivateUvLoop {
 protected:
  // Stores one message and runs the loop until its completion (at most 5 s).
  std::optional<Status> store(const std::string& id) {
    const std::string content = "Subject: x\r\n\r\nbody\r\n";
    std::optional<Status> result;
    const auto loop_thread = std::this_thread::get_id();
    committer_->store(id, header_for(id, content.size()), body_of(content),
                      [&result, loop_thread](Status status) {
                        EXPECT_EQ(std::this_thread::get_id(), loop_thread);
                        result = std::move(status);
                      });
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!result && std::chrono::steady_clock::now() < deadline) {
      uv_run(&uv_, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(1ms);
    }
    return result;
  }

  net::Loop loop_{&uv_};
  test::TempDir dir_{"portrelay-committer"};
  std::string root_ = dir_.path() + "/spool";
  FaultEnv env_;
  SpoolDirectory directory_{root_, true, env_};
  std::unique_ptr<Committer> committer_ = std::make_unique<Committer>(loop_, directory_, nullptr);
};

TEST_F(CommitterFaults, EachFaultIsReportedAndNothingIsAcknowledgedOrLeft) {
  struct Case {
    const char* name;
    void (*arm)(FaultEnv&);
  };
  const Case cases[] = {
      {"ENOSPC on write", [](FaultEnv& env) { env.fail(Op::Write, ENOSPC); }},
      {"short write then ENOSPC",
       [](FaultEnv& env) {
         env.short_write(3);
         env.fail(Op::Write, ENOSPC, "", 2);
       }},
      {"EIO on the data sync", [](FaultEnv& env) { env.fail(Op::SyncData, EIO); }},
      {"rename refused", [](FaultEnv& env) { env.fail(Op::Rename, EIO); }},
      {"EIO on fsync of queue/", [](FaultEnv& env) { env.fail(Op::Sync, EIO); }},
      {"EMFILE on open", [](FaultEnv& env) { env.fail(Op::Open, EMFILE); }},
  };
  int n = 0;
  for (const auto& c : cases) {
    c.arm(env_);
    const std::string id = "F" + std::to_string(++n);
    auto result = store(id);
    ASSERT_TRUE(result.has_value()) << c.name << ": no completion";
    EXPECT_FALSE(*result) << c.name << ": acknowledged";
    if (!*result) {
      EXPECT_NE(result->code(), ErrorCode::Unspecified) << c.name;
    }
    EXPECT_EQ(env_.pending_faults(), 0u) << c.name << ": fault not reached";
    EXPECT_EQ(files_in(root_ + "/tmp"), 0u) << c.name;
    EXPECT_EQ(files_in(root_ + "/queue"), 0u) << c.name;
    EXPECT_TRUE(directory_.scan().messages.empty()) << c.name;
  }
  // And the disk back: the next message is stored and acknowledged.
  auto result = store("OK1");
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(*result);
  EXPECT_EQ(files_in(root_ + "/queue"), 1u);
  EXPECT_TRUE(directory_.load("OK1"));
}

TEST_F(CommitterFaults, AfterStopAJobFailsAsShuttingDown) {
  committer_->stop();
  auto result = store("LATE");
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->code(), ErrorCode::ShuttingDown);
  EXPECT_EQ(files_in(root_ + "/queue"), 0u);
}

}  // namespace
}  // namespace portrelay::spool
