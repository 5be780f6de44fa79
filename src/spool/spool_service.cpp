#include "portrelay/spool/spool_service.hpp"

#include <algorithm>

#include "portrelay/spool/spool_sinks.hpp"

namespace portrelay::spool {
namespace {

// A dropped message may hold what the SMTP listener would take.
MaildropLimits maildrop_limits(const config::ServerConfig& server) {
  return {server.max_message_size, server.max_recipients};
}

// The maildrop's envelope checks, over a copy of the snapshot (the Service is given a
// reference).
std::shared_ptr<const relay::EnvelopePolicy> envelope_policy(const config::Config& config) {
  return std::make_shared<const relay::EnvelopePolicy>(
      std::make_shared<const config::Config>(config));
}

}  // namespace

Service::Service(net::Loop& loop, const config::Config& config, metrics::Metrics& metrics)
    : loop_(loop), metrics_(metrics), spool_(loop, config.spool, config.server.hostname, metrics) {
  spool_.set_maildrop_limits(maildrop_limits(config.server));
  spool_.set_envelope_policy(envelope_policy(config));
  spool_.set_identity(
      std::make_shared<const config::IdentityRewriter>(config, config::mail_domain(config)));
}

Service::~Service() = default;

void Service::start(std::shared_ptr<relay::UpstreamSelector> selector, ReloadHandler reload) {
  spool_.start();                            // recovery first: what was queued before is delivered
  spool_.set_upstream(std::move(selector));  // deliveries from now on
  control_ = std::make_unique<ControlServer>(loop_, spool_, spool_.directory().control_path());
  control_->set_reload(std::move(reload));
  control_->start();
}

Service::SessionSinkFactory Service::session_sinks(
    const config::RelayConfig& relay, std::shared_ptr<relay::UpstreamSelector> selector) {
  if (relay.mode == config::RelayMode::Spool)
    return [&spool = spool_, &metrics = metrics_](const std::string& session_id) {
      return std::unique_ptr<relay::MessageSink>(
          std::make_unique<QueueingSink>(spool, metrics, session_id));
    };
  // Passthrough with spool_on_failure. The sink holds the selector: the selector of a
  // replaced configuration lives until the last session started under it ends.
  return [&loop = loop_, &spool = spool_, &metrics = metrics_,
          selector = std::move(selector)](const std::string& session_id) {
    return std::unique_ptr<relay::MessageSink>(
        std::make_unique<FallbackSink>(loop, selector, spool, metrics, session_id));
  };
}

void Service::reconfigure(const config::Config& config,
                          std::shared_ptr<relay::UpstreamSelector> selector) {
  spool_.reconfigure(config.spool);
  spool_.set_maildrop_limits(maildrop_limits(config.server));
  spool_.set_envelope_policy(envelope_policy(config));
  spool_.set_identity(
      std::make_shared<const config::IdentityRewriter>(config, config::mail_domain(config)));
  spool_.set_upstream(std::move(selector));  // deliveries from now on
}

void Service::shutdown(std::chrono::steady_clock::time_point deadline, std::function<void()> done) {
  if (control_) control_->stop();
  // One deadline for the sessions and the deliveries (a supervisor's stop timeout is sized
  // for one grace, not two): the deliveries get what the sessions left of it.
  const auto left =
      std::chrono::duration_cast<config::Duration>(deadline - std::chrono::steady_clock::now());
  spool_.shutdown(std::max(left, config::Duration(0)), std::move(done));
}

}  // namespace portrelay::spool
