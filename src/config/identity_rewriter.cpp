#include "portrelay/config/identity_rewriter.hpp"

#include "portrelay/base/ascii.hpp"
#include "portrelay/smtp/origination_fields.hpp"

namespace portrelay::config {
namespace {

// The header edits that give `identity` to a message's From.
void give_from(const SenderIdentity& identity, smtp::HeaderRewrite& plan) {
  if (!identity.from.empty())
    plan.from_mailbox = identity.from;
  else
    plan.from_address = identity.sender;
}

}  // namespace

std::string mail_domain(const Config& config) {
  if (!config.rewrite.mail_domain.empty()) return config.rewrite.mail_domain;
  std::string domain = read_mailname();
  return domain.empty() ? config.server.hostname : domain;
}

IdentityRewriter::IdentityRewriter(const Config& config, std::string mail_domain)
    : local_(config.rewrite.local_domains),
      aliases_(config.aliases),
      identity_(config.rewrite.identity),
      keep_reply_to_(config.rewrite.keep_reply_to),
      mail_domain_(std::move(mail_domain)) {}

bool IdentityRewriter::is_local(std::string_view address) const { return local_.contains(address); }

bool IdentityRewriter::was_local(std::string_view address) const {
  if (is_local(address)) return true;
  return !address.empty() &&
         ((!identity_.sender.empty() && ascii::iequals(address, identity_.sender)) ||
          (!identity_.from_address.empty() && ascii::iequals(address, identity_.from_address)));
}

bool IdentityRewriter::replaces_sender(std::string_view sender) const {
  return !sender.empty() && !identity_.sender.empty() &&
         (identity_.all_senders || is_local(sender));
}

std::string IdentityRewriter::accepted_sender(std::string_view sender) const {
  if (sender.empty()) return {};
  if (replaces_sender(sender)) return identity_.sender;
  // A bare name (`MAIL FROM:<cron>`) never leaves unqualified: it gets the mail domain, as
  // `sendmail` gives one (/etc/mailname), so no provider sees an address without a domain.
  if (sender.find('@') == std::string_view::npos && !mail_domain_.empty())
    return std::string(sender) + "@" + mail_domain_;
  return std::string(sender);
}

smtp::HeaderRewrite IdentityRewriter::acceptance_plan(std::string_view original_sender,
                                                      bool add_missing_headers) const {
  smtp::HeaderRewrite plan;
  if (identity_.configured()) {
    give_from(identity_, plan);
    plan.every_from = identity_.all_senders || is_local(original_sender);
    plan.is_local = [this](std::string_view address) { return is_local(address); };
    plan.keep_reply_to = keep_reply_to_;
  }
  if (!aliases_.empty()) {
    plan.recipient_targets = [this](std::string_view address) {
      if (!is_local(address)) return std::vector<std::string>{};
      return aliases_.resolve(address);
    };
  }
  if (add_missing_headers) {
    plan.date = [] { return smtp::format_date_now(); };
    plan.message_id = [this] { return smtp::make_message_id(mail_domain_); };
  }
  return plan;
}

std::string IdentityRewriter::upstream_sender(const SenderIdentity& upstream,
                                              std::string_view accepted_sender) const {
  if (accepted_sender.empty() || upstream.sender.empty()) return std::string(accepted_sender);
  if (upstream.all_senders || was_local(accepted_sender)) return upstream.sender;
  return std::string(accepted_sender);
}

smtp::HeaderRewrite IdentityRewriter::upstream_plan(const SenderIdentity& upstream,
                                                    std::string_view accepted_sender) const {
  smtp::HeaderRewrite plan;
  if (!upstream.configured()) return plan;
  give_from(upstream, plan);
  plan.every_from = upstream.all_senders || was_local(accepted_sender);
  plan.is_local = [this](std::string_view address) { return was_local(address); };
  plan.keep_reply_to = keep_reply_to_;
  return plan;
}

}  // namespace portrelay::config
