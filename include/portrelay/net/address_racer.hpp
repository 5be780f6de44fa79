#pragma once
// net::AddressRacer: TCP to one host over several addresses, RFC 8305 section 5 style.
//
// The first address is tried at once, the next one `stagger` later, or at once when an
// attempt fails; the first connect to succeed wins and the others are cancelled. One
// `deadline` bounds the whole race. The callback runs exactly once, on the loop, never
// from inside start(); destroying the racer cancels everything without calling back.
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "portrelay/net/loop.hpp"
#include "portrelay/net/tcp_stream.hpp"
#include "portrelay/net/timer.hpp"

namespace portrelay::net {

class AddressRacer {
 public:
  struct Result {
    std::unique_ptr<TcpStream> stream;  // the winner; null if every address failed
    std::string address;                // winner's "ip:port", or the last failed one
    int error = 0;  // libuv error of the last failed attempt, UV_ETIMEDOUT at the deadline
  };
  using Callback = std::function<void(Result result)>;

  AddressRacer(Loop& loop, std::vector<sockaddr_storage> addresses,
               std::chrono::milliseconds stagger, std::chrono::milliseconds deadline);
  void start(Callback callback);

 private:
  struct Attempt {
    std::unique_ptr<TcpStream> stream;
    std::string target;
  };
  void launch_next();
  void on_connected(TcpStream* stream, int status);
  void finish(Result result);

  Loop& loop_;
  std::vector<sockaddr_storage> addresses_;
  std::chrono::milliseconds stagger_;
  std::chrono::milliseconds deadline_;
  std::size_t next_ = 0;
  std::vector<Attempt> running_;
  Timer stagger_timer_;
  Timer deadline_timer_;
  Result last_failure_;
  Callback callback_;
};

}  // namespace portrelay::net
