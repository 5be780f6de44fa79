#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <string>

#include "portrelay/config/config.hpp"

namespace portrelay::config {

// Only IP literals: a listener bound to a name would depend on DNS at start-up, and the
// address it ends up on should be visible in the configuration.
std::optional<ListenAddress> parse_listen_address(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);

  int family = AF_INET;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    family = AF_INET6;
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // an IPv6 address needs brackets to separate it from the port
  }
  const std::string host_string(host);
  unsigned char buffer[sizeof(in6_addr)];
  if (inet_pton(family, host_string.c_str(), buffer) != 1) return std::nullopt;

  if (port_text.empty() || port_text.size() > 5) return std::nullopt;
  for (char c : port_text) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  unsigned port = 0;
  std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port > 65535) return std::nullopt;  // 0 = any free port (tests, demo)

  return ListenAddress{host_string, static_cast<std::uint16_t>(port)};
}

std::string ListenAddress::str() const {
  const std::string port_text = std::to_string(port);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

}  // namespace portrelay::config
