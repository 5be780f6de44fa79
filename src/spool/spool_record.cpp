#include "portrelay/spool/spool_record.hpp"

#include <charconv>
#include <cstdio>
#include <limits>

#include "portrelay/base/ascii.hpp"

namespace portrelay::spool {
namespace {

constexpr std::string_view kMagic = "portrelay-spool 1\n";
constexpr std::string_view kStateMagic = "portrelay-state 1\n";
// Longer headers are not ours: a bound so a garbage file is not scanned to the end.
constexpr std::size_t kMaxHeader = 1 << 20;

std::string hex64(std::uint64_t value) {
  std::string text;
  ascii::append_hex(text, value, 16);
  return text;
}

template <typename Int>
bool parse_int(std::string_view text, Int& out, int base = 10) {
  if (text.empty()) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return error == std::errc() && end == text.data() + text.size();
}

// Splits "key value" (value may be empty: "sender ").
bool split_line(std::string_view line, std::string_view& key, std::string_view& value) {
  auto space = line.find(' ');
  if (space == std::string_view::npos) return false;
  key = line.substr(0, space);
  value = line.substr(space + 1);
  return true;
}

// Reply texts come from upstream servers: a line end in one would start a line of its own
// in the state file (a forged "attempts 0" or "rcpt delivered"), under a valid checksum.
std::string one_line(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c == '\r' || c == '\n') c = ' ';
  return out;
}

// Exactly what hex64() writes: 16 lower-case digits. from_chars alone would also take
// upper case and fewer digits, so a damaged check line could still read as the same value.
bool parse_check(std::string_view text, std::uint64_t& out) {
  if (text.size() != 16) return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return parse_int(text, out, 16);
}

// Reads lines of `data` up to and including "check <hex>\n"; returns the offset after the
// check line, the text it covers, and the lines themselves.
struct CheckedBlock {
  std::vector<std::string_view> lines;  // without the magic and check lines
  std::size_t end = 0;                  // offset after the check line
};

Result<CheckedBlock> read_checked(std::string_view data, std::string_view magic, const char* what) {
  if (data.substr(0, magic.size()) != magic) {
    if (magic.substr(0, data.size()) == data)
      return Error{std::string("truncated ") + what, ErrorCode::Corruption};
    return Error{std::string("not a portrelay ") + what, ErrorCode::Corruption};
  }
  CheckedBlock block;
  std::size_t position = magic.size();
  while (true) {
    if (position > kMaxHeader) return Error{std::string(what) + " too long", ErrorCode::Corruption};
    auto newline = data.find('\n', position);
    if (newline == std::string_view::npos)
      return Error{std::string("truncated ") + what, ErrorCode::Corruption};
    std::string_view line = data.substr(position, newline - position);
    if (line.substr(0, 6) == "check ") {
      std::uint64_t expected = 0;
      if (!parse_check(line.substr(6), expected))
        return Error{std::string("bad check line in ") + what, ErrorCode::Corruption};
      if (fnv1a64(data.substr(0, position)) != expected)
        return Error{std::string("bad checksum in ") + what, ErrorCode::Corruption};
      block.end = newline + 1;
      return block;
    }
    block.lines.push_back(line);
    position = newline + 1;
  }
}

std::string with_check(std::string text) {
  text += "check " + hex64(fnv1a64(text)) + "\n";
  return text;
}

}  // namespace

