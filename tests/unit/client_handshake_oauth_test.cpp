// XOAUTH2 and OAUTHBEARER (RFC 7628) in the client handshake, byte by byte: the exact SASL
// strings, the 334 error-challenge dance on a refused token, mechanism selection and the
// retry with a fresher token.
#include <gtest/gtest.h>

#include <string>

#include "portrelay/smtp/client_handshake.hpp"

namespace portrelay::smtp {
namespace {

using portrelay::FailureReason;
using portrelay::TlsMode;
using portrelay::UpstreamAuth;
using Kind = HandshakeAction::Kind;

constexpr char kToken[] = "ya29.tok-EN";
// base64("user=alice@example.com\x01auth=Bearer ya29.tok-EN\x01\x01")
constexpr char kXOAuth2Response[] =
    "dXNlcj1hbGljZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnRvay1FTgEB";
// base64("n,a=alice@example.com,\x01host=smtp.up.test\x01port=587\x01auth=Bearer
// ya29.tok-EN\x01\x01")
constexpr char kOAuthBearerResponse[] =
    "bixhPWFsaWNlQGV4YW1wbGUuY29tLAFob3N0PXNtdHAudXAudGVzdAFwb3J0PTU4NwFhdXRoPUJlYXJlciB5YTI5LnRv"
    "ay1FTgEB";
// base64 of Google's documented error JSON: {"status":"401","schemes":"Bearer","scope":...}
constexpr char kErrorChallenge[] =
    "334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNv"
    "bS8ifQ==\r\n";

Reply wire(std::string_view text) {
  ReplyParser parser;
  parser.feed(text);
  auto reply = parser.next();
  EXPECT_TRUE(reply.has_value()) << text;
  return reply.value_or(Reply{});
}

ClientHandshake::Options oauth(UpstreamAuth auth, std::string username = "alice@example.com") {
  ClientHandshake::Options o;
  o.helo_name = "relay.test";
  o.tls = TlsMode::Implicit;
  o.username = std::move(username);
  o.auth = auth;
  o.oauth_token = kToken;
  o.oauth_host = "smtp.up.test";
  o.oauth_port = 587;
  return o;
}

// Implicit TLS, greeting and EHLO done; returns the action after the EHLO reply.
HandshakeAction after_ehlo(ClientHandshake& handshake, std::string_view ehlo_reply) {
  handshake.mark_tls_active();
  EXPECT_EQ(handshake.on_reply(wire("220 smtp.up.test ESMTP\r\n")).data, "EHLO relay.test\r\n");
  return handshake.on_reply(wire(ehlo_reply));
}

void expect_send(const HandshakeAction& action, std::string_view data, bool sensitive) {
  EXPECT_EQ(action.kind, Kind::Send);
  EXPECT_EQ(action.data, data);
  EXPECT_EQ(action.sensitive, sensitive);
}

void expect_token_refused(const HandshakeAction& action) {
  EXPECT_EQ(action.kind, Kind::Fail);
  EXPECT_EQ(action.reason, FailureReason::AuthFailed);
  EXPECT_TRUE(action.token_refused);
  EXPECT_EQ(action.detail.find(kToken), std::string::npos) << action.detail;
  EXPECT_EQ(action.detail.find(kXOAuth2Response), std::string::npos) << action.detail;
}

constexpr char kEhloBoth[] = "250-smtp.up.test\r\n250 AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER\r\n";

TEST(ClientHandshakeOAuthTest, XOAuth2SendsInitialResponseAndSucceeds) {
  ClientHandshake handshake(oauth(UpstreamAuth::XOAuth2));
  expect_send(after_ehlo(handshake, kEhloBoth),
              std::string("AUTH XOAUTH2 ") + kXOAuth2Response + "\r\n", true);
  EXPECT_EQ(handshake.on_reply(wire("235 2.7.0 Accepted\r\n")).kind, Kind::Ready);
  EXPECT_TRUE(handshake.authenticated());
}

TEST(ClientHandshakeOAuthTest, OAuthBearerSendsGs2HeaderHostPortAndSucceeds) {
  ClientHandshake handshake(oauth(UpstreamAuth::OAuthBearer));
  expect_send(after_ehlo(handshake, kEhloBoth),
              std::string("AUTH OAUTHBEARER ") + kOAuthBearerResponse + "\r\n", true);
  EXPECT_EQ(handshake.on_reply(wire("235 2.7.0 Accepted\r\n")).kind, Kind::Ready);
  EXPECT_TRUE(handshake.authenticated());
}

TEST(ClientHandshakeOAuthTest, OAuthBearerEscapesCommaAndEqualsInUser) {
  auto options = oauth(UpstreamAuth::OAuthBearer, "a=b,c");
  options.oauth_token = "T";
  options.oauth_host.clear();
  options.oauth_port = 0;
  ClientHandshake handshake(options);
  // base64("n,a=a=3Db=2Cc,\x01auth=Bearer T\x01\x01")
  expect_send(after_ehlo(handshake, kEhloBoth),
              "AUTH OAUTHBEARER bixhPWE9M0RiPTJDYywBYXV0aD1CZWFyZXIgVAEB\r\n", true);
}

TEST(ClientHandshakeOAuthTest, XOAuth2ErrorChallengeIsAnsweredWithEmptyLineThen535) {
  ClientHandshake handshake(oauth(UpstreamAuth::XOAuth2));
  after_ehlo(handshake, kEhloBoth);
  // The acknowledgement carries no credential: it may be logged.
  expect_send(handshake.on_reply(wire(kErrorChallenge)), "\r\n", false);
  auto failed = handshake.on_reply(wire("535 5.7.8 Username and Password not accepted\r\n"));
  expect_token_refused(failed);
  EXPECT_NE(failed.detail.find("535 5.7.8"), std::string::npos) << failed.detail;
  EXPECT_NE(failed.detail.find("\"status\":\"401\""), std::string::npos) << failed.detail;
  EXPECT_FALSE(handshake.authenticated());
}

TEST(ClientHandshakeOAuthTest, OAuthBearerErrorChallengeIsAnsweredWithCtrlAThen535) {
  ClientHandshake handshake(oauth(UpstreamAuth::OAuthBearer));
  after_ehlo(handshake, kEhloBoth);
  expect_send(handshake.on_reply(wire(kErrorChallenge)), "AQ==\r\n", false);
  expect_token_refused(handshake.on_reply(wire("535 5.7.8 Authentication failed\r\n")));
}

TEST(ClientHandshakeOAuthTest, Direct535IsTokenRefused) {
  ClientHandshake handshake(oauth(UpstreamAuth::XOAuth2));
  after_ehlo(handshake, kEhloBoth);
  expect_token_refused(handshake.on_reply(wire("535 5.7.3 Authentication unsuccessful\r\n")));
}

TEST(ClientHandshakeOAuthTest, TemporaryFailureIsNotATokenVerdict) {
  ClientHandshake handshake(oauth(UpstreamAuth::XOAuth2));
  after_ehlo(handshake, kEhloBoth);
  auto action = handshake.on_reply(wire("454 4.7.0 Temporary authentication failure\r\n"));
  EXPECT_EQ(action.kind, Kind::Fail);
  EXPECT_EQ(action.reason, FailureReason::AuthFailed);
  EXPECT_FALSE(action.token_refused);
  EXPECT_EQ(handshake.retry_with_token("other").reason, FailureReason::Protocol);
}

TEST(ClientHandshakeOAuthTest, RefusedTokenCanBeRetriedWithAFreshOneOnTheSameSession) {
  ClientHandshake handshake(oauth(UpstreamAuth::XOAuth2));
  after_ehlo(handshake, kEhloBoth);
  expect_send(handshake.on_reply(wire(kErrorChallenge)), "\r\n", false);
  expect_token_refused(handshake.on_reply(wire("535 5.7.8 Not accepted\r\n")));
  // base64("user=alice@example.com\x01auth=Bearer fresh-TOKEN\x01\x01")
  expect_send(handshake.retry_with_token("fresh-TOKEN"),
              "AUTH XOAUTH2 dXNlcj1hbGljZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciBmcmVzaC1UT0tFTgEB\r\n",
              true);
  EXPECT_EQ(handshake.on_reply(wire("235 2.7.0 Accepted\r\n")).kind, Kind::Ready);
  EXPECT_TRUE(handshake.authenticated());
}

TEST(ClientHandshakeOAuthTest, RetryOnlyAfterARefusedToken) {
  ClientHandshake handshake(oauth(UpstreamAuth::XOAuth2));
  after_ehlo(handshake, kEhloBoth);
  EXPECT_EQ(handshake.retry_with_token("x").kind, Kind::Fail);
}

TEST(ClientHandshakeOAuthTest, MechanismNotAdvertisedIsAuthFailedNamingWhatIsOffered) {
  for (UpstreamAuth auth : {UpstreamAuth::XOAuth2, UpstreamAuth::OAuthBearer}) {
    SCOPED_TRACE(to_string(auth));
    ClientHandshake handshake(oauth(auth));
    auto action = after_ehlo(handshake, "250-smtp.up.test\r\n250 AUTH PLAIN LOGIN\r\n");
    EXPECT_EQ(action.kind, Kind::Fail);
    EXPECT_EQ(action.reason, FailureReason::AuthFailed);
    EXPECT_FALSE(action.token_refused);
    EXPECT_NE(action.detail.find(std::string("does not offer AUTH ") + sasl_name(auth)),
              std::string::npos)
        << action.detail;
    EXPECT_NE(action.detail.find("PLAIN LOGIN"), std::string::npos) << action.detail;
  }
}

TEST(ClientHandshakeOAuthTest, OAuthNeverFallsBackToPlain) {
  // Only PLAIN offered and a password absent: no AUTH PLAIN with an empty password.
  ClientHandshake handshake(oauth(UpstreamAuth::OAuthBearer));
  auto action = after_ehlo(handshake, "250-smtp.up.test\r\n250 AUTH PLAIN\r\n");
  EXPECT_EQ(action.kind, Kind::Fail);
  EXPECT_TRUE(action.data.empty());
}

TEST(ClientHandshakeOAuthTest, NeverSendsTheTokenWithoutTls) {
  auto options = oauth(UpstreamAuth::XOAuth2);
  options.tls = TlsMode::Opportunistic;
  ClientHandshake handshake(options);
  EXPECT_EQ(handshake.on_reply(wire("220 smtp.up.test ESMTP\r\n")).kind, Kind::Send);
  auto action = handshake.on_reply(wire(kEhloBoth));
  EXPECT_EQ(action.kind, Kind::Fail);
  EXPECT_TRUE(action.data.empty());
}

}  // namespace
}  // namespace portrelay::smtp
