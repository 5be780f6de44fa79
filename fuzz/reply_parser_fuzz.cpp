// libFuzzer target: ReplyParser must not crash, must respect its limits, must give the same
// replies however the input is split, and replies must survive format/parse round trips.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/smtp/reply.hpp"

namespace {

using portrelay::smtp::Reply;
using portrelay::smtp::ReplyParser;

struct Outcome {
  std::vector<Reply> replies;
  bool failed = false;
};

bool same(const Reply& a, const Reply& b) {
  return a.code == b.code && a.enhanced == b.enhanced && a.lines == b.lines;
}

Outcome run(std::string_view input, std::size_t chunk) {
  ReplyParser parser;
  Outcome result;
  for (std::size_t pos = 0; pos < input.size(); pos += chunk) {
    parser.feed(input.substr(pos, chunk));
    while (auto reply = parser.next()) {
      if (reply->code < 200 || reply->code > 599) std::abort();
      if (reply->lines.empty() || reply->lines.size() > ReplyParser::kMaxLines) std::abort();
      result.replies.push_back(std::move(*reply));
    }
    if (parser.buffered() > input.size()) std::abort();
  }
  result.failed = parser.failed();
  return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t chunk = 1 + data[0] % 13;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  Outcome whole = run(input, input.size() + 1);
  Outcome split = run(input, chunk);
  if (whole.failed != split.failed || whole.replies.size() != split.replies.size()) std::abort();
  for (std::size_t i = 0; i < whole.replies.size(); ++i) {
    if (!same(whole.replies[i], split.replies[i])) std::abort();
    // Formatting a parsed reply and parsing it again gives the same reply.
    ReplyParser again;
    again.feed(portrelay::smtp::format_reply(whole.replies[i]));
    std::optional<Reply> reparsed = again.next();
    if (!reparsed || !same(*reparsed, whole.replies[i]) || again.buffered() != 0) std::abort();
  }
  return 0;
}
