#pragma once
// Parsing of SMTP commands received from clients (RFC 5321 section 4.1).
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portrelay/base/result.hpp"

namespace portrelay::smtp {

enum class Verb {
  Helo,
  Ehlo,
  Mail,
  Rcpt,
  Data,
  Rset,
  Noop,
  Quit,
  Vrfy,
  Expn,
  Help,
  Starttls,
  Auth,
  Bdat,
  Unknown
};

struct Command {
  Verb verb = Verb::Unknown;
  std::string verb_text;  // the verb as sent, upper-cased ("MAIL")
  std::string argument;   // everything after the verb and one space, trailing spaces removed
};

// `line` is one command line without its CRLF. Verbs are case-insensitive.
Command parse_command(std::string_view line);

struct Parameter {
  std::string keyword;  // upper-cased, e.g. "SIZE"
  std::string value;    // as sent, empty if the parameter had no "=value"
};

struct PathArgument {
  std::string address;  // mailbox without angle brackets; empty for the null path "<>"
  std::vector<Parameter> parameters;
  // The sender as the client gave it, when [rewrite] replaced `address` at acceptance
  // (for the log lines); empty when it did not.
  std::string original_address;
  const Parameter* find(std::string_view keyword) const;
};

// Parse the argument of MAIL ("FROM:<a@b> SIZE=10 BODY=8BITMIME") and RCPT ("TO:<c@d>").
// On failure the Result's error is a short human-readable reason.
// Accepts an optional space after the colon and strips an RFC 5321 source route
// ("<@a,@b:user@c>" -> "user@c"). Rejects control characters, unbalanced brackets,
// paths longer than 256 octets, and (for RCPT) the null path, except "<postmaster>".
//
// BareLocalPart::Accepted also takes a mailbox with no domain ("<root>", "<\"a b\">"): a
// dot-atom or a quoted string, nothing else. Only a server that maps such names (the
// relay's [aliases] and [rewrite] treat them as local) asks for it; everything else,
// upstream paths included, wants a domain.
enum class BareLocalPart { Refused, Accepted };
Result<PathArgument> parse_mail_from(std::string_view argument,
                                     BareLocalPart bare = BareLocalPart::Refused);
Result<PathArgument> parse_rcpt_to(std::string_view argument,
                                   BareLocalPart bare = BareLocalPart::Refused);

// Whether `line` may go out as one SMTP command line: no CR, LF or NUL. Every client-side
// command builder (upstream transactions, the handshake, `portrelay sendmail`) checks this
// before sending, so that no caller can smuggle a second command, or a whole transaction,
// through an address or a name.
bool is_single_command_line(std::string_view line);

}  // namespace portrelay::smtp
