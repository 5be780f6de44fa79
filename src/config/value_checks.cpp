#include "value_checks.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace portrelay::config::detail {
namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_ip_literal(const std::string& text) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

}  // namespace

bool is_valid_hostname(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    if (!is_alnum(c) && c != '-' && c != '.') return false;
  }
  return true;
}

bool is_valid_host(std::string_view host) {
  return is_valid_hostname(host) || is_ip_literal(std::string(host));
}

bool is_valid_env_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name) {
    if (!is_alnum(c) && c != '_') return false;
  }
  return true;
}

bool is_valid_label(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!is_alnum(c) && c != '_' && c != '.' && c != ':' && c != '-') return false;
  }
  return true;
}

bool is_loopback(const ListenAddress& address) {
  unsigned char bytes[sizeof(in6_addr)] = {};
  if (inet_pton(AF_INET, address.host.c_str(), bytes) == 1) return bytes[0] == 127;
  if (inet_pton(AF_INET6, address.host.c_str(), bytes) != 1) return false;
  const auto* v6 = reinterpret_cast<const in6_addr*>(bytes);
  return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && bytes[12] == 127);
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host.ends_with(".localhost")) return true;  // RFC 6761 6.3
  return is_loopback(ListenAddress{std::string(host), 0});
}

std::optional<std::string> unreadable_reason(const std::string& path) {
  // Opening (not access()) is the real test: it also catches directories and ACLs.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return std::string(std::strerror(errno));
  struct stat info {};
  const bool regular = ::fstat(fd, &info) == 0 && S_ISREG(info.st_mode);
  ::close(fd);
  if (!regular) return std::string("not a regular file");
  return std::nullopt;
}

bool readable_by_group_or_others(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return false;
  return (info.st_mode & (S_IRGRP | S_IROTH)) != 0;
}

std::string default_hostname() {
  char buffer[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0) return "localhost";
  const std::string name(buffer);
  return is_valid_hostname(name) ? name : "localhost";
}

}  // namespace portrelay::config::detail
