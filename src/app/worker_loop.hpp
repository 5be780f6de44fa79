#pragma once
// app::WorkerLoop: one of the daemon's extra event loops ([server] workers > 1), on a
// thread of its own. It has what a loop needs to take client sessions and relay them by
// itself: a SubmissionServer listening on the same addresses as the main loop's (each
// socket with SO_REUSEPORT: the kernel spreads new connections over the loops), and its
// own Generation (selector with its pool, TLS context, authenticator, sink factory) built
// on its thread by the Daemon's build function. What is per daemon is shared, never
// copied: the session census (limits), metrics, the endpoints' health (SharedHealth) and
// the upstreams' pauses (SharedPauses), both in the Generation's selector.
//
// Everything here is called on the main loop's thread; what touches the worker's loop
// runs there, posted through its mailbox. reconfigure() waits for the worker (a build
// takes milliseconds), so when a reload returns every loop serves the new configuration.
// The worker never waits for the main loop: no deadlock.
#include <functional>
#include <memory>
#include <vector>

#include "portrelay/app/daemon.hpp"
#include "portrelay/net/loop_mailbox.hpp"
#include "portrelay/net/loop_thread.hpp"
#include "portrelay/server/session_census.hpp"
#include "portrelay/server/submission_server.hpp"

namespace portrelay {

class WorkerLoop {
 public:
  // Daemon::build on the worker's loop, with the main loop's selector's health table and
  // pauses.
  using Build = std::function<Daemon::Generation(std::shared_ptr<const config::Config>,
                                                 net::Loop& loop, Daemon::Shared)>;

  // `index` ≥ 1: the worker's slot in `census` (0 is the main loop).
  // `census` and `auth_failures` are the main loop's server's.
  WorkerLoop(std::size_t index, Build build, std::shared_ptr<server::SessionCensus> census,
             std::shared_ptr<server::AuthFailureTracker> auth_failures);
  ~WorkerLoop();  // stop()
  WorkerLoop(const WorkerLoop&) = delete;
  WorkerLoop& operator=(const WorkerLoop&) = delete;

  // Starts the thread, builds the generation and the server from `config` there and binds
  // `ports` (the main loop's, in config order) with SO_REUSEPORT. Throws what failed.
  void start(std::shared_ptr<const config::Config> config, const std::vector<std::uint16_t>& ports,
             Daemon::Shared shared);
  // A reload: builds a new generation from `config` on the worker's loop (its selector
  // sharing `shared`, the main loop's new selector's table and pauses), hands what else it
  // learned (SIZEs, daily counts) on from the previous selector, retires that one and gives
  // the server the new environment. Waits for it; throws what the build threw (the worker keeps the
  // old one).
  void reconfigure(std::shared_ptr<const config::Config> config, Daemon::Shared shared);
  // Stops accepting and lets the sessions finish within `grace`; then the selector stops,
  // and `done` runs on the worker's thread.
  void shutdown(config::Duration grace, std::function<void()> done);
  // Ends the thread (after shutdown: at once). Idempotent.
  void stop() { thread_.stop(); }

 private:
  std::size_t index_;
  Build build_;
  std::shared_ptr<server::SessionCensus> census_;
  std::shared_ptr<server::AuthFailureTracker> auth_failures_;
  net::LoopThread thread_;
  net::Loop* loop_ = nullptr;  // the worker's, while its thread runs
  // The worker loop's own; created on its thread, used by the main thread only to post.
  std::unique_ptr<net::LoopMailbox> mailbox_;
  std::shared_ptr<relay::RacingSelector> selector_;   // worker thread only
  std::unique_ptr<server::SubmissionServer> server_;  // worker thread only
  bool shutting_down_ = false;                        // worker thread only
};

}  // namespace portrelay
