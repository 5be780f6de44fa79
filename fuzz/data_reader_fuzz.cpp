// libFuzzer target: DataReader must give the same result however the input is chunked,
// and must never emit a bare CR or LF (the SMTP smuggling defence relies on it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "portrelay/smtp/data_reader.hpp"

namespace {

using portrelay::smtp::DataReader;

struct Outcome {
  std::string out;
  std::size_t consumed = 0;
  bool finished = false;
  DataReader::Violation violation = DataReader::Violation::None;
  std::uint64_t content_size = 0;

  bool operator==(const Outcome&) const = default;
};

// Chunk sizes are taken from `sizes` (cycling, each byte % 17); a size of 0 feeds an empty
// chunk, which must consume nothing. Empty `sizes` feeds everything at once.
Outcome run(std::string_view input, DataReader::Limits limits, std::string_view sizes) {
  DataReader reader(limits);
  Outcome result;
  std::size_t pos = 0;
  std::size_t turn = 0;
  while (pos < input.size() && !reader.finished()) {
    std::size_t size = input.size() - pos;
    if (!sizes.empty()) {
      size = static_cast<unsigned char>(sizes[turn++ % sizes.size()]) % 17;
      if (size == 0 && turn > sizes.size()) size = 1;  // guarantee progress
    }
    std::string_view chunk = input.substr(pos, size);
    std::size_t out_before = result.out.size();
    std::size_t used = reader.feed(chunk, result.out);
    if (used > chunk.size() || (used < chunk.size() && !reader.finished())) std::abort();
    if (chunk.empty() && result.out.size() != out_before) std::abort();
    pos += used;
  }
  result.consumed = pos;
  result.finished = reader.finished();
  result.violation = reader.violation();
  result.content_size = reader.content_size();
  return result;
}

void check_no_bare_line_breaks(const std::string& out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) std::abort();
    if (out[i] == '\r' && (i + 1 == out.size() || out[i + 1] != '\n')) std::abort();
  }
}

// DotStuffer works on arbitrary bytes (bare CR/LF included) and, like the reader, must give
// the same wire form however the content is chunked.
std::string stuff(std::string_view content, std::string_view sizes) {
  portrelay::smtp::DotStuffer stuffer;
  std::string wire;
  std::size_t pos = 0;
  std::size_t turn = 0;
  while (pos < content.size()) {
    std::size_t size = content.size() - pos;
    if (!sizes.empty()) {
      size = static_cast<unsigned char>(sizes[turn++ % sizes.size()]) % 17;
      if (size == 0 && turn > sizes.size()) size = 1;  // guarantee progress
    }
    std::string_view chunk = content.substr(pos, size);
    stuffer.encode(chunk, wire);
    pos += chunk.size();
  }
  stuffer.finish(wire);
  return wire;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Layout: [line limit][size limit][n][n chunk sizes][input...]
  if (size < 3) return 0;
  DataReader::Limits limits;
  limits.max_line_length = 2 + data[0] % 64;
  limits.max_message_size = data[1] % 2 ? UINT64_MAX : data[1];
  std::size_t sizes_length = data[2] % 16;
  if (size < 3 + sizes_length) return 0;
  std::string_view sizes(reinterpret_cast<const char*>(data + 3), sizes_length);
  std::string_view input(reinterpret_cast<const char*>(data + 3 + sizes_length),
                         size - 3 - sizes_length);

  Outcome one_shot = run(input, limits, {});
  check_no_bare_line_breaks(one_shot.out);
  if (one_shot.content_size < one_shot.out.size()) std::abort();
  if (one_shot.violation == DataReader::Violation::None &&
      one_shot.content_size != one_shot.out.size()) {
    std::abort();
  }

  if (one_shot.finished) {
    // Only <CRLF>.<CRLF> (or ".\r\n" at the very start) may end the data.
    std::string_view eaten = input.substr(0, one_shot.consumed);
    if (!(eaten == ".\r\n" || eaten.ends_with("\r\n.\r\n"))) std::abort();
    if (one_shot.violation == DataReader::Violation::None) {
      // Re-encoding the decoded content must decode to the same content.
      portrelay::smtp::DotStuffer stuffer;
      std::string wire;
      stuffer.encode(one_shot.out, wire);
      stuffer.finish(wire);
      Outcome again = run(wire, limits, {});
      if (!again.finished || again.consumed != wire.size() || again.out != one_shot.out ||
          again.violation != DataReader::Violation::None) {
        std::abort();
      }
    }
  }

  const std::string wire = stuff(input, {});
  if (!sizes.empty() && stuff(input, sizes) != wire) std::abort();
  if (stuff(input, std::string_view("\1", 1)) != wire) std::abort();

  if (!sizes.empty() && !(run(input, limits, sizes) == one_shot)) std::abort();
  std::string byte_sizes(1, '\1');
  if (!(run(input, limits, byte_sizes) == one_shot)) std::abort();
  return 0;
}
