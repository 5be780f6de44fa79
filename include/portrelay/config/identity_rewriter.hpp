#pragma once
// What [rewrite], [aliases] and an [[upstream]]'s identity do to one message, as the
// envelope sender it leaves with and the header edits (smtp::HeaderRewrite) it gets. The
// same rules on every path: SMTP submission and the maildrop at acceptance, the relay for
// each upstream. Pure: built once per configuration; the plans it returns refer to it, so
// it must outlive them (the daemon keeps it in a shared_ptr next to the sessions).
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/smtp/header_rewrite.hpp"

namespace portrelay::config {

// The domain of this machine's mail: the first line of /etc/mailname (Debian policy 11.6),
// else server.hostname. Qualifies Message-IDs the daemon adds.
std::string mail_domain(const Config& config);

class IdentityRewriter {
 public:
  // `mail_domain`: the domain of the Message-ID the daemon adds (the /etc/mailname domain,
  // else server.hostname).
  IdentityRewriter(const Config& config, std::string mail_domain);

  // No domain, or one of local_domains. The null sender "" never is.
  bool is_local(std::string_view address) const;

  // ---- at acceptance ([rewrite], [aliases], [server] add_missing_headers) ----
  // The envelope sender a message from `sender` is accepted with: [rewrite] sender for a
  // local sender (any sender with all_senders); a bare name otherwise gets "@" and the mail
  // domain; `sender` itself otherwise and for "<>".
  std::string accepted_sender(std::string_view sender) const;
  // The [rewrite] identity takes this sender's place (a local one, or any with all_senders):
  // what allowed_senders lets through. Qualifying a bare name is not a replacement.
  bool replaces_sender(std::string_view sender) const;
  // The header edits for a message whose envelope sender was `original_sender`. With
  // `add_missing_headers`, Date and Message-ID are added when missing.
  smtp::HeaderRewrite acceptance_plan(std::string_view original_sender,
                                      bool add_missing_headers) const;

  // ---- for one upstream, on top of what acceptance did ----
  // Applied to mail that was local at acceptance (a local sender, or one [rewrite] gave
  // its identity to), or to every message with the upstream's all_senders.
  std::string upstream_sender(const SenderIdentity& upstream,
                              std::string_view accepted_sender) const;
  // Empty when the upstream's identity changes no header of such a message.
  smtp::HeaderRewrite upstream_plan(const SenderIdentity& upstream,
                                    std::string_view accepted_sender) const;

 private:
  // Local, or an address [rewrite] gives local mail: mail that was local when accepted.
  bool was_local(std::string_view address) const;

  LocalDomains local_;
  AliasTable aliases_;
  SenderIdentity identity_;
  bool keep_reply_to_ = true;
  std::string mail_domain_;
};

}  // namespace portrelay::config
