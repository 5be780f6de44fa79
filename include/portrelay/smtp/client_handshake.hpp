#pragma once
// The upstream side of an SMTP session up to "ready to send mail": greeting, EHLO,
// STARTTLS (RFC 3207), EHLO again, AUTH (RFC 4954: PLAIN/LOGIN, or XOAUTH2 / OAUTHBEARER
// (RFC 7628) with an OAuth 2.0 bearer token). Pure: replies in, actions out.
// The I/O layer performs the actions and feeds back replies and TLS results.
#include <cstdint>
#include <optional>
#include <string>

#include "portrelay/base/failure_reason.hpp"
#include "portrelay/base/tls_mode.hpp"
#include "portrelay/base/upstream_auth.hpp"
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
  // For Fail: the server refused the OAuth token (535, possibly after its 334 error
  // challenge). The session is still usable: retry_with_token() may try a fresher token.
  bool token_refused = false;
  // For Fail caused by a server reply: that reply, so that a caller can tell a throttle
  // ("432 4.3.2 concurrent connection limit exceeded" at the greeting) from a broken port.
  std::optional<Reply> refusal;
};

class ClientHandshake {
 public:
  struct Options {
    std::string helo_name;
    TlsMode tls = TlsMode::StartTls;
    std::string username;  // empty: no AUTH
    std::string password;  // for UpstreamAuth::Password
    UpstreamAuth auth = UpstreamAuth::Password;
    std::string oauth_token;  // for XOAuth2 / OAuthBearer: the bearer access token
    // OAUTHBEARER's host= and port= fields (RFC 7628 3.1): the server we connected to.
    std::string oauth_host;
    std::uint16_t oauth_port = 0;
  };

  explicit ClientHandshake(Options options);

  // Implicit TLS: call after the TLS handshake completed, before the greeting arrives.
  void mark_tls_active() { tls_active_ = true; }
  HandshakeAction on_reply(const Reply& reply);
  HandshakeAction on_tls_established();
  // After a Fail with token_refused: AUTH again, same mechanism, with `token`. Any other
  // time it fails with FailureReason::Protocol.
  HandshakeAction retry_with_token(std::string token);

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
    AuthOAuth,       // AUTH XOAUTH2/OAUTHBEARER with initial response sent
    AuthOAuthError,  // the 334 error challenge was acknowledged; the 535 is due
    TokenRefused,    // failed, but retry_with_token() may start over
    Done
  };

  HandshakeAction after_ehlo();
  HandshakeAction start_auth();
  HandshakeAction start_oauth();
  HandshakeAction refuse_token(const Reply& reply);
  HandshakeAction send(Step next, std::string line, bool sensitive = false);
  HandshakeAction fail(FailureReason reason, std::string detail);
  HandshakeAction next_after(const Reply& reply);  // on_reply without the refusal attached

  Options options_;
  Step step_ = Step::Greeting;
  bool tls_active_ = false;
  bool authenticated_ = false;
  Capabilities capabilities_;
  std::string oauth_error_;  // the server's decoded 334 error challenge, for the detail
};

}  // namespace portrelay::smtp
