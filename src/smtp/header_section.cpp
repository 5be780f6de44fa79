#include "portrelay/smtp/header_section.hpp"

#include "portrelay/base/ascii.hpp"

namespace portrelay::smtp {
namespace {

// "Name:" with a field name of printable characters other than ':' (RFC 5322 2.2).
std::size_t field_name_length(std::string_view line) {
  const auto colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return 0;
  for (char c : line.substr(0, colon))
    if (c < 33 || c > 126) return 0;
  return colon;
}

}  // namespace

std::string_view HeaderField::value() const {
  std::string_view rest = text.substr(name.size() + 1);
  if (rest.size() >= 2 && rest.substr(rest.size() - 2) == "\r\n") rest.remove_suffix(2);
  return rest;
}

bool HeaderField::is(std::string_view other_name) const { return ascii::iequals(name, other_name); }

bool HeaderSection::has(std::string_view name) const {
  for (const auto& field : fields)
    if (field.is(name)) return true;
  return false;
}

HeaderSection parse_header_section(std::string_view content, bool at_end) {
  HeaderSection section;
  std::size_t position = 0;
  std::size_t field_start = 0, field_name = 0;
  bool in_field = false;
  auto close_field = [&](std::size_t end) {
    if (!in_field) return;
    section.fields.push_back(
        {content.substr(field_start, field_name), content.substr(field_start, end - field_start)});
    in_field = false;
  };
  while (position < content.size()) {
    const auto line_end = content.find("\r\n", position);
    if (line_end == std::string_view::npos && !at_end) break;  // an incomplete line
    const std::size_t next = line_end == std::string_view::npos ? content.size() : line_end + 2;
    const std::string_view line = content.substr(position, next - position);
    if (line == "\r\n") {
      close_field(position);
      section.size = next;
      section.complete = true;
      return section;
    }
    const char first = line.front();
    if ((first == ' ' || first == '\t') && in_field) {
      position = next;
      continue;
    }
    const std::size_t name = field_name_length(line);
    close_field(position);
    if (name == 0) {  // the body starts here, without an empty line before it
      section.size = position;
      section.complete = true;
      return section;
    }
    in_field = true;
    field_start = position;
    field_name = name;
    position = next;
  }
  if (at_end) {
    close_field(position);
    section.size = position;
    section.complete = true;
    return section;
  }
  // The last field may still get continuation lines: it is not complete yet.
  section.size = in_field ? field_start : position;
  return section;
}

}  // namespace portrelay::smtp
