#pragma once
// relay::EnvelopePolicy: what this relay accepts as an envelope, decided before anything goes
// upstream or into the queue, the same way for a client's SMTP session and for a message
// `sendmail` left in the maildrop. Pure: one configuration snapshot in, replies out.
//
//   MAIL  [server] allowed_senders (or the authenticated user's own list): 550 5.7.1 for
//         any other sender; a local sender that [rewrite] gives an identity counts as
//         allowed. [relay] require_route: 550 5.7.1 when no [[route]] matches.
//   RCPT  a local recipient (no domain, or one of [rewrite] local_domains) is replaced by
//         its [aliases] targets, possibly several; with none, 550 5.1.1: mail for "root"
//         never reaches a provider that would refuse or lose it.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/smtp/reply.hpp"

namespace portrelay::relay {

class EnvelopePolicy {
 public:
  explicit EnvelopePolicy(std::shared_ptr<const config::Config> config);

  // MAIL FROM: nullopt when the client's `sender` may be used. `accepted` is that sender
  // after the [rewrite] of acceptance (config::IdentityRewriter::accepted_sender), and
  // `replaced` says whether the rewrite's identity took its place (replaces_sender): such a
  // sender leaves with a verified identity, so allowed_senders lets it through; a bare name
  // only qualified with the mail domain is checked as the client wrote it. require_route
  // looks for the route of what leaves. `user_senders`: the authenticated user's own list
  // from the users_file (replaces [server] allowed_senders), or null.
  std::optional<smtp::Reply> check_sender(std::string_view sender, std::string_view accepted,
                                          bool replaced,
                                          const std::vector<std::string>* user_senders) const;
  // The [[route]] that carries mail from `sender` (the envelope sender after any rewrite);
  // "" for the default route.
  std::string route_for(std::string_view sender) const;

  struct Recipients {
    std::vector<std::string> addresses;  // where the mail goes; empty when refused
    std::optional<smtp::Reply> refusal;  // 550 5.1.1 for a local name nothing maps
  };
  // RCPT TO: the recipient itself when it is not local, else its alias targets.
  Recipients map_recipient(std::string_view recipient) const;

  const config::Config& config() const { return *config_; }

 private:
  std::shared_ptr<const config::Config> config_;
};

}  // namespace portrelay::relay
