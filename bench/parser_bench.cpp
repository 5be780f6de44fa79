// Micro-benchmarks for the per-byte DATA codecs on the relay's hot path: the server decodes
// every client message with DataReader, the upstream side re-stuffs it with DotStuffer.
// Inputs are generated deterministically, so runs are comparable across commits.
//
//   ./build/bench/portrelay_parser_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "portrelay/smtp/data_reader.hpp"

namespace {

using portrelay::smtp::DataReader;
using portrelay::smtp::DotStuffer;

// What the event loop hands over per read at most (libuv's suggested buffer size).
constexpr std::size_t kChunkSize = 64 * 1024;

enum class Shape { Typical100K, Typical4K, Lines998, Base64 };

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string text_line(std::mt19937& rng, std::size_t length) {
  static constexpr char kWords[] = "lorem ipsum dolor sit amet consectetur adipiscing elit ";
  std::string line;
  std::size_t offset = rng() % (sizeof(kWords) - 1);
  while (line.size() < length) {
    line.push_back(kWords[offset]);
    offset = (offset + 1) % (sizeof(kWords) - 1);
  }
  return line;
}

std::string headers() {
  return "From: Alice <alice@example.org>\r\n"
         "To: Bob <bob@example.net>\r\n"
         "Subject: quarterly numbers\r\n"
         "Date: Tue, 3 Jun 2025 10:00:00 +0000\r\n"
         "Message-ID: <bench-1@example.org>\r\n"
         "MIME-Version: 1.0\r\n";
}

// Decoded message content (CRLF lines), roughly `size` octets.
std::string make_content(Shape shape) {
  std::mt19937 rng(2025);
  std::string content = headers();
  switch (shape) {
    case Shape::Typical100K:
    case Shape::Typical4K: {
      const std::size_t size = shape == Shape::Typical100K ? 100 * 1024 : 4 * 1024;
      content += "Content-Type: text/plain; charset=utf-8\r\n\r\n";
      for (int line = 0; content.size() < size; ++line) {
        // About one line in 40 starts with '.', as quoted text or signatures do.
        std::string text = text_line(rng, 70 + rng() % 7);
        if (line % 40 == 7) text[0] = '.';
        content += text + "\r\n";
      }
      break;
    }
    case Shape::Lines998:
      content += "Content-Type: text/plain\r\n\r\n";
      for (int line = 0; content.size() < 100 * 1024; ++line) {
        std::string text = text_line(rng, 998);
        if (line % 10 == 3) text[0] = '.';
        content += text + "\r\n";
      }
      break;
    case Shape::Base64:
      content +=
          "Content-Type: application/octet-stream\r\n"
          "Content-Transfer-Encoding: base64\r\n\r\n";
      while (content.size() < 100 * 1024) {
        for (int i = 0; i < 76; ++i) content.push_back(kBase64Alphabet[rng() % 64]);
        content += "\r\n";
      }
      break;
  }
  return content;
}

// The DATA wire form of `content`, terminator included.
std::string make_wire(const std::string& content) {
  DotStuffer stuffer;
  std::string wire;
  stuffer.encode(content, wire);
  stuffer.finish(wire);
  return wire;
}

void BM_DataReaderFeed(benchmark::State& state, Shape shape) {
  const std::string wire = make_wire(make_content(shape));
  std::string out;
  out.reserve(wire.size());
  for (auto _ : state) {
    out.clear();
    DataReader reader({});
    std::string_view rest = wire;
    while (!rest.empty() && !reader.finished()) {
      rest.remove_prefix(reader.feed(rest.substr(0, kChunkSize), out));
    }
    if (!reader.finished() || reader.violation() != DataReader::Violation::None) {
      state.SkipWithError("benchmark input did not decode cleanly");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(wire.size()));
}

void BM_DotStufferEncode(benchmark::State& state, Shape shape) {
  const std::string content = make_content(shape);
  std::string out;
  out.reserve(content.size() * 2);
  for (auto _ : state) {
    out.clear();
    DotStuffer stuffer;
    std::string_view rest = content;
    while (!rest.empty()) {
      const std::string_view chunk = rest.substr(0, kChunkSize);
      stuffer.encode(chunk, out);
      rest.remove_prefix(chunk.size());
    }
    stuffer.finish(out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(content.size()));
}

BENCHMARK_CAPTURE(BM_DataReaderFeed, typical_100k, Shape::Typical100K);
BENCHMARK_CAPTURE(BM_DataReaderFeed, typical_4k, Shape::Typical4K);
BENCHMARK_CAPTURE(BM_DataReaderFeed, lines_998, Shape::Lines998);
BENCHMARK_CAPTURE(BM_DataReaderFeed, base64_100k, Shape::Base64);
BENCHMARK_CAPTURE(BM_DotStufferEncode, typical_100k, Shape::Typical100K);
BENCHMARK_CAPTURE(BM_DotStufferEncode, typical_4k, Shape::Typical4K);
BENCHMARK_CAPTURE(BM_DotStufferEncode, lines_998, Shape::Lines998);
BENCHMARK_CAPTURE(BM_DotStufferEncode, base64_100k, Shape::Base64);

}  // namespace

BENCHMARK_MAIN();
