#pragma once
// The mailboxes of an RFC 5322 address-list field value (From, To, Cc, Reply-To), with
// where each sits in the value, so that a rewrite can replace one address and leave the
// rest (display names, comments, folding, encoded words) exactly as written.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace portrelay::smtp {

struct Mailbox {
  // Offsets into the value: the whole mailbox ("Name <a@b> (c)", without the surrounding
  // whitespace) and its addr-spec as written (inside the angle brackets, or the bare
  // address without a trailing comment).
  std::size_t begin = 0, end = 0;
  std::size_t address_begin = 0, address_end = 0;
  // The addr-spec with comments, folding whitespace and any obsolete source route
  // ("@a,@b:") removed: "a@b". Quoted local parts keep their quotes.
  std::string address;
  // The text before '<' as written (quotes, encoded words and comments kept), trimmed;
  // empty for a bare address.
  std::string display_name;
  bool angle = false;  // written as name-addr ("<a@b>"), not as a bare addr-spec
  // An '<' without its '>': the address runs to the end of the mailbox, so a rewrite
  // replaces the whole mailbox rather than guess where the address ends.
  bool unclosed = false;
};

// Every mailbox of `value`, in order. Groups ("team: a@b, c@d;") give their members and
// an empty group gives nothing; quoted strings, nested comments and backslash escapes are
// honoured; CRLF followed by whitespace (folding) is whitespace. Never throws: text that
// is not an address list gives what can be recognised ("" addresses are left out).
std::vector<Mailbox> parse_mailbox_list(std::string_view value);

}  // namespace portrelay::smtp
