#pragma once
// The on-disk form of a queued message and of its delivery state. Pure: bytes in, values
// out; the files themselves are written by spool::SpoolWriter (the daemon's Committer
// thread, or `portrelay queue` without a daemon) and read by spool::SpoolDirectory (scan,
// load), for the daemon and for `portrelay queue` alike.
//
// A message file (queue/<id>) is written once and never changed:
//
//   portrelay-spool 1\n
//   id <queue id>\n
//   arrival <unix milliseconds>\n
//   sender <address, empty for the null path>\n
//   route <[[route]] name>\n                                    (only when not the default)
//   original <address>\n                 (only when [rewrite] changed the sender: the client's)
//   param <ESMTP MAIL parameter, KEYWORD or KEYWORD=VALUE>\n     (zero or more)
//   rcpt <address>\n                                           (one or more)
//   body <octets>\n
//   check <16 hex digits: FNV-1a 64 of every header line above>\n
//   \n
//   <body: exactly that many octets, unstuffed, CRLF line ends as the client sent them>
//   \n.end\n
//
// The header checksum catches a corrupt envelope; the declared body size and the end
// marker catch a truncated file. Body octets are not checksummed (neither Postfix nor
// nullmailer do): the file is renamed into queue/ only after it was synced, so a torn body
// can only come from the storage itself.
//
// A state file (queue/<id>.state) records what happened since: attempts, when the next
// one is due, the last error and each recipient's status. It is replaced atomically
// (write, sync, rename) whenever it changes; a missing state file means "nothing tried
// yet", a corrupt one is ignored (the message is retried for every recipient not
// settled, which can only duplicate, never lose).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/base/result.hpp"
#include "portrelay/base/status.hpp"

namespace portrelay::spool {

struct Envelope {
  std::string id;
  std::int64_t arrival_ms = 0;          // Unix time of the 250
  std::string sender;                   // empty: the null reverse path <>
  std::vector<std::string> parameters;  // MAIL parameters to pass on ("BODY=8BITMIME")
  std::vector<std::string> recipients;
  // The [[route]] it was accepted on; "" for the default route. Files written before
  // routes existed have no route line and take the default.
  std::string route;
  // The sender as the client gave it, when [rewrite] replaced it ("root@vm-1234.internal"
  // for "alerts@example.com"); "" when it was not rewritten. A bounce goes there (through
  // [aliases]): the rewritten sender is the provider's verified identity, not a person.
  // Files written before it existed have no original line and bounce to `sender`.
  std::string original_sender;
  // Where a bounce for this message goes, before [aliases].
  const std::string& bounce_address() const {
    return original_sender.empty() ? sender : original_sender;
  }
};

// Where the body sits in a message file, from the parsed header.
struct RecordLayout {
  Envelope envelope;
  std::uint64_t body_offset = 0;
  std::uint64_t body_size = 0;
  std::uint64_t file_size() const;  // header + body + end marker
};

inline constexpr std::string_view kEndMarker = "\n.end\n";

// The header (everything before the body). Addresses and parameters must not contain CR
// or LF (the SMTP parser refuses them).
std::string encode_header(const Envelope& envelope, std::uint64_t body_size);

// Parses the header at the start of `data` (which may hold more than the header).
// Errors name the problem: "not a spool file", "bad checksum", "truncated header", ...
// Every error of the parsers here is ErrorCode::Corruption.
Result<RecordLayout> parse_header(std::string_view data);

// Checks a whole message file of `file_size` octets whose last octets are `tail`
// (at least kEndMarker.size() of them) against its parsed header.
Status check_complete(const RecordLayout& layout, std::uint64_t file_size, std::string_view tail);

enum class RecipientStatus { Pending, Delivered, Bounced };
const char* to_string(RecipientStatus status);

struct RecipientState {
  RecipientStatus status = RecipientStatus::Pending;
  std::string reply;  // last upstream answer or local reason, one line
};

struct DeliveryState {
  unsigned attempts = 0;
  std::int64_t next_attempt_ms = 0;  // 0: as soon as possible
  std::string last_error;
  std::vector<RecipientState> recipients;  // same order as Envelope::recipients
  bool operator==(const DeliveryState&) const = default;
};
bool operator==(const RecipientState& a, const RecipientState& b);

std::string encode_state(const DeliveryState& state);
// `recipients`: how many the envelope has; a state that disagrees is corrupt.
Result<DeliveryState> parse_state(std::string_view data, std::size_t recipients);

std::uint64_t fnv1a64(std::string_view data, std::uint64_t seed = 0xcbf29ce484222325ull);

}  // namespace portrelay::spool
