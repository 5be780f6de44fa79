// libFuzzer target: the upstream handshake (greeting, EHLO, STARTTLS, AUTH) fed arbitrary
// replies, including arbitrary EHLO extension lists and AUTH challenges. Invariants: a
// credential is never sent before TLS is established (whatever the TLS mode, and in
// "none" mode never at all); every Send is one CRLF-terminated line; after Ready or Fail
// nothing more is asked.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "portrelay/smtp/client_handshake.hpp"
#include "portrelay/smtp/reply.hpp"

namespace {

using namespace portrelay::smtp;
using Kind = HandshakeAction::Kind;

const std::string kPassword = "fuzz-secret-password";
const std::string kUser = "fuzz-user";

bool carries_credential(const std::string& line) {
  // AUTH PLAIN's token, AUTH LOGIN's user and password lines are base64; look for the
  // base64 forms too (they are what would travel).
  static const std::string user64 = "ZnV6ei11c2Vy";                     // "fuzz-user"
  static const std::string password64 = "ZnV6ei1zZWNyZXQtcGFzc3dvcmQ";  // "fuzz-secret-password"
  return line.find(kPassword) != std::string::npos || line.find(password64) != std::string::npos ||
         line.find(user64) != std::string::npos || line.rfind("AUTH", 0) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  ClientHandshake::Options options;
  options.helo_name = "relay.fuzz.test";
  const portrelay::TlsMode modes[] = {
      portrelay::TlsMode::Implicit, portrelay::TlsMode::StartTls,
      portrelay::TlsMode::Opportunistic, portrelay::TlsMode::None};
  options.tls = modes[data[0] % 4];
  if (data[0] & 4) {
    options.username = kUser;
    options.password = kPassword;
  }
  ClientHandshake handshake(options);
  bool tls = false;
  if (options.tls == portrelay::TlsMode::Implicit) {
    handshake.mark_tls_active();
    tls = true;
  }
  // The rest of the input is the upstream's byte stream; a 0xff byte means "the TLS
  // handshake completed" when one was asked for.
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string fed;  // what the parser actually got
  bool awaiting_tls = false;
  bool finished = false;
  ReplyParser parser;
  auto check = [&](const HandshakeAction& action) {
    if (finished) std::abort();
    switch (action.kind) {
      case Kind::Send:
        if (action.data.size() < 2 || action.data.substr(action.data.size() - 2) != "\r\n" ||
            action.data.find('\n') != action.data.size() - 1)
          std::abort();
        if (carries_credential(action.data) || action.sensitive) {
          if (!tls || options.tls == portrelay::TlsMode::None) std::abort();
        }
        if (!action.sensitive && action.data.find(kPassword) != std::string::npos) std::abort();
        break;
      case Kind::StartTls:
        if (tls || options.tls == portrelay::TlsMode::None) std::abort();
        awaiting_tls = true;
        parser.clear();
        break;
      case Kind::Ready:
        if (options.tls == portrelay::TlsMode::StartTls && !tls) std::abort();
        if (!options.username.empty() && !handshake.authenticated()) std::abort();
        finished = true;
        break;
      case Kind::Fail:
        // The detail may quote the upstream's reply, but never our password on its own.
        if (action.detail.find(kPassword) != std::string::npos &&
            fed.find(kPassword) == std::string::npos)
          std::abort();
        finished = true;
        break;
    }
  };
  for (std::size_t pos = 0; pos < stream.size() && !finished; ++pos) {
    if (static_cast<unsigned char>(stream[pos]) == 0xff) {
      if (awaiting_tls) {
        awaiting_tls = false;
        tls = true;
        check(handshake.on_tls_established());
      }
      continue;
    }
    if (awaiting_tls) continue;  // plaintext injected before TLS is dropped
    parser.feed(stream.substr(pos, 1));
    fed.push_back(stream[pos]);
    if (parser.failed()) break;
    while (!finished && !awaiting_tls) {
      auto reply = parser.next();
      if (!reply) break;
      check(handshake.on_reply(*reply));
    }
  }
  return 0;
}
