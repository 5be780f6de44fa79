#pragma once
// The values of the Date and Message-ID fields a message must carry (RFC 5322 3.6.1 and
// 3.6.4), for mail that arrives without them: `sendmail` adds them, and so does the daemon
// for SMTP submissions ([server] add_missing_headers, as RFC 6409 8.2 and 8.3 allow).
#include <string>
#include <string_view>

namespace portrelay::smtp {

// RFC 5322 date-time of now in the local time zone: "Tue, 1 Jul 2025 12:00:00 +0200".
std::string format_date_now();
// "<20250701120000.5f3c9a1b2d4e6f70@host>": time plus 64 random bits, then the domain.
std::string make_message_id(std::string_view domain);

}  // namespace portrelay::smtp
