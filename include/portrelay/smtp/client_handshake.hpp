#pragma once
// The upstream side of an SMTP session up to "ready to send mail": greeting, EHLO,
// STARTTLS (RFC 3207), EHLO again, AUTH (RFC 4954). Pure: replies in, actions out.
// The I/O layer performs the actions and feeds back replies and TLS results.
#include <string>

#include "portrelay/base/failure_reason.hpp"
#include "portrelay/base/tls_mode.hpp"
#include "portrelay/smtp/capabilities.hpp"
#include "portrelay/smtp/reply.hpp"

namespace portrelay::smtp {

struct HandshakeAction {
  enum class Kind {
    Send,      // write `data` (a command line with CRLF) and wait for the next reply
    StartTls,  // discard buffered plaintext, run the TLS handshake, then on_tls_established()
    Ready,     // the session can carry mail
    Fail,      // give up on this endpoint
  };
  Kind kind = Kind::Send;
  std::string data;
  bool sensitive = false;  // `data` carries a credential: never log it
  FailureReason reason = FailureReason::Protocol;
  std::string detail;  // for Fail: human-readable, never contains secrets
};

class ClientHandshake {
 public:
  struct Options {
    std::string helo_name;
    TlsMode tls = TlsMode::StartTls;
    std::string username;  // empty: no AUTH
    std::string password;
  };

  explicit ClientHandshake(Options options);

  // Implicit TLS: call after the TLS handshake completed, before the greeting arrives.
  void mark_tls_active() { tls_active_ = true; }
  HandshakeAction on_reply(const Reply& reply);
  HandshakeAction on_tls_established();

  bool tls_active() const { return tls_active_; }
  bool authenticated() const { return authenticated_; }
  const Capabilities& capabilities() const { return capabilities_; }

 private:
  enum class Step {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    AuthPlain,
    AuthLoginStart,
    AuthLoginUser,
    AuthLoginPassword,
    Done
  };

  HandshakeAction after_ehlo();
  HandshakeAction start_auth();
  HandshakeAction send(Step next, std::string line, bool sensitive = false);
  HandshakeAction fail(FailureReason reason, std::string detail);

  Options options_;
  Step step_ = Step::Greeting;
  bool tls_active_ = false;
  bool authenticated_ = false;
  Capabilities capabilities_;
};

}  // namespace portrelay::smtp
