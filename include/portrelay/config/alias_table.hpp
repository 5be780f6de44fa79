#pragma once
// [aliases]: where mail for this machine's own names (root, postmaster, www-data) goes.
// A provider refuses "root" or "root@vm-1234.internal" as a recipient, and nobody reads
// mail there anyway; an alias names the person who should.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/config/local_domains.hpp"

namespace portrelay::config {

class AliasTable {
 public:
  // Names are local parts ("root"), matched without case; "default" catches every local
  // name that has no entry. A target is an address; one that is itself local ("admin",
  // "admin@localhost") is looked up again, so aliases chain.
  using Entries = std::map<std::string, std::vector<std::string>>;

  AliasTable() = default;
  AliasTable(Entries entries, LocalDomains local);

  // The remote addresses mail for `address` goes to, each once, in the order written.
  // Empty when nothing maps it (no entry and no "default"), or every branch ends in a loop
  // or an unmapped local name. `address` need not be local: a remote one maps to itself.
  std::vector<std::string> resolve(std::string_view address) const;

  // A chain that comes back to where it started, as "root -> admin -> root"; "" when
  // there is none. Config loading refuses a table with a loop.
  std::string find_loop() const;

  bool empty() const { return entries_.empty(); }
  const Entries& entries() const { return entries_; }
  const LocalDomains& local_domains() const { return local_; }

 private:
  const std::vector<std::string>* targets_of(std::string_view local_address) const;

  Entries entries_;  // keys lowercase
  LocalDomains local_;
};

}  // namespace portrelay::config
