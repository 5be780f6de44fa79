#include "portrelay/smtp/client_handshake.hpp"

#include "portrelay/smtp/base64.hpp"
#include "portrelay/smtp/command.hpp"

namespace portrelay::smtp {

using portrelay::FailureReason;
using portrelay::TlsMode;
using Kind = HandshakeAction::Kind;

namespace {

// RFC 5801 saslname: "," and "=" inside the authzid of a GS2 header are escaped.
std::string gs2_saslname(const std::string& name) {
  std::string escaped;
  for (char c : name) {
    if (c == ',')
      escaped += "=2C";
    else if (c == '=')
      escaped += "=3D";
    else
      escaped.push_back(c);
  }
  return escaped;
}

// The server's error challenge (JSON such as {"status":"401",...}) as it may appear in a
// failure detail: printable ASCII only, bounded. It never holds our token.
std::string printable_challenge(const std::string& encoded) {
  auto decoded = base64_decode(encoded);
  std::string text = decoded ? *decoded : encoded;
  std::string printable;
  for (char c : text) {
    if (printable.size() >= 200) break;
    printable.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  return printable;
}

}  // namespace

ClientHandshake::ClientHandshake(Options options) : options_(std::move(options)) {}

HandshakeAction ClientHandshake::send(Step next, std::string line, bool sensitive) {
  if (!is_single_command_line(line))
    return fail(FailureReason::Protocol, "refused to send a command holding CR, LF or NUL");
  step_ = next;
  HandshakeAction action;
  action.kind = Kind::Send;
  action.data = std::move(line) + "\r\n";
  action.sensitive = sensitive;
  return action;
}

HandshakeAction ClientHandshake::fail(FailureReason reason, std::string detail) {
  step_ = Step::Done;
  HandshakeAction action;
  action.kind = Kind::Fail;
  action.reason = reason;
  action.detail = std::move(detail);
  return action;
}

HandshakeAction ClientHandshake::on_reply(const Reply& reply) {
  HandshakeAction action = next_after(reply);
  if (action.kind == HandshakeAction::Kind::Fail) action.refusal = reply;
  return action;
}

HandshakeAction ClientHandshake::next_after(const Reply& reply) {
  // 421 means the server is going away (RFC 5321 3.8), whatever we asked: it says nothing
  // about STARTTLS support or our credentials. A 421 greeting stays GreetingRejected, and
  // anything arriving during the TLS handshake is out of sequence.
  if (reply.code == 421 && step_ != Step::Greeting && step_ != Step::TlsHandshake)
    return fail(FailureReason::Closed, "server closing: " + reply.summary());
  switch (step_) {
    case Step::Greeting:
      if (reply.code != 220) return fail(FailureReason::GreetingRejected, reply.summary());
      return send(Step::Ehlo, "EHLO " + options_.helo_name);

    case Step::Ehlo:
      if (reply.code == 250) {
        capabilities_ = Capabilities::from_ehlo(reply);
        return after_ehlo();
      }
      // An old server without ESMTP: HELO is only good enough when neither TLS nor AUTH
      // is needed, because both are ESMTP extensions.
      if (options_.tls == TlsMode::None && options_.username.empty() && reply.permanent())
        return send(Step::Helo, "HELO " + options_.helo_name);
      return fail(FailureReason::Protocol, "EHLO refused: " + reply.summary());

    case Step::Helo:
      if (reply.code != 250)
        return fail(FailureReason::Protocol, "HELO refused: " + reply.summary());
      capabilities_ = Capabilities{};
      step_ = Step::Done;
      return HandshakeAction{Kind::Ready};

    case Step::StartTls:
      if (reply.code == 220) {
        step_ = Step::TlsHandshake;
        return HandshakeAction{Kind::StartTls};
      }
      if (options_.tls == TlsMode::Opportunistic && options_.username.empty()) {
        step_ = Step::Done;
        return HandshakeAction{Kind::Ready};
      }
      return fail(FailureReason::StartTlsUnavailable, "STARTTLS refused: " + reply.summary());

    case Step::AuthPlain:
    case Step::AuthLoginPassword:
      if (reply.code == 235) {
        authenticated_ = true;
        step_ = Step::Done;
        return HandshakeAction{Kind::Ready};
      }
      return fail(FailureReason::AuthFailed, "authentication refused: " + reply.summary());

    case Step::AuthLoginStart:
      if (reply.code != 334)
        return fail(FailureReason::AuthFailed, "authentication refused: " + reply.summary());
      return send(Step::AuthLoginUser, base64_encode(options_.username), true);

    case Step::AuthLoginUser:
      if (reply.code != 334)
        return fail(FailureReason::AuthFailed, "authentication refused: " + reply.summary());
      return send(Step::AuthLoginPassword, base64_encode(options_.password), true);

    case Step::AuthOAuth:
      if (reply.code == 235) {
        authenticated_ = true;
        step_ = Step::Done;
        return HandshakeAction{Kind::Ready};
      }
      if (reply.code == 334) {
        // The token was refused; the server waits for the client to end the exchange
        // before it sends the final 535: an empty line for XOAUTH2, a lone ^A
        // (base64 "AQ==") for OAUTHBEARER (RFC 7628 3.2.3).
        oauth_error_ = printable_challenge(reply.lines.empty() ? "" : reply.lines.front());
        return send(Step::AuthOAuthError, options_.auth == UpstreamAuth::OAuthBearer ? "AQ==" : "");
      }
      return refuse_token(reply);

    case Step::AuthOAuthError:
      return refuse_token(reply);

    case Step::TlsHandshake:
    case Step::TokenRefused:
    case Step::Done:
      break;
  }
  return fail(FailureReason::Protocol, "unexpected reply: " + reply.summary());
}

HandshakeAction ClientHandshake::after_ehlo() {
  bool wants_starttls = options_.tls == TlsMode::StartTls || options_.tls == TlsMode::Opportunistic;
  if (wants_starttls && !tls_active_) {
    if (capabilities_.starttls) return send(Step::StartTls, "STARTTLS");
    if (options_.tls == TlsMode::StartTls)
      return fail(FailureReason::StartTlsUnavailable, "server does not offer STARTTLS");
    if (!options_.username.empty())
      return fail(FailureReason::StartTlsUnavailable,
                  "server does not offer STARTTLS; refusing to send credentials in clear text");
  }
  return start_auth();
}

HandshakeAction ClientHandshake::start_auth() {
  if (options_.username.empty()) {
    step_ = Step::Done;
    return HandshakeAction{Kind::Ready};
  }
  if (!tls_active_)
    return fail(FailureReason::AuthFailed, "refusing to send credentials without TLS");
  if (options_.auth != UpstreamAuth::Password) return start_oauth();
  if (capabilities_.supports_auth("PLAIN")) {
    std::string token;
    token.push_back('\0');
    token += options_.username;
    token.push_back('\0');
    token += options_.password;
    return send(Step::AuthPlain, "AUTH PLAIN " + base64_encode(token), true);
  }
  if (capabilities_.supports_auth("LOGIN")) return send(Step::AuthLoginStart, "AUTH LOGIN");
  return fail(FailureReason::AuthFailed,
              "server offers no supported AUTH mechanism (PLAIN, LOGIN)");
}

HandshakeAction ClientHandshake::start_oauth() {
  const std::string mechanism = sasl_name(options_.auth);
  if (!capabilities_.supports_auth(mechanism)) {
    std::string offered;
    for (const std::string& name : capabilities_.auth_mechanisms) offered += " " + name;
    return fail(FailureReason::AuthFailed,
                "server does not offer AUTH " + mechanism +
                    " (it offers:" + (offered.empty() ? std::string(" nothing") : offered) + ")");
  }
  std::string response;
  // ^A separates the fields. "\x01" "auth" stays two literals: "\x01auth" would be
  // read as the hex escape \x01a.
  if (options_.auth == UpstreamAuth::XOAuth2) {
    response = "user=" + options_.username +
               "\x01"
               "auth=Bearer " +
               options_.oauth_token + "\x01\x01";
  } else {
    response = "n,a=" + gs2_saslname(options_.username) + ",\x01";
    if (!options_.oauth_host.empty()) response += "host=" + options_.oauth_host + "\x01";
    if (options_.oauth_port != 0)
      response += "port=" + std::to_string(options_.oauth_port) + "\x01";
    response += "auth=Bearer " + options_.oauth_token + "\x01\x01";
  }
  oauth_error_.clear();
  // RFC 4954 initial response: one round trip instead of two.
  return send(Step::AuthOAuth, "AUTH " + mechanism + " " + base64_encode(response), true);
}

HandshakeAction ClientHandshake::refuse_token(const Reply& reply) {
  std::string detail = std::string(sasl_name(options_.auth)) + " token refused: " + reply.summary();
  if (!oauth_error_.empty()) detail += " (server said " + oauth_error_ + ")";
  HandshakeAction action = fail(FailureReason::AuthFailed, std::move(detail));
  // 4xx is a temporary server problem, not a verdict on the token.
  action.token_refused = reply.code == 535 || reply.permanent();
  if (action.token_refused) step_ = Step::TokenRefused;
  return action;
}

HandshakeAction ClientHandshake::retry_with_token(std::string token) {
  if (step_ != Step::TokenRefused)
    return fail(FailureReason::Protocol, "token retry without a refused token");
  options_.oauth_token = std::move(token);
  return start_oauth();
}

HandshakeAction ClientHandshake::on_tls_established() {
  if (step_ != Step::TlsHandshake)
    return fail(FailureReason::Protocol, "TLS established without a STARTTLS exchange");
  tls_active_ = true;
  // RFC 3207 4.2: everything learned before TLS is void.
  capabilities_ = Capabilities{};
  return send(Step::Ehlo, "EHLO " + options_.helo_name);
}

}  // namespace portrelay::smtp