std::uint64_t fnv1a64(std::string_view data, std::uint64_t seed) {
  std::uint64_t hash = seed;
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

std::uint64_t RecordLayout::file_size() const {
  return body_offset + body_size + kEndMarker.size();
}

std::string encode_header(const Envelope& envelope, std::uint64_t body_size) {
  std::string text(kMagic);
  text += "id " + envelope.id + "\n";
  text += "arrival " + std::to_string(envelope.arrival_ms) + "\n";
  text += "sender " + envelope.sender + "\n";
  // Written only for a route of its own, so a configuration without [[route]] writes the
  // files it always wrote.
  if (!envelope.route.empty()) text += "route " + envelope.route + "\n";
  // Likewise only for a rewritten sender: without [rewrite] the files stay as they were.
  if (!envelope.original_sender.empty()) text += "original " + envelope.original_sender + "\n";
  for (const auto& parameter : envelope.parameters) text += "param " + parameter + "\n";
  for (const auto& recipient : envelope.recipients) text += "rcpt " + recipient + "\n";
  text += "body " + std::to_string(body_size) + "\n";
  text = with_check(std::move(text));
  text += "\n";
  return text;
}

Result<RecordLayout> parse_header(std::string_view data) {
  auto block = read_checked(data, kMagic, "spool file");
  if (!block) return block.error();
  RecordLayout layout;
  bool have_id = false, have_arrival = false, have_sender = false, have_body = false;
  for (auto line : block->lines) {
    std::string_view key, value;
    if (!split_line(line, key, value)) return Error{"malformed header line", ErrorCode::Corruption};
    if (key == "id") {
      layout.envelope.id = std::string(value);
      have_id = !value.empty();
    } else if (key == "arrival") {
      have_arrival = parse_int(value, layout.envelope.arrival_ms);
    } else if (key == "sender") {
      layout.envelope.sender = std::string(value);
      have_sender = true;
    } else if (key == "route") {
      if (value.empty()) return Error{"empty route", ErrorCode::Corruption};
      layout.envelope.route = std::string(value);
    } else if (key == "original") {
      if (value.empty()) return Error{"empty original sender", ErrorCode::Corruption};
      layout.envelope.original_sender = std::string(value);
    } else if (key == "param") {
      layout.envelope.parameters.emplace_back(value);
    } else if (key == "rcpt") {
      layout.envelope.recipients.emplace_back(value);
    } else if (key == "body") {
      have_body = parse_int(value, layout.body_size);
    } else {
      return Error{"unknown header field " + std::string(key), ErrorCode::Corruption};
    }
  }
  if (!have_id || !have_arrival || !have_sender || !have_body || layout.envelope.recipients.empty())
    return Error{"incomplete header", ErrorCode::Corruption};
  if (block->end >= data.size()) return Error{"truncated spool file", ErrorCode::Corruption};
  if (data[block->end] != '\n')
    return Error{"missing blank line after header", ErrorCode::Corruption};
  layout.body_offset = block->end + 1;
  // file_size() must not wrap around: a wrapped size would let a short file pass
  // check_complete().
  if (layout.body_size >
      std::numeric_limits<std::uint64_t>::max() - layout.body_offset - kEndMarker.size())
    return Error{"body size out of range", ErrorCode::Corruption};
  return layout;
}

Status check_complete(const RecordLayout& layout, std::uint64_t file_size, std::string_view tail) {
  if (file_size < layout.file_size()) return Error{"truncated spool file", ErrorCode::Corruption};
  if (file_size > layout.file_size())
    return Error{"spool file longer than its header says", ErrorCode::Corruption};
  if (tail.size() < kEndMarker.size() || tail.substr(tail.size() - kEndMarker.size()) != kEndMarker)
    return Error{"missing end marker", ErrorCode::Corruption};
  return Status::ok_status();
}

const char* to_string(RecipientStatus status) {
  switch (status) {
    case RecipientStatus::Pending:
      return "pending";
    case RecipientStatus::Delivered:
      return "delivered";
    case RecipientStatus::Bounced:
      return "bounced";
  }
  return "pending";
}

bool operator==(const RecipientState& a, const RecipientState& b) {
  return a.status == b.status && a.reply == b.reply;
}

std::string encode_state(const DeliveryState& state) {
  std::string text(kStateMagic);
  text += "attempts " + std::to_string(state.attempts) + "\n";
  text += "next " + std::to_string(state.next_attempt_ms) + "\n";
  text += "error " + one_line(state.last_error) + "\n";
  for (const auto& recipient : state.recipients)
    text +=
        std::string("rcpt ") + to_string(recipient.status) + " " + one_line(recipient.reply) + "\n";
  return with_check(std::move(text));
}

Result<DeliveryState> parse_state(std::string_view data, std::size_t recipients) {
  auto block = read_checked(data, kStateMagic, "state file");
  if (!block) return block.error();
  if (block->end != data.size()) return Error{"trailing data in state file", ErrorCode::Corruption};
  DeliveryState state;
  for (auto line : block->lines) {
    std::string_view key, value;
    if (!split_line(line, key, value)) return Error{"malformed state line", ErrorCode::Corruption};
    if (key == "attempts") {
      if (!parse_int(value, state.attempts)) return Error{"bad attempts", ErrorCode::Corruption};
    } else if (key == "next") {
      if (!parse_int(value, state.next_attempt_ms))
        return Error{"bad next attempt", ErrorCode::Corruption};
    } else if (key == "error") {
      state.last_error = std::string(value);
    } else if (key == "rcpt") {
      std::string_view status, reply;
      if (!split_line(value, status, reply))
        return Error{"malformed recipient state", ErrorCode::Corruption};
      RecipientState recipient;
      if (status == "pending")
        recipient.status = RecipientStatus::Pending;
      else if (status == "delivered")
        recipient.status = RecipientStatus::Delivered;
      else if (status == "bounced")
        recipient.status = RecipientStatus::Bounced;
      else
        return Error{"unknown recipient status", ErrorCode::Corruption};
      recipient.reply = std::string(reply);
      state.recipients.push_back(std::move(recipient));
    } else {
      return Error{"unknown state field " + std::string(key), ErrorCode::Corruption};
    }
  }
  if (state.recipients.size() != recipients)
    return Error{"recipient count mismatch", ErrorCode::Corruption};
  return state;
}

}  // namespace portrelay::spool
