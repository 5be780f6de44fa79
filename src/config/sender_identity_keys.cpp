// sender / from / all_senders: the identity keys shared by [rewrite] and [[upstream]].
#include "portrelay/smtp/command.hpp"
#include "portrelay/smtp/mailbox_list.hpp"
#include "sections.hpp"

namespace portrelay::config::detail {
namespace {

// A qualified address MAIL FROM can carry as it is.
bool is_sendable_address(const std::string& address) {
  const auto at = address.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == address.size()) return false;
  const auto path = smtp::parse_mail_from("FROM:<" + address + ">");
  return path && path->parameters.empty() && path->address == address;
}

}  // namespace

SenderIdentity read_sender_identity(const TableReader& reader) {
  SenderIdentity identity;
  if (const auto sender = reader.string("sender")) {
    if (!is_sendable_address(*sender)) {
      reader.fail("sender", *reader.find("sender"),
                  "\"" + *sender + "\" is not a full address (\"alerts@example.com\")");
    }
    identity.sender = *sender;
  }
  if (const auto from = reader.string("from")) {
    const auto mailboxes = smtp::parse_mailbox_list(*from);
    const bool one_line = from->find_first_of("\r\n") == std::string::npos;
    if (!one_line || mailboxes.size() != 1 || !is_sendable_address(mailboxes.front().address)) {
      reader.fail("from", *reader.find("from"),
                  "\"" + *from +
                      "\" is not one mailbox with a full address (\"VM alerts "
                      "<alerts@example.com>\" or \"alerts@example.com\")");
    }
    identity.from = *from;
    identity.from_address = mailboxes.front().address;
  }
  identity.all_senders = reader.boolean("all_senders").value_or(false);
  if (identity.all_senders && !identity.configured()) {
    reader.fail("all_senders", *reader.find("all_senders"),
                "all_senders = true needs sender or from (the identity to give every sender)");
  }
  return identity;
}

}  // namespace portrelay::config::detail
