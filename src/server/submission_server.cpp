#include "portrelay/server/submission_server.hpp"

#include <stdexcept>

#include "portrelay/base/log.hpp"

namespace portrelay::server {

SubmissionServer::SubmissionServer(std::shared_ptr<const config::ServerConfig> config,
                                   SessionEnvironment environment)
    : loop_(*environment.loop),
      metrics_(*environment.metrics),
      auth_failures_(std::make_shared<AuthFailureTracker>(
          AuthFailureTracker::Limits{config->auth_failure_delay})),
      grace_timer_(loop_.uv()) {
  apply(std::move(config), std::move(environment));
}

std::shared_ptr<const SessionEnvironment> SubmissionServer::freeze(SessionEnvironment environment) {
  environment.auth_failures = auth_failures_.get();
  environment.on_engaged = [this]() { publish_counts(); };
  return std::make_shared<const SessionEnvironment>(std::move(environment));
}

void SubmissionServer::apply(std::shared_ptr<const config::ServerConfig> config,
                             SessionEnvironment environment) {
  config_ = std::move(config);
  environment_ = freeze(std::move(environment));
  auth_failures_->set_base_delay(config_->auth_failure_delay);
  smtp::ServerPolicy policy;
  policy.hostname = config_->hostname;
  policy.max_auth_failures = config_->max_auth_failures;
  policy.max_message_size = config_->max_message_size;
  policy.max_recipients = config_->max_recipients;
  policy.starttls_offered = environment_->tls_context != nullptr;
  policy.auth_offered = environment_->authenticator != nullptr;
  // A bare "root" is taken only where the envelope policy maps it at RCPT ([aliases], or
  // 550 5.1.1): without it the name would reach the provider unqualified.
  policy.bare_local_parts = environment_->envelope_policy != nullptr;
  policy_ = policy;
}

void SubmissionServer::reconfigure(std::shared_ptr<const config::ServerConfig> config,
                                   SessionEnvironment environment) {
  apply(std::move(config), std::move(environment));
}

SubmissionServer::~SubmissionServer() = default;

void SubmissionServer::share_census(std::shared_ptr<SessionCensus> census, std::size_t loop,
                                    std::shared_ptr<AuthFailureTracker> auth_failures) {
  census_ = std::move(census);
  census_slot_ = loop;
  if (!auth_failures) return;
  auth_failures_ = std::move(auth_failures);
  SessionEnvironment environment = *environment_;
  environment_ = freeze(std::move(environment));
}

void SubmissionServer::start(bool reuse_port, const std::vector<std::uint16_t>& ports) {
  std::size_t position = 0;
  auto bind_all = [&](const std::vector<config::ListenAddress>& configured, bool implicit_tls) {
    for (const auto& address : configured) {
      const std::uint16_t port = position < ports.size() ? ports[position] : address.port;
      ++position;
      auto listener = std::make_unique<net::TcpListener>(
          loop_.uv(), [this, address, implicit_tls](std::unique_ptr<net::TcpStream> stream) {
            accept(std::move(stream), address, implicit_tls);
          });
      listener->on_accept_error([this, address](int status) {
        // Out of memory or buffers, usually: say so rather than drop clients silently.
        if (is_local_resource_error(status)) environment_->metrics->local_error("accept");
        log::error("accept_failed", {{"address", address.str()}, {"detail", uv_strerror(status)}});
      });
      // The first loop makes sure the address is not someone else's before it shares it.
      int rc = reuse_port && ports.empty() ? net::check_address_free(address.host, port) : 0;
      if (rc == 0) rc = listener->listen(address.host, port, 511, reuse_port);
      if (rc != 0)
        throw std::runtime_error("cannot listen on " + address.str() + ": " + uv_strerror(rc));
      // One line per address, not one per loop.
      if (census_slot_ == 0)
        log::info("listening",
                  {{"address", address.str()},
                   {"tls",
                    implicit_tls ? "implicit" : (policy_.starttls_offered ? "starttls" : "none")}});
      listeners_.push_back(std::move(listener));
    }
  };
  bind_all(config_->listen, false);
  bind_all(config_->listen_implicit_tls, true);
}

std::vector<std::uint16_t> SubmissionServer::bound_ports() const {
  std::vector<std::uint16_t> ports;
  for (const auto& listener : listeners_) ports.push_back(listener->bound_port());
  return ports;
}

namespace {

// A session that has made no progress for this long may be closed to make room. Younger
// ones are left alone: a client that has just connected is still on its way to MAIL.
constexpr std::chrono::seconds kIdleBeforeShedding{1};

std::string client_ip_of(const net::TcpStream& stream) {
  sockaddr_storage peer{};
  if (!stream.peer_sockaddr(peer)) return "unknown";
  return net::format_ip(reinterpret_cast<const sockaddr*>(&peer));
}

}  // namespace

void SubmissionServer::refuse(std::unique_ptr<net::TcpStream> stream, const char* reason,
                              const std::string& text) {
  stream->write("421 4.7.0 " + config_->hostname + " " + text + "\r\n");
  stream->shutdown_after_writes();
  log::warn("session_refused", {{"peer", stream->peer_address()}, {"reason", reason}});
  metrics_.session_refused(reason);
  // libuv writes to a fresh socket at once; closing on the next loop turn keeps it.
  loop_.defer_delete(std::move(stream));
}

bool SubmissionServer::shed_one_idle_session(const std::string* only_from) {
  const auto now = std::chrono::steady_clock::now();
  SubmissionSession* stalest = nullptr;
  for (auto& [raw, session] : sessions_) {
    if (session->closing() || session->engaged()) continue;
    if (only_from && session->client_ip() != *only_from) continue;
    if (now - session->last_progress() < kIdleBeforeShedding) continue;
    if (!stalest || session->last_progress() < stalest->last_progress()) stalest = raw;
  }
  if (!stalest) return false;
  log::info("session_shed", {{"session", stalest->id()}});
  metrics_.session_shed();
  stalest->shed();
  return true;
}

void SubmissionServer::accept(std::unique_ptr<net::TcpStream> stream,
                              const config::ListenAddress& listener, bool implicit_tls) {
  if (stopping_) return;  // the stream closes as it goes out of scope
  // The configuration of this moment decides; a reload may have changed it.
  const config::ServerConfig& config = *config_;
  const bool require_auth = config.requires_auth(listener);
  sockaddr_storage peer{};
  const bool peer_known = stream->peer_sockaddr(peer);
  const auto peer_in = [&](const std::vector<net::Cidr>& networks) {
    if (!peer_known) return false;
    for (const auto& network : networks)
      if (network.contains(reinterpret_cast<const sockaddr*>(&peer))) return true;
    return false;
  };
  const bool allowed = (require_auth && !config.allow_explicit) || peer_in(config.allow);
  // Loopback (every local application shares 127.0.0.1) and the trusted networks have no
  // per-address budget; they compete for max_sessions like everyone else.
  const bool trusted = peer_in(config.trusted_networks);
  const std::string client_ip = client_ip_of(*stream);
  // Sessions on their way out (final reply queued) no longer hold a slot.
  std::size_t live = 0;
  std::size_t before_mail = 0;
  std::size_t from_address = 0;
  for (const auto& [raw, session] : sessions_) {
    if (session->closing()) continue;
    ++live;
    if (!session->engaged()) ++before_mail;
    if (session->client_ip() == client_ip) ++from_address;
  }
  // The other loops' sessions count too: the limits are the daemon's.
  const SessionCensus::Counts others = census_->others(census_slot_, client_ip);
  if (!trusted && from_address + others.from_address >= config.max_sessions_per_address) {
    // An address at its limit makes room from its own idle sessions, never from others'.
    if (!shed_one_idle_session(&client_ip)) {
      return refuse(std::move(stream), "per_address",
                    "Too many connections from your address, try again later");
    }
    --live;  // the shed session was live and before MAIL
    --before_mail;
  }
  if (live + others.live >= config.max_sessions ||
      before_mail + others.before_mail >= config.max_sessions_before_mail) {
    if (!shed_one_idle_session())
      return refuse(std::move(stream), "max_sessions", "Too many connections, try again later");
  }
  std::string id = "s" + std::to_string(census_->next_session_number());
  smtp::ServerPolicy policy = policy_;
  policy.auth_required = require_auth;
  auto session = std::make_unique<SubmissionSession>(
      environment_, policy, implicit_tls, std::move(stream), id, client_ip,
      [this](SubmissionSession* finished) { session_finished(finished); });
  SubmissionSession* raw = session.get();
  sessions_.emplace(raw, std::move(session));
  if (census_->loops() > 1) {
    census_->session_started(census_slot_, client_ip);
    census_->publish(census_slot_, live + 1, before_mail + 1);
  }
  raw->start(allowed, implicit_tls);
}

void SubmissionServer::publish_counts() {
  if (census_->loops() == 1) return;
  std::size_t live = 0;
  std::size_t before_mail = 0;
  for (const auto& [raw, session] : sessions_) {
    if (session->closing()) continue;
    ++live;
    if (!session->engaged()) ++before_mail;
  }
  census_->publish(census_slot_, live, before_mail);
}

void SubmissionServer::session_finished(SubmissionSession* session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  census_->session_ended(census_slot_, session->client_ip());
  // The session is still on the call stack. Tasks run in order: the session (and the
  // upstream connection it hands back to the pool) is gone before check_drained looks.
  loop_.defer_delete(std::move(it->second));
  sessions_.erase(it);
  publish_counts();
  loop_.post([this]() { check_drained(); });
}

void SubmissionServer::shutdown(config::Duration grace, std::function<void()> done) {
  stopping_ = true;
  on_drained_ = std::move(done);
  for (auto& listener : listeners_) listener->close();
  listeners_.clear();
  std::vector<SubmissionSession*> live;
  for (auto& [raw, session] : sessions_) live.push_back(raw);
  for (auto* session : live)
    if (sessions_.count(session)) session->shutdown();
  grace_timer_.start(grace, [this]() {
    std::vector<SubmissionSession*> remaining;
    for (auto& [raw, session] : sessions_) remaining.push_back(raw);
    for (auto* session : remaining)
      if (sessions_.count(session)) session->force_close();
  });
  check_drained();
}

void SubmissionServer::check_drained() {
  if (!stopping_ || !sessions_.empty() || !on_drained_) return;
  grace_timer_.stop();
  auto done = std::move(on_drained_);
  on_drained_ = nullptr;
  done();
}

}  // namespace portrelay::server
