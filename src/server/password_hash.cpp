#include "portrelay/server/password_hash.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <optional>
#include <stdexcept>
#include <vector>

#include "portrelay/smtp/base64.hpp"

namespace portrelay::server {
namespace {

constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;
constexpr unsigned kMaxLog2N = 20;  // refuse absurd costs from a tampered file

struct ParsedHash {
  ScryptParameters parameters;
  std::string salt;
  std::string hash;
};

std::optional<std::string> derive(const std::string& password, const std::string& salt,
                                  const ScryptParameters& parameters, std::size_t length) {
  std::string out(length, '\0');
  std::uint64_t n = 1ull << parameters.log2_n;
  // Memory needed is about 128 * r * N bytes; give OpenSSL a little more than that.
  std::uint64_t max_memory = 130ull * parameters.r * n + (1u << 20);
  if (EVP_PBE_scrypt(password.data(), password.size(),
                     reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), n,
                     parameters.r, parameters.p, max_memory,
                     reinterpret_cast<unsigned char*>(out.data()), out.size()) != 1)
    return std::nullopt;
  return out;
}

std::optional<ParsedHash> parse(const std::string& encoded) {
  // $scrypt$ln=15,r=8,p=1$salt$hash
  unsigned ln = 0, r = 0, p = 0;
  int consumed = 0;
  if (std::sscanf(encoded.c_str(), "$scrypt$ln=%u,r=%u,p=%u$%n", &ln, &r, &p, &consumed) != 3 ||
      consumed <= 0)
    return std::nullopt;
  if (ln < 1 || ln > kMaxLog2N || r < 1 || r > 32 || p < 1 || p > 16) return std::nullopt;
  std::string rest = encoded.substr(static_cast<std::size_t>(consumed));
  auto dollar = rest.find('$');
  if (dollar == std::string::npos) return std::nullopt;
  auto salt = smtp::base64_decode(rest.substr(0, dollar));
  auto hash = smtp::base64_decode(rest.substr(dollar + 1));
  if (!salt || !hash || salt->empty() || hash->size() < 16) return std::nullopt;
  return ParsedHash{{ln, r, p}, *salt, *hash};
}

}  // namespace

std::string hash_password(const std::string& password, ScryptParameters parameters) {
  std::string salt(kSaltBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size())) != 1)
    throw std::runtime_error("cannot get random bytes for the salt");
  auto hash = derive(password, salt, parameters, kHashBytes);
  if (!hash) throw std::runtime_error("scrypt failed");
  return "$scrypt$ln=" + std::to_string(parameters.log2_n) + ",r=" + std::to_string(parameters.r) +
         ",p=" + std::to_string(parameters.p) + "$" + smtp::base64_encode(salt) + "$" +
         smtp::base64_encode(*hash);
}

bool is_password_hash(const std::string& encoded) { return parse(encoded).has_value(); }

bool verify_password(const std::string& password, const std::string& encoded) {
  auto parsed = parse(encoded);
  if (!parsed) return false;
  auto candidate = derive(password, parsed->salt, parsed->parameters, parsed->hash.size());
  return candidate &&
         CRYPTO_memcmp(candidate->data(), parsed->hash.data(), parsed->hash.size()) == 0;
}

}  // namespace portrelay::server
