#include "portrelay/submit/submission_target.hpp"

#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "portrelay/config/config.hpp"
#include "portrelay/config/local_domains.hpp"

namespace portrelay::submit {
namespace {

std::string machine_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// A wildcard listener accepts on every address; loopback is the one that is surely there.
std::string reachable_host(const std::string& host) {
  if (host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

bool listener_requires_auth(const toml::table& server, const std::string& address) {
  const toml::node* node = server.get("require_auth");
  if (node == nullptr) return false;
  if (auto flag = node->value<bool>()) return *flag;
  if (const auto* list = node->as_array()) {
    for (const auto& item : *list) {
      auto text = item.value<std::string>();
      auto parsed = text ? config::parse_listen_address(*text) : std::nullopt;
      if (parsed && parsed->str() == address) return true;
    }
  }
  return false;
}

SubmissionTarget read_submission_target(const std::string& path) {
  SubmissionTarget target;
  target.domain = machine_name();
  std::ifstream file(path);
  if (!file) {
    const int error = errno;
    if (error == EACCES) {
      target.fallback_note = "cannot read " + path + " (" + std::strerror(error) +
                             "), so the default listener " + target.host + ":" +
                             std::to_string(target.port) + " and the maildrop " + target.maildrop +
                             " were used";
      return target;
    }
    throw SubmissionTargetError(path + ": cannot read: " + std::strerror(error));
  }
  std::stringstream text;
  text << file.rdbuf();
  toml::table root;
  try {
    root = toml::parse(text.str(), std::string_view(path));
  } catch (const toml::parse_error& error) {
    throw SubmissionTargetError(path + ":" + std::to_string(error.source().begin.line) + ":" +
                                std::to_string(error.source().begin.column) + ": " +
                                std::string(error.description()));
  }
  // The maildrop exists only where the daemon keeps a spool to pick it up into.
  const std::string mode = root["relay"]["mode"].value_or(std::string("passthrough"));
  if (mode == "spool" || root["relay"]["spool_on_failure"].value_or(false))
    target.maildrop = root["spool"]["dir"].value_or(config::SpoolConfig{}.dir) + "/maildrop";
  else
    target.maildrop.clear();
  // [rewrite] mail_domain wins over /etc/mailname (find_submission_target) and the host name.
  if (auto domain = root["rewrite"]["mail_domain"].value<std::string>(); domain && !domain->empty())
    target.configured_domain = *domain;
  const toml::table* server = root["server"].as_table();
  if (server == nullptr) return target;  // every default
  if (auto hostname = (*server)["hostname"].value<std::string>()) target.domain = *hostname;
  if (const toml::node* size = server->get("max_message_size")) {
    if (auto octets = size->value<std::int64_t>(); octets && *octets > 0) {
      target.max_message_size = static_cast<std::uint64_t>(*octets);
    } else if (auto written = size->value<std::string>()) {
      if (auto parsed = config::parse_size(*written)) target.max_message_size = *parsed;
    }
  }
  const toml::array* listen = (*server)["listen"].as_array();
  if (listen == nullptr) return target;  // the default listener
  for (const auto& item : *listen) {
    auto written = item.value<std::string>();
    auto address = written ? config::parse_listen_address(*written) : std::nullopt;
    if (!address) throw SubmissionTargetError(path + ": server.listen has an invalid address");
    if (listener_requires_auth(*server, address->str())) continue;
    target.host = reachable_host(address->host);
    target.port = address->port;
    return target;
  }
  throw SubmissionTargetError(path +
                              ": no address in server.listen takes mail without AUTH, and "
                              "sendmail has no credentials to give");
}

}  // namespace

SubmissionTarget find_submission_target(const std::string& path, const std::string& mailname_path) {
  SubmissionTarget target = read_submission_target(path);
  // Debian policy 11.6: /etc/mailname is the domain of this machine's mail, the one an
  // unqualified address gets (Postfix's myorigin); the host name is only the fallback.
  if (!target.configured_domain.empty())
    target.domain = target.configured_domain;
  else if (std::string mailname = config::read_mailname(mailname_path); !mailname.empty())
    target.domain = std::move(mailname);
  return target;
}

}  // namespace portrelay::submit
