#pragma once
// Which SASL mechanism the relay uses to log in to an upstream. Shared vocabulary: the
// config names it (`auth = ...`), the SMTP client handshake obeys it, `check` reports it.
#include <optional>
#include <string_view>

namespace portrelay {

enum class UpstreamAuth {
  Password,     // PLAIN, else LOGIN, whichever the server offers (username + password)
  XOAuth2,      // XOAUTH2 (Google/Microsoft): username + OAuth 2.0 bearer token
  OAuthBearer,  // OAUTHBEARER (RFC 7628): username + OAuth 2.0 bearer token
};

const char* to_string(UpstreamAuth auth);  // "password" | "xoauth2" | "oauthbearer"
std::optional<UpstreamAuth> parse_upstream_auth(std::string_view text);
// The SASL mechanism name as advertised in EHLO, for the OAuth mechanisms.
const char* sasl_name(UpstreamAuth auth);  // "XOAUTH2" | "OAUTHBEARER" | "PLAIN/LOGIN"

}  // namespace portrelay
