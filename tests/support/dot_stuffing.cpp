#include "support/dot_stuffing.hpp"

namespace portrelay::test {

std::string dot_stuff(std::string_view content) {
  std::string out;
  out.reserve(content.size() + content.size() / 64 + 1);
  // Copies whole lines at a time: fast enough for multi-MiB messages even in Debug builds.
  std::size_t line_start = 0;
  while (line_start < content.size()) {
    std::size_t end = content.find("\r\n", line_start);
    end = end == std::string_view::npos ? content.size() : end + 2;
    if (content[line_start] == '.') out += '.';
    out.append(content.substr(line_start, end - line_start));
    line_start = end;
  }
  return out;
}

std::string dot_unstuff(std::string_view data) {
  std::string out;
  out.reserve(data.size());
  std::size_t line_start = 0;
  while (line_start < data.size()) {
    std::size_t end = data.find("\r\n", line_start);
    end = end == std::string_view::npos ? data.size() : end + 2;
    std::size_t from = data[line_start] == '.' ? line_start + 1 : line_start;
    out.append(data.substr(from, end - from));
    line_start = end;
  }
  return out;
}

}  // namespace portrelay::test
