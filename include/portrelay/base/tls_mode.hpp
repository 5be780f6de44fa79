#pragma once
// How a connection to an upstream endpoint uses TLS. Shared vocabulary: the config names
// it, the SMTP client handshake obeys it, the relay and `probe` report it.
namespace portrelay {

enum class TlsMode {
  Implicit,       // TLS from the first byte (port 465)
  StartTls,       // STARTTLS required: no STARTTLS offered is a failure, never plaintext
  Opportunistic,  // STARTTLS when offered; credentials are never sent without TLS
  None,           // plaintext (loopback or trusted networks only)
};

const char* to_string(TlsMode mode);  // "implicit" | "starttls" | "opportunistic" | "none"

}  // namespace portrelay
