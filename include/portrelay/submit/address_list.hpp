#pragma once
// Mailbox addresses out of RFC 5322 header fields (To:, Cc:, Bcc:), for `sendmail -t`.
#include <string>
#include <string_view>
#include <vector>

namespace portrelay::submit {

// The addr-specs of an address-list header value, in order: `Name <a@b>` gives "a@b", a bare
// `a@b` stays, comments `(...)` and quoted display names are skipped, groups
// (`team: a@b, c@d;`) give their members, and an empty group gives nothing. Obsolete forms
// (routes, unquoted dots in names) are taken as written. Unfolded value (no CRLF) expected;
// folding whitespace is tolerated.
std::vector<std::string> parse_address_list(std::string_view value);

// An address without a domain ("root", as cron and mail(1) pass them) gets "@domain", as
// Postfix's append_at_myorigin does; an empty address (the null sender "<>") stays empty.
std::string qualify_address(std::string_view address, std::string_view domain);

}  // namespace portrelay::submit
