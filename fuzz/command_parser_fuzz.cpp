// libFuzzer target: the SMTP command parser (parse_command, parse_mail_from, parse_rcpt_to).
// Invariant: an accepted address, rebuilt the way the relay sends it upstream
// ("MAIL FROM:<address>" / "RCPT TO:<address>"), parses again to the same address, without
// parameters, and contains no control characters (nothing could end the upstream's
// command line early or smuggle a second command).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "portrelay/smtp/command.hpp"

namespace {

using namespace portrelay::smtp;

void check_round_trip(const PathArgument& path, bool rcpt) {
  for (char c : path.address) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) std::abort();
  }
  if (path.address.size() > 256) std::abort();
  for (const Parameter& parameter : path.parameters) {
    if (parameter.keyword.empty()) std::abort();
    for (char c : parameter.keyword + parameter.value)
      if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) std::abort();
  }
  const std::string line = (rcpt ? "RCPT TO:<" : "MAIL FROM:<") + path.address + ">";
  const Command command = parse_command(line);
  if (command.verb != (rcpt ? Verb::Rcpt : Verb::Mail)) std::abort();
  auto again = rcpt ? parse_rcpt_to(command.argument) : parse_mail_from(command.argument);
  if (!again || again->address != path.address || !again->parameters.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const Command command = parse_command(line);
  // The argument never has trailing spaces and the verb is upper case.
  if (!command.argument.empty() && command.argument.back() == ' ') std::abort();
  for (char c : command.verb_text)
    if (c >= 'a' && c <= 'z') std::abort();
  if (auto sender = parse_mail_from(command.argument)) {
    check_round_trip(*sender, false);
  } else if (sender.error().message.empty()) {
    std::abort();  // a refusal always says why
  }
  if (auto recipient = parse_rcpt_to(command.argument)) {
    if (recipient->address.empty()) std::abort();  // RCPT never takes the null path
    check_round_trip(*recipient, true);
  } else if (recipient.error().message.empty()) {
    std::abort();
  }
  // The raw line as a MAIL/RCPT argument, too (not only what follows a verb).
  if (auto sender = parse_mail_from(line)) check_round_trip(*sender, false);
  return 0;
}
