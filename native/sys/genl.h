// Pure syscall layer for generic netlink: one socket, requests, multicast
// receive. No N-API and no knowledge of any family's attributes: callers pass
// the payload (family header + attributes) and get payloads back.
#pragma once
#include <cstdint>
#include <vector>

#include "sys/blockdev.h"  // sys::Err

namespace bisync {
namespace sys {

struct GenlMessage {
  uint16_t type = 0;   // nlmsg_type: the family id
  uint16_t flags = 0;  // nlmsg_flags (NLM_F_MULTI, ...)
  uint32_t seq = 0;    // 0 for multicast notifications
  uint8_t cmd = 0;
  uint8_t version = 0;
  std::vector<uint8_t> payload;  // everything after the genlmsghdr
};

// A NETLINK_GENERIC socket bound to an automatic port id, member of `groups`.
bool GenlOpen(const std::vector<uint32_t>& groups, int* fd, Err* e);

// Sends one request and collects the replies: for a dump until NLMSG_DONE, for
// a plain request until the kernel's acknowledgement. A negative error from the
// kernel fails with that errno and syscall "netlink".
bool GenlTransact(int fd, uint16_t family, uint8_t cmd, uint8_t version, bool dump,
                  const std::vector<uint8_t>& payload, std::vector<GenlMessage>* out, Err* e);

// Waits up to timeoutMs for messages (multicast notifications) and returns all
// that are queued; none on timeout. ENOBUFS means the kernel dropped some.
bool GenlReceive(int fd, int timeoutMs, std::vector<GenlMessage>* out, Err* e);

}  // namespace sys
}  // namespace bisync
