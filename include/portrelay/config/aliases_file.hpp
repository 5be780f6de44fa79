#pragma once
// `[aliases] aliases_file`: Debian's /etc/aliases (aliases(5)) read as alias entries.
//
//   # comment
//   postmaster: root
//   root: ops@example.com, admin
//   www-data: web@example.com,
//       second@example.com          (a line starting with a space or tab continues)
//
// Only address targets are used: a relay forwards, it runs no programs and writes no
// files. `|command`, `/file` and `:include:` targets are left out with a `file:line`
// warning (shown by `portrelay check`), as is an entry left with no target, a name listed
// twice (the first one counts, as in Postfix) and anything that is not an address.
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/config/alias_table.hpp"

namespace portrelay::config {

struct AliasesFile {
  AliasTable::Entries entries;        // names as written (AliasTable lowercases them)
  std::vector<std::string> warnings;  // "path:line: ..."
};

// `text` is the file's content, `path` its name in warnings.
AliasesFile parse_aliases_file(std::string_view text, const std::string& path);

}  // namespace portrelay::config
