#pragma once
// Salted, deliberately slow password hashes for the users file, using OpenSSL's scrypt:
//   $scrypt$ln=15,r=8,p=1$<salt base64>$<hash base64>
#include <string>

namespace portrelay::server {

struct ScryptParameters {
  unsigned log2_n = 15;  // N = 32768: about 32 MiB and tens of milliseconds per check
  unsigned r = 8;
  unsigned p = 1;
};

// Throws std::runtime_error if OpenSSL fails.
std::string hash_password(const std::string& password, ScryptParameters parameters = {});
// False for a wrong password or a malformed hash string. Constant-time comparison.
bool verify_password(const std::string& password, const std::string& encoded);
// True if `encoded` looks like a hash this module produced (used to validate files).
bool is_password_hash(const std::string& encoded);

}  // namespace portrelay::server
