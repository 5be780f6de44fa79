#pragma once
// Which mail addresses are this machine's own: the ones an application on the VM makes up
// (root, www-data@vm-1234.internal) and no provider will accept as they are. [rewrite]
// gives such senders a verified identity and [aliases] maps such recipients to a person.
#include <string>
#include <string_view>
#include <vector>

namespace portrelay::config {

class LocalDomains {
 public:
  LocalDomains() = default;
  explicit LocalDomains(std::vector<std::string> domains);  // any case; compared without it

  // "root" (no domain) and "root@VM-1234.internal" when that domain is listed. `address` is
  // an envelope address without angle brackets; "" (the null sender) is never local.
  bool contains(std::string_view address) const;
  const std::vector<std::string>& domains() const { return domains_; }

 private:
  std::vector<std::string> domains_;  // lowercase
};

// The first line of a Debian /etc/mailname (policy 11.6: the mail domain of this machine),
// trimmed; "" when the file is missing, unreadable or empty.
std::string read_mailname(const std::string& path = "/etc/mailname");

// The default `[rewrite] local_domains`: the host name, the mail name, "localhost" and
// "localhost.localdomain", lowercase, each once, empty ones left out.
std::vector<std::string> default_local_domains(std::string_view hostname,
                                               std::string_view mailname);

}  // namespace portrelay::config
