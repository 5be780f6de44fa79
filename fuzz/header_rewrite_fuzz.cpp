// libFuzzer target: the header rewriter (smtp/header_rewrite.hpp) with the mailbox-list and
// header-section parsers under it. Any application on the machine writes the header it
// likes. Checked: the body after the header section passes untouched; the streaming
// HeaderFilter gives the same bytes whatever the chunking; a replaced From parses back to
// one mailbox holding the new address; rewritten fields introduce no bare CR or LF.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/smtp/header_filter.hpp"
#include "portrelay/smtp/header_rewrite.hpp"
#include "portrelay/smtp/header_section.hpp"
#include "portrelay/smtp/mailbox_list.hpp"

namespace {

using namespace portrelay::smtp;

HeaderRewrite plan_for(std::uint8_t flags) {
  HeaderRewrite plan;
  if (flags & 1) plan.from_mailbox = "VM alerts <alerts@example.com>";
  if (flags & 2) plan.from_address = "alerts@example.com";
  plan.every_from = (flags & 4) != 0;
  plan.keep_reply_to = (flags & 8) != 0;
  plan.is_local = [](std::string_view address) {
    return address.find('@') == std::string_view::npos;
  };
  if (flags & 16) {
    plan.recipient_targets = [](std::string_view address) -> std::vector<std::string> {
      if (address == "root") return {"ops@example.com"};
      if (address == "team") return {"a@example.com", "b@example.com"};
      return {std::string(address)};
    };
  }
  if (flags & 32) plan.date = [] { return std::string("Tue, 1 Jul 2025 12:00:00 +0000"); };
  if (flags & 64) plan.message_id = [] { return std::string("<1@example.com>"); };
  return plan;
}

bool crlf_clean(std::string_view text, std::string_view original) {
  // Every CR and LF of the output is part of a CRLF, unless the original already had that
  // bare octet (untouched fields are copied as they were).
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool bare_lf = text[i] == '\n' && (i == 0 || text[i - 1] != '\r');
    const bool bare_cr = text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n');
    if ((bare_lf || bare_cr) && original.find(text[i]) == std::string_view::npos) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const HeaderRewrite plan = plan_for(data[0]);
  const std::size_t chunk = 1 + data[1] % 64;
  const std::string_view content(reinterpret_cast<const char*>(data + 2), size - 2);

  const HeaderSection section = parse_header_section(content, true);
  if (!section.complete || section.size > content.size()) std::abort();
  const HeaderRewriteResult result = rewrite_header_section(content, section, plan);
  const std::string whole = result.header + std::string(content.substr(section.size));
  if (!result.changed && result.header != content.substr(0, section.size)) std::abort();
  if (!crlf_clean(result.header, content.substr(0, section.size))) std::abort();

  if (result.from_replaced && plan.rewrites_from()) {
    const std::string expected =
        plan.from_mailbox.empty() ? plan.from_address : std::string("alerts@example.com");
    const HeaderSection out = parse_header_section(result.header, true);
    bool found = false;
    for (const HeaderField& field : out.fields) {
      if (!field.is("From")) continue;
      for (const Mailbox& mailbox : parse_mailbox_list(field.value()))
        if (mailbox.address == expected) found = true;
    }
    if (!found) std::abort();
  }

  HeaderFilter filter(plan, content.size() + 1);
  std::string streamed;
  for (std::size_t at = 0; at < content.size(); at += chunk)
    streamed.append(filter.feed(content.substr(at, chunk), streamed));
  filter.finish(streamed);
  if (streamed != whole) std::abort();
  return 0;
}
