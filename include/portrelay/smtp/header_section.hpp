#pragma once
// The header section of an RFC 5322 message (CRLF line ends, as SMTP carries it): where it
// ends and its fields as written, folded lines included.
#include <cstddef>
#include <string_view>
#include <vector>

namespace portrelay::smtp {

struct HeaderField {
  std::string_view name;  // as written, without the colon
  std::string_view text;  // the whole field: "Name:", value, folded lines, final CRLF
  // Everything after the colon up to, not including, the final CRLF; folding kept.
  std::string_view value() const;
  bool is(std::string_view other_name) const;  // names compare without case
};

struct HeaderSection {
  std::vector<HeaderField> fields;
  // Octets of the section: up to and including the empty line that ends it, or up to the
  // first line that is neither a field nor a continuation (a body without the empty line
  // before it). The body starts there.
  std::size_t size = 0;
  bool complete = false;  // the end was found; otherwise more content is needed to know
  bool has(std::string_view name) const;
};

// Parses the header section at the start of `content`. When `content` ends before the
// section does, `complete` is false and `size` covers the complete fields seen so far
// (`at_end`: there is no more content, so what there is is the whole section).
HeaderSection parse_header_section(std::string_view content, bool at_end = false);

}  // namespace portrelay::smtp
