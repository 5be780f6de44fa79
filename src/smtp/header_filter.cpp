#include "portrelay/smtp/header_filter.hpp"

namespace portrelay::smtp {

HeaderFilter::HeaderFilter(HeaderRewrite plan, std::size_t max_held)
    : plan_(std::move(plan)), max_held_(max_held) {}

void HeaderFilter::feed(std::string_view content, std::string& out) {
  if (passing_) {
    out.append(content);
    return;
  }
  held_.append(content);
  rewrite(false, out);
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
    HeaderRewriteResult result = rewrite_header_section(held_, section, plan_);
    out += result.header;
    out.append(std::string_view(held_).substr(section.size));
    result.header.clear();  // not kept: only the facts about it are
    result_ = std::move(result);
  }
  passing_ = true;
  held_.clear();
  held_.shrink_to_fit();
}

}  // namespace portrelay::smtp
