// Running out of file descriptors is this process's problem, not the upstream's: the
// client gets 451, the endpoint's health and upstream_up are untouched, and
// portrelay_local_errors_total{kind="connect"} counts it (issue: EMFILE was classified
// `unreachable`, cooled a healthy endpoint down and raised a false alert).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "relay_harness.hpp"
#include "support/fake_upstream.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;

// Takes every free file descriptor of this process, under a lowered soft limit, and gives
// everything back when it goes.
class DescriptorExhaustion {
 public:
  DescriptorExhaustion() {
    getrlimit(RLIMIT_NOFILE, &saved_);
    std::size_t open = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
      ++open;
    rlimit lowered = saved_;
    lowered.rlim_cur = open + 16;  // a few to take, so the loop below stays short
    setrlimit(RLIMIT_NOFILE, &lowered);
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) held_.push_back(fd);
    exhausted_ = errno == EMFILE;
  }
  ~DescriptorExhaustion() {
    for (int fd : held_) ::close(fd);
    setrlimit(RLIMIT_NOFILE, &saved_);
  }
  bool exhausted() const { return exhausted_; }

 private:
  rlimit saved_{};
  std::vector<int> held_;
  bool exhausted_ = false;
};

TEST(LocalResources, OutOfDescriptorsIsA451AndLeavesTheEndpointsHealthAlone) {
  FakeUpstream upstream;
  RelaySettings settings;
  // No pool: every message needs a new upstream socket.
  settings.relay_extra = "pool_max_per_endpoint = 0\n";
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);

  auto client = relay.client();
  ASSERT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code, 250);
  ASSERT_EQ(relay.metric("portrelay_upstream_up", {{"upstream", "a"}}), 1);
  // The first message's upstream connection is closed on both sides before the
  // descriptors are taken: a descriptor freed later would go to whoever asks first.
  ASSERT_TRUE(upstream.wait_for_idle(2s));
  std::this_thread::sleep_for(100ms);

  SmtpReply refused;
  {
    DescriptorExhaustion exhaustion;
    ASSERT_TRUE(exhaustion.exhausted());
    refused = client->command("MAIL FROM:<c@example.test>");
  }
  EXPECT_EQ(refused.code, 451) << refused.raw;
  EXPECT_NE(refused.raw.find("local_resources"), std::string::npos) << refused.raw;
  EXPECT_EQ(relay.metric("portrelay_local_errors_total", {{"kind", "connect"}}), 1);
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total", {{"upstream", "a"}}), 0);
  EXPECT_EQ(relay.metric("portrelay_upstream_up", {{"upstream", "a"}}), 1);

  // Descriptors are back: the same endpoint takes the next message at once.
  EXPECT_EQ(client->send_message("c@example.test", {"d@example.test"}, sample_message()).code, 250);
  EXPECT_EQ(upstream.transactions().size(), 2u);
}

}  // namespace
}  // namespace portrelay::test
