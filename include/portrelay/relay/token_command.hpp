#pragma once
// One run of an `oauth_token_command`, on the event loop: uv_spawn with the command's
// standard output on a pipe and a timer for its deadline. Nothing waits in a system call:
// while the command runs, the loop serves every other session, probe and timer.
//
// The command runs in a session (and process group) of its own, so the deadline, or a run
// given up, kills what it started too (a shell script's `sleep`), not only the first
// process. A killed process is still reaped on the loop: no zombie stays behind.
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "portrelay/net/loop.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/net/uv_handle.hpp"

namespace portrelay::relay {

struct OAuthToken {
  std::string value;    // never logged
  std::string problem;  // why no token could be had; empty on success. Never the token.
};

class TokenCommand {
 public:
  using Done = std::function<void(OAuthToken token)>;

  // `command` is split on spaces (no shell; PATH lookup for a bare program name); its
  // standard input is /dev/null, standard error the daemon's.
  TokenCommand(net::Loop& loop, std::string command, std::chrono::milliseconds timeout);
  // A run not finished yet is given up: its process group is killed, `done` is not called.
  ~TokenCommand();
  TokenCommand(const TokenCommand&) = delete;
  TokenCommand& operator=(const TokenCommand&) = delete;

  // Starts the command. nullopt: it runs, and `done` is called once on a later loop turn
  // with the first line of its output, or why there is none (non-zero exit, a signal,
  // nothing printed, `timeout` passed). Otherwise it could not start, and this is why
  // (`done` is never called). `done` may not destroy this object (net::Loop::defer_delete).
  std::optional<OAuthToken> start(Done done);
  // Gives the run up now (its process group is killed; `done` is not called). The object
  // itself may then be freed later.
  void stop();

 private:
  struct Child;  // the uv_process_t; outlives this object until the process is reaped
  static void on_exit(uv_process_t* process, int64_t exit_status, int term_signal);
  void on_output(ssize_t size, const uv_buf_t* buffer);
  void finish_if_done();
  void finish(OAuthToken token);
  // Kills the process group (if it still runs) and stops listening to it.
  void abandon();
  OAuthToken problem(std::string text) const;

  net::Loop& loop_;
  std::string command_;
  std::string program_;
  std::chrono::milliseconds timeout_;
  Done done_;
  Child* child_ = nullptr;  // null before start, once reaped, or once abandoned
  int pid_ = 0;
  net::UvHandle<uv_pipe_t, TokenCommand> output_pipe_;
  net::Timer deadline_;
  std::string output_;
  char read_buffer_[4096];
  bool output_closed_ = false;
  bool exited_ = false;
  int64_t exit_status_ = 0;
  int term_signal_ = 0;
  bool finished_ = false;
};

}  // namespace portrelay::relay
