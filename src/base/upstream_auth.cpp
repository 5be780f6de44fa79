#include "portrelay/base/upstream_auth.hpp"

namespace portrelay {

const char* to_string(UpstreamAuth auth) {
  switch (auth) {
    case UpstreamAuth::Password:
      return "password";
    case UpstreamAuth::XOAuth2:
      return "xoauth2";
    case UpstreamAuth::OAuthBearer:
      return "oauthbearer";
  }
  return "unknown";
}

std::optional<UpstreamAuth> parse_upstream_auth(std::string_view text) {
  for (UpstreamAuth auth :
       {UpstreamAuth::Password, UpstreamAuth::XOAuth2, UpstreamAuth::OAuthBearer})
    if (text == to_string(auth)) return auth;
  return std::nullopt;
}

const char* sasl_name(UpstreamAuth auth) {
  switch (auth) {
    case UpstreamAuth::Password:
      return "PLAIN/LOGIN";
    case UpstreamAuth::XOAuth2:
      return "XOAUTH2";
    case UpstreamAuth::OAuthBearer:
      return "OAUTHBEARER";
  }
  return "unknown";
}

}  // namespace portrelay
