#include "portrelay/base/tls_mode.hpp"

namespace portrelay {

const char* to_string(TlsMode mode) {
  switch (mode) {
    case TlsMode::Implicit:
      return "implicit";
    case TlsMode::StartTls:
      return "starttls";
    case TlsMode::Opportunistic:
      return "opportunistic";
    case TlsMode::None:
      return "none";
  }
  return "unknown";
}

}  // namespace portrelay
