// net::PipeListener and net::PipeStream (the control socket's transport) on a private
// loop against a plain POSIX client: the socket is its owner's alone from the moment it
// exists, a request and its answer go through, a path in use is an error, and a stream
// destroyed with a write the peer never read leaks nothing (the loop closes with 0).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "portrelay/net/loop.hpp"
#include "portrelay/net/pipe_listener.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::net {
namespace {

using namespace std::chrono_literals;
using portrelay::test::TempDir;

class PrivateLoop {
 public:
  PrivateLoop() {
    uv_loop_init(&uv_);
    loop_.emplace(&uv_);
  }
  ~PrivateLoop() {
    loop_.reset();
    uv_run(&uv_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&uv_), 0) << "a handle was left open";
  }
  Loop& loop() { return *loop_; }
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > until) return false;
      uv_run(&uv_, UV_RUN_NOWAIT);
      ::usleep(1000);
    }
    return true;
  }

 private:
  uv_loop_t uv_;
  std::optional<Loop> loop_;
};

// A blocking client socket connected to `path`; -1 on failure.
int connect_to(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// What the client can read now without blocking ("" if nothing), and whether the end came.
std::string read_available(int fd, bool& ended) {
  std::string out;
  char buffer[4096];
  pollfd ready{fd, POLLIN, 0};
  while (::poll(&ready, 1, 0) == 1) {
    const ssize_t got = ::recv(fd, buffer, sizeof(buffer), 0);
    if (got <= 0) {
      ended = true;
      break;
    }
    out.append(buffer, static_cast<std::size_t>(got));
  }
  return out;
}

TEST(PipeStream, OwnerOnlySocketCarriesARequestAndItsAnswerThenCloses) {
  TempDir dir("portrelay-pipe");
  const std::string path = dir.file("control");
  PrivateLoop loop;
  std::unique_ptr<PipeStream> server_side;
  std::string received;
  PipeListener listener(loop.loop().uv(), [&](std::unique_ptr<PipeStream> stream) {
    server_side = std::move(stream);
    server_side->start_reading([&](std::string_view data, int status) {
      if (status < 0) return;
      received.append(data);
      if (received.find('\n') == std::string::npos) return;
      server_side->stop_reading();
      // Ends the stream from inside its own write callback, as the control server does.
      server_side->on_drained([&]() { loop.loop().defer_delete(std::move(server_side)); });
      EXPECT_TRUE(server_side->write("ok pong\n"));
    });
  });
  ASSERT_EQ(listener.listen_owner_only(path, 4), 0);
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 0077, 0u) << "group or others may connect";
  EXPECT_EQ(info.st_mode & 0700, 0700u);

  const int client = connect_to(path);
  ASSERT_GE(client, 0);
  ASSERT_EQ(::send(client, "ping\n", 5, MSG_NOSIGNAL), 5);
  std::string answer;
  bool ended = false;
  EXPECT_TRUE(loop.run_until([&]() {
    answer += read_available(client, ended);
    return ended;
  })) << "the stream was not closed after its answer";
  EXPECT_EQ(received, "ping\n");
  EXPECT_EQ(answer, "ok pong\n");
  EXPECT_EQ(server_side, nullptr);
  ::close(client);

  // The path is taken now: a second listener is told so instead of replacing it.
  PipeListener second(loop.loop().uv(), [](std::unique_ptr<PipeStream>) {});
  EXPECT_EQ(second.listen_owner_only(path, 4), UV_EADDRINUSE);
}

TEST(PipeStream, DestroyedWithAnUnreadWritePendingLeaksNothing) {
  TempDir dir("portrelay-pipe");
  const std::string path = dir.file("control");
  PrivateLoop loop;
  std::unique_ptr<PipeStream> accepted;
  PipeListener listener(loop.loop().uv(),
                        [&](std::unique_ptr<PipeStream> stream) { accepted = std::move(stream); });
  ASSERT_EQ(listener.listen_owner_only(path, 4), 0);
  const int client = connect_to(path);  // never reads
  ASSERT_GE(client, 0);
  ASSERT_TRUE(loop.run_until([&]() { return accepted != nullptr; }));
  bool drained = false;
  accepted->on_drained([&]() { drained = true; });
  // More than the socket buffers hold: the write stays queued in libuv.
  ASSERT_TRUE(accepted->write(std::string(8 * 1024 * 1024, 'x')));
  loop.run_until([]() { return false; }, 50ms);
  EXPECT_FALSE(drained);
  accepted.reset();  // the write request is freed by its cancelled callback
  listener.close();
  ::close(client);
  // ~PrivateLoop: runs the loop dry and expects uv_loop_close() == 0.
}

}  // namespace
}  // namespace portrelay::net
