#include "portrelay/tls/openssl_errors.hpp"

#include <openssl/err.h>

#include <cstring>

namespace portrelay::tls {

namespace {

std::string describe(unsigned long code, const char* data, int flags) {
  std::string text;
  if (ERR_SYSTEM_ERROR(code)) {
    text = std::strerror(ERR_GET_REASON(code));  // the reason is an errno value
  }
  const char* library = ERR_lib_error_string(code);
  const char* reason = ERR_reason_error_string(code);
  if (!text.empty()) {
    // already described as a system error
  } else if (reason != nullptr) {
    if (library != nullptr) {
      text.append(library).append(": ");
    }
    text.append(reason);
  } else {
    // Unregistered reason codes still deserve the numeric form rather than nothing.
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    text = buffer;
  }
  // The detail carries things like the file name of a failed fopen().
  if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && *data != '\0') {
    text.append(" (").append(data).append(")");
  }
  return text;
}

}  // namespace

std::string take_openssl_errors(const std::string& fallback) {
  std::string joined;
  const char* data = nullptr;
  int flags = 0;
  while (unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    // "system lib" entries only repeat the errno entry that precedes them.
    if (!ERR_SYSTEM_ERROR(code) && ERR_GET_REASON(code) == ERR_R_SYS_LIB && !joined.empty()) {
      continue;
    }
    if (!joined.empty()) {
      joined.append("; ");
    }
    joined.append(describe(code, data, flags));
  }
  return joined.empty() ? fallback : joined;
}

}  // namespace portrelay::tls
