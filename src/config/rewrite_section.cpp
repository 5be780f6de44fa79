// [rewrite]: the identity local mail leaves with (docs/CONFIGURATION.md).
#include <string>

#include "portrelay/base/ascii.hpp"
#include "portrelay/config/local_domains.hpp"
#include "sections.hpp"
#include "value_checks.hpp"

namespace portrelay::config::detail {

RewriteConfig parse_rewrite_section(ParseContext& context, const toml::table& table,
                                    const ServerConfig& server) {
  const TableReader reader(
      context, table, "rewrite", "[rewrite]",
      {"local_domains", "mail_domain", "sender", "from", "all_senders", "keep_reply_to"});
  RewriteConfig settings;
  if (const auto domains = reader.string_array("local_domains")) {
    std::vector<std::string> written;
    for (const StringItem& item : *domains) {
      if (!is_valid_hostname(item.value)) {
        reader.fail("local_domains", *item.node,
                    "\"" + item.value + "\" is not a domain name (\"vm-1234.internal\")");
      }
      written.push_back(item.value);
    }
    settings.local_domains = LocalDomains(std::move(written)).domains();
  } else {
    settings.local_domains = default_local_domains(server.hostname, read_mailname());
  }
  if (const auto domain = reader.string("mail_domain")) {
    if (!is_valid_hostname(*domain))
      reader.fail("mail_domain", *reader.find("mail_domain"),
                  "\"" + *domain + "\" is not a domain name (\"vm-1234.example.com\")");
    settings.mail_domain = ascii::lower(*domain);
  }
  settings.identity = read_sender_identity(reader);
  settings.keep_reply_to = reader.boolean("keep_reply_to").value_or(true);
  return settings;
}

}  // namespace portrelay::config::detail
