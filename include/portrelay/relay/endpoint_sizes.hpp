#pragma once
// What each chain endpoint's EHLO said about message size (RFC 1870 SIZE), learned from
// every ready connection, a message's or a probe's. Pure.
//
// It answers two questions. Which endpoints to skip for one message: those known to refuse
// its size (their SIZE is below it). And the largest message portrelay can take at all, for
// its own EHLO SIZE and its MAIL / end-of-data checks: the largest SIZE of any endpoint,
// where an endpoint not seen yet, or one that announced no limit, takes anything up to the
// caller's bound ([server] max_message_size). An endpoint that is down keeps what it said
// last: a permanent 552 must not depend on a passing outage.
//
// Entries are stored by endpoint identity, like the health table's, so a reload keeps them
// for the endpoints both chains share (inherit()).
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "portrelay/relay/endpoint_identity.hpp"

namespace portrelay::relay {

class EndpointSizes {
 public:
  // `chain[i]` is the identity of endpoint i.
  explicit EndpointSizes(std::vector<EndpointIdentity> chain);

  // A handshake with endpoint `index` announced `limit` octets (0: no limit, or no SIZE).
  void learned(std::size_t index, std::uint64_t limit);
  // The operator's limit for endpoint `index` ([[upstream]] max_message_size; 0: none). It
  // counts as if the endpoint had announced it, and the smaller of the two wins.
  void configured(std::size_t index, std::uint64_t limit);
  // nullopt: never seen and nothing configured; 0: no limit; otherwise the smaller of its
  // SIZE and the configured limit.
  std::optional<std::uint64_t> limit(std::size_t index) const;
  // Endpoint `index` is known to refuse a message of `size` octets.
  bool too_small(std::size_t index, std::uint64_t size) const;
  // The largest message some endpoint may accept, at most `bound`.
  std::uint64_t largest(std::uint64_t bound) const;
  // Takes over `previous`'s sizes for the endpoints of this chain it knows.
  void inherit(const EndpointSizes& previous);

 private:
  std::vector<EndpointIdentity> chain_;
  std::map<EndpointIdentity, std::uint64_t> limits_;  // learned
  std::vector<std::uint64_t> configured_;             // by index; 0: none
};

}  // namespace portrelay::relay
