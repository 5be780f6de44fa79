#include "portrelay/smtp/client_handshake.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portrelay::smtp {
namespace {

using portrelay::FailureReason;
using portrelay::TlsMode;
using Kind = HandshakeAction::Kind;

constexpr char kPassword[] = "s3cret-Pa55";
constexpr char kPasswordBase64[] = "czNjcmV0LVBhNTU=";
constexpr char kPlainToken[] = "AGFsaWNlAHMzY3JldC1QYTU1";  // "\0alice\0s3cret-Pa55"

// Replies are built from wire text, the way the upstream connection gets them.
Reply wire(std::string_view text) {
  ReplyParser parser;
  parser.feed(text);
  auto reply = parser.next();
  EXPECT_TRUE(reply.has_value()) << text;
  EXPECT_FALSE(parser.failed()) << parser.error();
  EXPECT_EQ(parser.buffered(), 0u) << text;
  return reply.value_or(Reply{});
}

constexpr char kGreeting[] = "220 smtp.up.test ESMTP ready\r\n";

void expect_send(const HandshakeAction& action, std::string_view data, bool sensitive = false) {
  EXPECT_EQ(action.kind, Kind::Send);
  EXPECT_EQ(action.data, data);
  EXPECT_EQ(action.sensitive, sensitive);
}

void expect_fail(const HandshakeAction& action, FailureReason reason) {
  EXPECT_EQ(action.kind, Kind::Fail);
  EXPECT_EQ(action.reason, reason) << "got " << portrelay::to_string(action.reason);
  EXPECT_TRUE(action.data.empty());
  EXPECT_FALSE(action.detail.empty());
}

ClientHandshake::Options options(TlsMode tls, std::string username = "",
                                 std::string password = "") {
  ClientHandshake::Options o;
  o.helo_name = "relay.test";
  o.tls = tls;
  o.username = std::move(username);
  o.password = std::move(password);
  return o;
}

ClientHandshake::Options with_credentials(TlsMode tls) { return options(tls, "alice", kPassword); }

// Greeting accepted, EHLO sent.
void greet(ClientHandshake& handshake) {
  expect_send(handshake.on_reply(wire(kGreeting)), "EHLO relay.test\r\n");
}

// Implicit TLS, greeting and EHLO done; returns the action after the EHLO reply.
HandshakeAction implicit_tls_ehlo(ClientHandshake& handshake, std::string_view ehlo_reply) {
  handshake.mark_tls_active();
  greet(handshake);
  return handshake.on_reply(wire(ehlo_reply));
}

void expect_no_secret(const HandshakeAction& action) {
  EXPECT_EQ(action.detail.find(kPassword), std::string::npos) << action.detail;
  EXPECT_EQ(action.detail.find(kPasswordBase64), std::string::npos) << action.detail;
  EXPECT_EQ(action.detail.find(kPlainToken), std::string::npos) << action.detail;
}

TEST(ClientHandshakeTest, GreetingLeadsToEhlo) {
  ClientHandshake handshake(options(TlsMode::StartTls));
  greet(handshake);
  EXPECT_FALSE(handshake.tls_active());
  EXPECT_FALSE(handshake.authenticated());
}

TEST(ClientHandshakeTest, NonGreetingIsRejected) {
  for (const char* text : {"554 5.7.1 Go away\r\n", "421 4.3.2 Busy\r\n", "250 what\r\n"}) {
    SCOPED_TRACE(text);
    ClientHandshake handshake(options(TlsMode::StartTls));
    auto action = handshake.on_reply(wire(text));
    expect_fail(action, FailureReason::GreetingRejected);
    EXPECT_NE(action.detail.find(std::string(text, 3)), std::string::npos) << action.detail;
  }
}

TEST(ClientHandshakeTest, StarttlsThenEhloAgainWithFreshCapabilities) {
  ClientHandshake handshake(options(TlsMode::StartTls));
  greet(handshake);
  expect_send(handshake.on_reply(wire("250-smtp.up.test\r\n"
                                      "250-PIPELINING\r\n"
                                      "250-SIZE 5000\r\n"
                                      "250-STARTTLS\r\n"
                                      "250 AUTH PLAIN\r\n")),
              "STARTTLS\r\n");
  EXPECT_TRUE(handshake.capabilities().starttls);
  EXPECT_TRUE(handshake.capabilities().pipelining);
  EXPECT_EQ(handshake.on_reply(wire("220 2.0.0 Ready to start TLS\r\n")).kind, Kind::StartTls);
  EXPECT_FALSE(handshake.tls_active());

  expect_send(handshake.on_tls_established(), "EHLO relay.test\r\n");
  EXPECT_TRUE(handshake.tls_active());
  // RFC 3207: nothing learned before TLS survives it.
  EXPECT_FALSE(handshake.capabilities().starttls);
  EXPECT_FALSE(handshake.capabilities().pipelining);
  EXPECT_FALSE(handshake.capabilities().size);
  EXPECT_TRUE(handshake.capabilities().auth_mechanisms.empty());

  EXPECT_EQ(handshake.on_reply(wire("250-smtp.up.test\r\n250 8BITMIME\r\n")).kind, Kind::Ready);
  EXPECT_TRUE(handshake.capabilities().eight_bit_mime);
  EXPECT_FALSE(handshake.capabilities().pipelining);
  EXPECT_FALSE(handshake.authenticated());
}

TEST(ClientHandshakeTest, AuthUsesMechanismsAdvertisedAfterTls) {
  ClientHandshake handshake(with_credentials(TlsMode::StartTls));
  greet(handshake);
  // Before TLS: PLAIN (possibly injected by a man in the middle).
  expect_send(handshake.on_reply(wire("250-smtp.up.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n")),
              "STARTTLS\r\n");
  EXPECT_EQ(handshake.on_reply(wire("220 Go ahead\r\n")).kind, Kind::StartTls);
  expect_send(handshake.on_tls_established(), "EHLO relay.test\r\n");
  // After TLS only LOGIN: the PLAIN seen in clear text must be forgotten.
  expect_send(handshake.on_reply(wire("250-smtp.up.test\r\n250 AUTH LOGIN\r\n")), "AUTH LOGIN\r\n");
}

TEST(ClientHandshakeTest, StarttlsModeFailsWhenNotOffered) {
  ClientHandshake handshake(options(TlsMode::StartTls));
  greet(handshake);
  expect_fail(handshake.on_reply(wire("250-smtp.up.test\r\n250 PIPELINING\r\n")),
              FailureReason::StartTlsUnavailable);
  EXPECT_FALSE(handshake.tls_active());
}

TEST(ClientHandshakeTest, StarttlsModeFailsWhenRefused) {
  ClientHandshake handshake(options(TlsMode::StartTls));
  greet(handshake);
  expect_send(handshake.on_reply(wire("250-smtp.up.test\r\n250 STARTTLS\r\n")), "STARTTLS\r\n");
  expect_fail(handshake.on_reply(wire("454 4.7.0 TLS not available\r\n")),
              FailureReason::StartTlsUnavailable);
}

TEST(ClientHandshakeTest, OpportunisticWithoutStarttlsGoesPlain) {
  ClientHandshake handshake(options(TlsMode::Opportunistic));
  greet(handshake);
  EXPECT_EQ(handshake.on_reply(wire("250-smtp.up.test\r\n250 PIPELINING\r\n")).kind, Kind::Ready);
  EXPECT_FALSE(handshake.tls_active());
  EXPECT_TRUE(handshake.capabilities().pipelining);
}

TEST(ClientHandshakeTest, OpportunisticStarttlsRefusedGoesPlain) {
  ClientHandshake handshake(options(TlsMode::Opportunistic));
  greet(handshake);
  expect_send(handshake.on_reply(wire("250-smtp.up.test\r\n250 STARTTLS\r\n")), "STARTTLS\r\n");
  EXPECT_EQ(handshake.on_reply(wire("454 4.7.0 TLS not available\r\n")).kind, Kind::Ready);
  EXPECT_FALSE(handshake.tls_active());
}

TEST(ClientHandshakeTest, OpportunisticWithCredentialsNeverAuthenticatesInClear) {
  {
    ClientHandshake handshake(with_credentials(TlsMode::Opportunistic));
    greet(handshake);
    auto action = handshake.on_reply(wire("250-smtp.up.test\r\n250 AUTH PLAIN LOGIN\r\n"));
    expect_fail(action, FailureReason::StartTlsUnavailable);
    expect_no_secret(action);
  }
  {
    ClientHandshake handshake(with_credentials(TlsMode::Opportunistic));
    greet(handshake);
    expect_send(handshake.on_reply(wire("250-smtp.up.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n")),
                "STARTTLS\r\n");
    expect_fail(handshake.on_reply(wire("454 4.7.0 TLS not available\r\n")),
                FailureReason::StartTlsUnavailable);
  }
}

TEST(ClientHandshakeTest, ImplicitTlsSkipsStarttlsAndAuthenticatesWithPlain) {
  ClientHandshake handshake(with_credentials(TlsMode::Implicit));
  auto action = implicit_tls_ehlo(handshake,
                                  "250-smtp.up.test\r\n"
                                  "250-STARTTLS\r\n"
                                  "250-AUTH LOGIN PLAIN\r\n"
                                  "250 ENHANCEDSTATUSCODES\r\n");
  expect_send(action, std::string("AUTH PLAIN ") + kPlainToken + "\r\n", /*sensitive=*/true);
  EXPECT_FALSE(handshake.authenticated());
  EXPECT_EQ(handshake.on_reply(wire("235 2.7.0 Authentication successful\r\n")).kind, Kind::Ready);
  EXPECT_TRUE(handshake.authenticated());
  EXPECT_TRUE(handshake.tls_active());
}

TEST(ClientHandshakeTest, PlainTokenIsBase64OfNulUserNulPass) {
  ClientHandshake handshake(options(TlsMode::Implicit, "user", "pass"));
  expect_send(implicit_tls_ehlo(handshake, "250-smtp.up.test\r\n250 AUTH PLAIN\r\n"),
              "AUTH PLAIN AHVzZXIAcGFzcw==\r\n", /*sensitive=*/true);
}

TEST(ClientHandshakeTest, ImplicitTlsWithoutCredentialsIsReadyAfterEhlo) {
  ClientHandshake handshake(options(TlsMode::Implicit));
  EXPECT_EQ(implicit_tls_ehlo(handshake, "250-smtp.up.test\r\n250 AUTH PLAIN\r\n").kind,
            Kind::Ready);
  EXPECT_FALSE(handshake.authenticated());
}

TEST(ClientHandshakeTest, LoginWhenPlainIsNotOffered) {
  ClientHandshake handshake(with_credentials(TlsMode::Implicit));
  expect_send(implicit_tls_ehlo(handshake, "250-smtp.up.test\r\n250 AUTH LOGIN CRAM-MD5\r\n"),
              "AUTH LOGIN\r\n", /*sensitive=*/false);
  expect_send(handshake.on_reply(wire("334 VXNlcm5hbWU6\r\n")), "YWxpY2U=\r\n", true);
  expect_send(handshake.on_reply(wire("334 UGFzc3dvcmQ6\r\n")),
              std::string(kPasswordBase64) + "\r\n", true);
  EXPECT_EQ(handshake.on_reply(wire("235 2.7.0 Accepted\r\n")).kind, Kind::Ready);
  EXPECT_TRUE(handshake.authenticated());
}

TEST(ClientHandshakeTest, PlainRejectedIsAuthFailedWithoutSecrets) {
  ClientHandshake handshake(with_credentials(TlsMode::Implicit));
  implicit_tls_ehlo(handshake, "250-smtp.up.test\r\n250 AUTH PLAIN\r\n");
  auto action = handshake.on_reply(wire("535 5.7.8 Authentication credentials invalid\r\n"));
  expect_fail(action, FailureReason::AuthFailed);
  EXPECT_NE(action.detail.find("535 5.7.8"), std::string::npos) << action.detail;
  expect_no_secret(action);
  EXPECT_FALSE(handshake.authenticated());
}

TEST(ClientHandshakeTest, LoginRejectedIsAuthFailedWithoutSecrets) {
  ClientHandshake handshake(with_credentials(TlsMode::Implicit));
  implicit_tls_ehlo(handshake, "250-smtp.up.test\r\n250 AUTH LOGIN\r\n");
  handshake.on_reply(wire("334 VXNlcm5hbWU6\r\n"));
  handshake.on_reply(wire("334 UGFzc3dvcmQ6\r\n"));
  auto action = handshake.on_reply(wire("535 5.7.8 Bad credentials\r\n"));
  expect_fail(action, FailureReason::AuthFailed);
  expect_no_secret(action);
}

TEST(ClientHandshakeTest, LoginRefusedAtEachStepIsAuthFailed) {
  for (int refused_step = 0; refused_step < 2; ++refused_step) {
    SCOPED_TRACE(refused_step);
    ClientHandshake handshake(with_credentials(TlsMode::Implicit));
    implicit_tls_ehlo(handshake, "250-smtp.up.test\r\n250 AUTH LOGIN\r\n");
    if (refused_step == 1) handshake.on_reply(wire("334 VXNlcm5hbWU6\r\n"));
    auto action = handshake.on_reply(wire("504 5.5.4 Unrecognized mechanism\r\n"));
    expect_fail(action, FailureReason::AuthFailed);
    expect_no_secret(action);
  }
}

TEST(ClientHandshakeTest, NoUsableMechanismIsAuthFailed) {
  for (const char* ehlo : {"250-smtp.up.test\r\n250 AUTH CRAM-MD5 XOAUTH2\r\n",
                           "250-smtp.up.test\r\n250 PIPELINING\r\n"}) {
    SCOPED_TRACE(ehlo);
    ClientHandshake handshake(with_credentials(TlsMode::Implicit));
    expect_fail(implicit_tls_ehlo(handshake, ehlo), FailureReason::AuthFailed);
  }
}

TEST(ClientHandshakeTest, EhloRefusedFallsBackToHeloOnlyWithoutTlsOrAuth) {
  ClientHandshake handshake(options(TlsMode::None));
  greet(handshake);
  expect_send(handshake.on_reply(wire("502 5.5.2 Command not recognized\r\n")),
              "HELO relay.test\r\n");
  EXPECT_EQ(handshake.on_reply(wire("250 smtp.up.test\r\n")).kind, Kind::Ready);
  EXPECT_FALSE(handshake.capabilities().pipelining);
}

TEST(ClientHandshakeTest, HeloRefusedIsProtocolFailure) {
  ClientHandshake handshake(options(TlsMode::None));
  greet(handshake);
  handshake.on_reply(wire("500 5.5.1 What?\r\n"));
  expect_fail(handshake.on_reply(wire("501 5.5.4 No\r\n")), FailureReason::Protocol);
}

TEST(ClientHandshakeTest, EhloRefusedWithoutHeloFallback) {
  // STARTTLS and AUTH are ESMTP extensions: HELO cannot provide them.
  for (auto o :
       {options(TlsMode::StartTls), options(TlsMode::Implicit), with_credentials(TlsMode::None)}) {
    SCOPED_TRACE(portrelay::to_string(o.tls));
    ClientHandshake handshake(o);
    if (o.tls == TlsMode::Implicit) handshake.mark_tls_active();
    greet(handshake);
    expect_fail(handshake.on_reply(wire("502 5.5.2 Command not recognized\r\n")),
                FailureReason::Protocol);
  }
}

TEST(ClientHandshakeTest, EhloAnswered421IsClosed) {
  ClientHandshake handshake(options(TlsMode::None));
  greet(handshake);
  expect_fail(handshake.on_reply(wire("421 4.3.2 Shutting down\r\n")), FailureReason::Closed);
}

TEST(ClientHandshakeTest, ClosingDuringStarttlsOrAuthIsClosed) {
  {
    ClientHandshake handshake(options(TlsMode::Opportunistic));
    greet(handshake);
    handshake.on_reply(wire("250-smtp.up.test\r\n250 STARTTLS\r\n"));
    // Not a plain-text fallback: the server is going away.
    expect_fail(handshake.on_reply(wire("421 4.3.2 Bye\r\n")), FailureReason::Closed);
  }
  {
    ClientHandshake handshake(with_credentials(TlsMode::Implicit));
    implicit_tls_ehlo(handshake, "250-smtp.up.test\r\n250 AUTH PLAIN\r\n");
    // 421 says nothing about the credentials.
    auto action = handshake.on_reply(wire("421 4.4.2 Timeout\r\n"));
    expect_fail(action, FailureReason::Closed);
    expect_no_secret(action);
  }
}

TEST(ClientHandshakeTest, NoneModeWithCredentialsRefusesAuthInClear) {
  ClientHandshake handshake(with_credentials(TlsMode::None));
  greet(handshake);
  auto action = handshake.on_reply(wire("250-smtp.up.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"));
  expect_fail(action, FailureReason::AuthFailed);
  expect_no_secret(action);
  EXPECT_FALSE(handshake.tls_active());
}

TEST(ClientHandshakeTest, NoneModeIgnoresStarttls) {
  ClientHandshake handshake(options(TlsMode::None));
  greet(handshake);
  EXPECT_EQ(handshake.on_reply(wire("250-smtp.up.test\r\n250 STARTTLS\r\n")).kind, Kind::Ready);
  EXPECT_FALSE(handshake.tls_active());
}

TEST(ClientHandshakeTest, ReplyAfterReadyIsProtocolFailure) {
  ClientHandshake handshake(options(TlsMode::None));
  greet(handshake);
  handshake.on_reply(wire("250 smtp.up.test\r\n"));
  expect_fail(handshake.on_reply(wire("250 again\r\n")), FailureReason::Protocol);
}

TEST(ClientHandshakeTest, ReplyDuringTlsHandshakeIsProtocolFailure) {
  ClientHandshake handshake(options(TlsMode::StartTls));
  greet(handshake);
  handshake.on_reply(wire("250-smtp.up.test\r\n250 STARTTLS\r\n"));
  handshake.on_reply(wire("220 Go ahead\r\n"));
  // Plaintext injected behind the 220 must never be taken as a reply.
  expect_fail(handshake.on_reply(wire("250 injected\r\n")), FailureReason::Protocol);
}

TEST(ClientHandshakeTest, TlsEstablishedWithoutStarttlsIsProtocolFailure) {
  ClientHandshake handshake(options(TlsMode::StartTls));
  greet(handshake);
  expect_fail(handshake.on_tls_established(), FailureReason::Protocol);
  EXPECT_FALSE(handshake.tls_active());
}

// A name with CR/LF would put a second command on the wire behind EHLO: never sent.
TEST(ClientHandshake, RefusesToSendACommandHoldingALineBreak) {
  auto o = options(TlsMode::None);
  o.helo_name = "relay.test\r\nMAIL FROM:<evil@x>";
  ClientHandshake handshake(o);
  expect_fail(handshake.on_reply(wire(kGreeting)), FailureReason::Protocol);
}

}  // namespace
}  // namespace portrelay::smtp
