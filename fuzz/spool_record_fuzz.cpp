// libFuzzer target: the spool's message header and state file parsers (spool/spool_record.hpp).
// The daemon and `portrelay queue` read these files back after crashes, full disks and
// operators' edits, so any bytes may meet them. Checked for each input:
//  * a header that parses has recipients, a body offset inside the input, a file size that
//    does not wrap, and encodes back to a header that parses to the same envelope; every
//    strict prefix of that encoding is refused (a torn header is never taken);
//  * a state that parses has the recipient count asked for, and encodes back to a state
//    that parses to the same values (reply texts with their CRs made spaces, as the encoder
//    writes them) and encodes again to the same bytes; every strict prefix is refused.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "portrelay/spool/spool_record.hpp"

namespace {

using namespace portrelay::spool;

// All of them for short encodings, else a handful: enough for the fuzzer, bounded per input.
template <typename Parse>
void refuse_prefixes(const std::string& encoded, Parse parse) {
  const std::size_t step = encoded.size() <= 512 ? 1 : encoded.size() / 64;
  for (std::size_t length = 0; length < encoded.size(); length += step)
    if (parse(std::string_view(encoded).substr(0, length))) std::abort();
  if (parse(std::string_view(encoded).substr(0, encoded.size() - 1))) std::abort();
}

void check_header(std::string_view input) {
  auto layout = parse_header(input);
  if (!layout) return;
  if (layout->envelope.recipients.empty() || layout->envelope.id.empty()) std::abort();
  if (layout->body_offset > input.size()) std::abort();
  if (layout->file_size() < layout->body_offset) std::abort();  // wrapped around
  if (!check_complete(*layout, layout->file_size(), kEndMarker).ok()) std::abort();
  if (check_complete(*layout, layout->file_size() + 1, kEndMarker).ok()) std::abort();

  const std::string encoded = encode_header(layout->envelope, layout->body_size);
  auto again = parse_header(encoded);
  if (!again || again->body_offset != encoded.size() || again->body_size != layout->body_size)
    std::abort();
  const Envelope& a = layout->envelope;
  const Envelope& b = again->envelope;
  if (a.id != b.id || a.arrival_ms != b.arrival_ms || a.sender != b.sender ||
      a.parameters != b.parameters || a.recipients != b.recipients)
    std::abort();
  refuse_prefixes(encoded, [](std::string_view prefix) { return parse_header(prefix).ok(); });
}

std::string without_cr(std::string text) {
  for (char& c : text)
    if (c == '\r') c = ' ';
  return text;
}

void check_state(std::string_view input) {
  // The count the caller would take from the envelope: here, the rcpt lines the input has.
  std::size_t recipients = 0;
  for (std::size_t at = input.find("\nrcpt "); at != std::string_view::npos;
       at = input.find("\nrcpt ", at + 1))
    ++recipients;
  auto state = parse_state(input, recipients);
  if (!state) return;
  if (state->recipients.size() != recipients) std::abort();
  if (parse_state(input, recipients + 1).ok()) std::abort();

  const std::string encoded = encode_state(*state);
  auto again = parse_state(encoded, recipients);
  if (!again || again->attempts != state->attempts ||
      again->next_attempt_ms != state->next_attempt_ms ||
      again->last_error != without_cr(state->last_error))
    std::abort();
  for (std::size_t i = 0; i < recipients; ++i)
    if (again->recipients[i].status != state->recipients[i].status ||
        again->recipients[i].reply != without_cr(state->recipients[i].reply))
      std::abort();
  if (encode_state(*again) != encoded) std::abort();
  refuse_prefixes(encoded, [recipients](std::string_view prefix) {
    return parse_state(prefix, recipients).ok();
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_header(input);
  check_state(input);
  return 0;
}
