#pragma once
// ESMTP capabilities advertised by an upstream server in its EHLO reply.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/smtp/reply.hpp"

namespace portrelay::smtp {

struct Capabilities {
  bool pipelining = false;
  bool starttls = false;
  bool eight_bit_mime = false;
  bool enhanced_status_codes = false;
  bool smtputf8 = false;
  bool size = false;
  std::uint64_t size_limit = 0;              // 0: no limit announced
  std::vector<std::string> auth_mechanisms;  // upper-cased, e.g. {"PLAIN","LOGIN"}

  std::vector<std::string> keywords;  // every EHLO line's keyword with its parameters

  bool supports_auth(std::string_view mechanism) const;
  // Parse the lines of a 250 reply to EHLO (the first line is the server's greeting text).
  static Capabilities from_ehlo(const Reply& reply);
};

}  // namespace portrelay::smtp
