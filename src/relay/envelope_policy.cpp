#include "portrelay/relay/envelope_policy.hpp"

#include "portrelay/config/sender_pattern.hpp"

namespace portrelay::relay {
EnvelopePolicy::EnvelopePolicy(std::shared_ptr<const config::Config> config)
    : config_(std::move(config)) {}

std::optional<smtp::Reply> EnvelopePolicy::check_sender(
    std::string_view sender, std::string_view accepted, bool replaced,
    const std::vector<std::string>* user_senders) const {
  // The null sender is nobody's identity (delivery reports use it): not an impersonation.
  if (!sender.empty() && !replaced) {
    const std::vector<std::string>& allowed =
        user_senders != nullptr ? *user_senders : config_->server.allowed_senders;
    if (!allowed.empty() && !config::any_sender_matches(allowed, sender))
      return smtp::make_reply(550, "5.7.1",
                              "Sender <" + std::string(sender) + "> is not allowed to send here");
  }
  if (config_->relay.require_route && config::choose_route(config_->routes, accepted) == nullptr)
    return smtp::make_reply(
        550, "5.7.1",
        "No route for sender <" + std::string(accepted) + "> (relay.require_route is on)");
  return std::nullopt;
}

std::string EnvelopePolicy::route_for(std::string_view sender) const {
  const config::Route* route = config::choose_route(config_->routes, sender);
  return route != nullptr ? route->name : std::string();
}

EnvelopePolicy::Recipients EnvelopePolicy::map_recipient(std::string_view recipient) const {
  Recipients result;
  if (!config_->aliases.local_domains().contains(recipient)) {
    result.addresses.emplace_back(recipient);
    return result;
  }
  result.addresses = config_->aliases.resolve(recipient);
  if (result.addresses.empty())
    result.refusal = smtp::make_reply(
        550, "5.1.1",
        "<" + std::string(recipient) +
            "> is a local name with no alias (add it to [aliases], or set default)");
  return result;
}

}  // namespace portrelay::relay
