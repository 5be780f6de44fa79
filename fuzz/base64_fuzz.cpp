// libFuzzer target: base64 (AUTH PLAIN/LOGIN responses, users-file hashes). decode() either
// refuses or returns bytes that encode back to exactly the input (canonical form), and
// encode() of anything decodes back to it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "portrelay/smtp/base64.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portrelay::smtp;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto decoded = base64_decode(input)) {
    if (decoded->size() > input.size()) std::abort();
    auto again = base64_decode(base64_encode(*decoded));
    if (!again || *again != *decoded) std::abort();
  }
  const std::string encoded = base64_encode(input);
  if (encoded.size() != (size + 2) / 3 * 4) std::abort();
  auto decoded = base64_decode(encoded);
  if (!decoded || *decoded != input) std::abort();
  return 0;
}
