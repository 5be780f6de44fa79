#pragma once
// The header edits that give a message an identity its provider accepts: a new From (the
// old one kept as Reply-To), local To/Cc addresses replaced by where their mail goes, and
// the Date and Message-ID a message must have. Pure: header section in, header section out;
// every field it does not edit is copied octet for octet.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/smtp/header_section.hpp"

namespace portrelay::smtp {

struct HeaderRewrite {
  // The new author. `from_mailbox` ("VM alerts <alerts@example.com>") replaces the whole
  // From value; otherwise `from_address` replaces the address of each From mailbox that is
  // rewritten and keeps its display name and comments. Both empty: From is left alone.
  std::string from_mailbox;
  std::string from_address;
  // Which From mailboxes are rewritten: all of them (the envelope sender was rewritten, or
  // all_senders), or those whose address `is_local` calls local. A message without From
  // gets one when `every_from`.
  bool every_from = false;
  std::function<bool(std::string_view address)> is_local;
  // A replaced From becomes the Reply-To when the message has none, so replies still
  // reach whoever the application meant.
  bool keep_reply_to = true;
  // To, Cc and the added Reply-To: an address for which this gives targets is replaced by
  // them (one keeps the mailbox's display name; several replace the mailbox); nothing or
  // the address itself leaves it as written. Null: those fields are not looked at.
  std::function<std::vector<std::string>(std::string_view address)> recipient_targets;
  // Called only when the field is missing, for its value.
  std::function<std::string()> date;
  std::function<std::string()> message_id;

  bool rewrites_from() const { return !from_mailbox.empty() || !from_address.empty(); }
  // Nothing to do for any message: the header need not even be looked at.
  bool empty() const { return !rewrites_from() && !recipient_targets && !date && !message_id; }
};

struct HeaderRewriteResult {
  std::string header;  // the new header section: replaces the first `section.size` octets
  bool changed = false;
  bool from_replaced = false;
  std::string original_from;  // the replaced From value, unfolded and trimmed
  // From was replaced while a DKIM-Signature's h= tag lists it: that signature no longer
  // verifies (the caller logs and counts it).
  bool dkim_signature_broken = false;
  bool added_date = false;
  bool added_message_id = false;
};

// `section` must be parse_header_section(content, ...) with `complete` set.
HeaderRewriteResult rewrite_header_section(std::string_view content, const HeaderSection& section,
                                           const HeaderRewrite& plan);

// Whether a DKIM-Signature value's h= tag lists `field` (without case).
bool dkim_signature_covers(std::string_view signature_value, std::string_view field);

// Breaks each line of `field_text` (CRLF line ends) longer than RFC 5322's 998 octets by
// folding at its last space or comma-space before the limit; a line with no such place
// is left as it is.
void fold_long_lines(std::string& field_text);

}  // namespace portrelay::smtp
