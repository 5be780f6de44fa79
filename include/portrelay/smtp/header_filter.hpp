#pragma once
// HeaderRewrite applied to content that arrives in pieces (an SMTP DATA stream): the
// header section is held until it is complete, rewritten once, and everything after it
// passes straight through. Memory: the header section only, at most `max_held` octets.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "portrelay/smtp/header_rewrite.hpp"

namespace portrelay::smtp {

class HeaderFilter {
 public:
  static constexpr std::size_t kDefaultMaxHeld = 256 * 1024;

  explicit HeaderFilter(HeaderRewrite plan, std::size_t max_held = kDefaultMaxHeld);

  // Appends to `out` what can go on: nothing while the header section is incomplete, then
  // the rewritten section (and what was held after it). Returns the part of `content` that
  // follows, unchanged, for the caller to take as it is (no copy here).
  [[nodiscard]] std::string_view feed(std::string_view content, std::string& out);
  // End of the content: a header section still held (a message that is all header) is
  // rewritten and appended.
  void finish(std::string& out);

  // Set once the header was rewritten; nullopt when it never was (a header section over
  // `max_held` octets passes unchanged: giving up beats holding a client's memory).
  const std::optional<HeaderRewriteResult>& result() const { return result_; }
  // The header section is done: what comes now would pass unchanged, so a caller may
  // skip feed() and take it as it is (no copy).
  bool passing() const { return passing_; }
  bool gave_up() const { return gave_up_; }

 private:
  void rewrite(bool at_end, std::string& out);
  void rewrite_section(std::string_view content, const HeaderSection& section, std::string& out);

  HeaderRewrite plan_;
  std::size_t max_held_;
  std::string held_;
  bool passing_ = false;  // the header is done: content passes straight through
  bool gave_up_ = false;
  std::optional<HeaderRewriteResult> result_;
};

}  // namespace portrelay::smtp
