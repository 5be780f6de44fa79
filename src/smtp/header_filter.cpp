#include "portrelay/smtp/header_filter.hpp"

namespace portrelay::smtp {

HeaderFilter::HeaderFilter(HeaderRewrite plan, std::size_t max_held)
    : plan_(std::move(plan)), max_held_(max_held) {}

std::string_view HeaderFilter::feed(std::string_view content, std::string& out) {
  if (passing_) return content;
  if (held_.empty()) {
    // Usually the first piece holds the whole header section: nothing is held or copied.
    const HeaderSection section = parse_header_section(content, false);
    if (section.complete) {
      rewrite_section(content, section, out);
      return content.substr(section.size);
    }
  }
  held_.append(content);
  rewrite(false, out);
  return {};
}

void HeaderFilter::rewrite_section(std::string_view content, const HeaderSection& section,
                                   std::string& out) {
  HeaderRewriteResult result = rewrite_header_section(content, section, plan_);
  out += result.header;
  result.header = std::string();  // not kept: only the facts about it are
  result_ = std::move(result);
  passing_ = true;
}

void HeaderFilter::finish(std::string& out) {
  if (!passing_) rewrite(true, out);
}

void HeaderFilter::rewrite(bool at_end, std::string& out) {
  const HeaderSection section = parse_header_section(held_, at_end);
  if (!section.complete) {
    if (held_.size() <= max_held_) return;  // wait for more
    gave_up_ = true;
    out += held_;
  } else {
    rewrite_section(held_, section, out);
    out.append(std::string_view(held_).substr(section.size));
  }
  passing_ = true;
  held_.clear();
  held_.shrink_to_fit();
}

}  // namespace portrelay::smtp
