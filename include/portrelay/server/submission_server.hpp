#pragma once
// The local submission service: listeners, access control, the set of live sessions,
// and graceful shutdown (stop accepting, let transactions finish, bounded wait).
// Configuration comes as shared immutable snapshots; reconfigure() installs a new one for
// the clients that connect from then on.
#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/net/tcp_listener.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/server/auth_failure_tracker.hpp"
#include "portrelay/server/session_census.hpp"
#include "portrelay/server/submission_session.hpp"

namespace portrelay::server {

class SubmissionServer {
 public:
  SubmissionServer(std::shared_ptr<const config::ServerConfig> config,
                   SessionEnvironment environment);
  ~SubmissionServer();

  // A reload: new sessions get `config` (access list, limits, hostname, AUTH requirements)
  // and `environment` (TLS, users, timeouts, message sink); live sessions keep what they
  // started with. The listening addresses are not changed: the caller refuses a reload
  // that changes them.
  void reconfigure(std::shared_ptr<const config::ServerConfig> config,
                   SessionEnvironment environment);

  // With several loops ([server] workers): this server is loop `loop` of the census shared
  // by all of them, so the session limits count every loop's sessions and session ids are
  // unique in the daemon; `auth_failures` (null: its own) is the first loop's tracker, so
  // AUTH delays are per daemon too. Before start().
  void share_census(std::shared_ptr<SessionCensus> census, std::size_t loop,
                    std::shared_ptr<AuthFailureTracker> auth_failures = nullptr);
  const std::shared_ptr<AuthFailureTracker>& auth_failure_tracker() const { return auth_failures_; }

  // Binds every listener. Throws std::runtime_error naming the address on failure.
  // `reuse_port`: SO_REUSEPORT, for several loops on the same addresses. `ports`, when not
  // empty, replaces the configured ports in config order (a worker loop binds the ports
  // the first loop got, also where the configuration says port 0).
  void start(bool reuse_port = false, const std::vector<std::uint16_t>& ports = {});
  // Ports actually bound, in config order (plain listeners, then implicit TLS).
  std::vector<std::uint16_t> bound_ports() const;
  // Stops accepting; sessions finish their transaction; after `grace` the rest are
  // closed. `done` runs when no session is left.
  void shutdown(config::Duration grace, std::function<void()> done);
  std::size_t session_count() const { return sessions_.size(); }

 private:
  void accept(std::unique_ptr<net::TcpStream> stream, const config::ListenAddress& listener,
              bool implicit_tls);
  // Sets the fields the server owns and freezes the snapshot.
  std::shared_ptr<const SessionEnvironment> freeze(SessionEnvironment environment);
  void apply(std::shared_ptr<const config::ServerConfig> config, SessionEnvironment environment);
  // 421 4.7.0 to a new client that gets no session; `reason` is the metric label.
  void refuse(std::unique_ptr<net::TcpStream> stream, const char* reason, const std::string& text);
  // Makes room when a limit is reached by closing the session that has been without
  // progress for longest, if it has neither authenticated nor sent MAIL and has been idle
  // for a while: any session for max_sessions and max_sessions_before_mail, one from
  // `only_from` for max_sessions_per_address. False if there is none to close.
  bool shed_one_idle_session(const std::string* only_from = nullptr);
  void session_finished(SubmissionSession* session);
  // Tells the census this loop's live and before-MAIL counts (several loops only).
  void publish_counts();
  void check_drained();

  net::Loop& loop_;
  metrics::Metrics& metrics_;
  std::shared_ptr<const config::ServerConfig> config_;
  // Outlives reloads: it is memory, not configuration. Shared by every loop's server.
  std::shared_ptr<AuthFailureTracker> auth_failures_;
  std::shared_ptr<const SessionEnvironment> environment_;
  smtp::ServerPolicy policy_;
  std::vector<std::unique_ptr<net::TcpListener>> listeners_;
  std::map<SubmissionSession*, std::unique_ptr<SubmissionSession>> sessions_;
  std::shared_ptr<SessionCensus> census_ = std::make_shared<SessionCensus>(1);
  std::size_t census_slot_ = 0;
  net::Timer grace_timer_;
  std::function<void()> on_drained_;
  bool stopping_ = false;
};

}  // namespace portrelay::server
