#pragma once
// An identity a provider has verified: what `[rewrite]` gives local mail at acceptance and
// what an `[[upstream]]` gives a message sent through it.
#include <string>

namespace portrelay::config {

struct SenderIdentity {
  std::string sender;        // envelope MAIL FROM ("alerts@example.com"); "" keeps it
  std::string from;          // From header as written ("VM alerts <alerts@example.com>")
  std::string from_address;  // the address inside `from` ("alerts@example.com")
  // Rewrite every sender, not only local ones: providers that allow one identity per
  // account (Microsoft 365, msmtp's allow_from_override off).
  bool all_senders = false;
  bool configured() const { return !sender.empty() || !from.empty(); }
};

}  // namespace portrelay::config
