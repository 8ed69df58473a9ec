#include "sys/genl.h"

#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

namespace bisync {
namespace sys {

namespace {

std::atomic<uint32_t> next_seq{1};

// Kernel replies to a request within milliseconds; this only bounds a hang.
constexpr int kReplyTimeoutMs = 10000;

bool RecvDatagram(int fd, int flags, std::vector<uint8_t>* buf, ssize_t* got, Err* e) {
  // Peek with MSG_TRUNC first so a large dump part is never cut short.
  ssize_t need = recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC | flags);
  if (need < 0) return e->Set(errno, "recv");
  if (buf->size() < static_cast<size_t>(need)) buf->resize(static_cast<size_t>(need));
  ssize_t n = recv(fd, buf->data(), buf->size(), flags);
  if (n < 0) return e->Set(errno, "recv");
  *got = n;
  return true;
}

bool WaitReadable(int fd, int timeoutMs, bool* ready, Err* e) {
  struct pollfd p = {fd, POLLIN, 0};
  int r;
  do r = poll(&p, 1, timeoutMs);
  while (r < 0 && errno == EINTR);
  if (r < 0) return e->Set(errno, "poll");
  *ready = r > 0;
  return true;
}

GenlMessage ToMessage(const struct nlmsghdr* h) {
  GenlMessage m;
  m.type = h->nlmsg_type;
  m.flags = h->nlmsg_flags;
  m.seq = h->nlmsg_seq;
  if (h->nlmsg_len >= NLMSG_LENGTH(GENL_HDRLEN)) {
    auto* g = static_cast<const struct genlmsghdr*>(NLMSG_DATA(h));
    m.cmd = g->cmd;
    m.version = g->version;
    auto* p = static_cast<const uint8_t*>(NLMSG_DATA(h)) + GENL_HDRLEN;
    m.payload.assign(p, p + (h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN)));
  }
  return m;
}

// Negative error carried by NLMSG_ERROR (and by NLMSG_DONE of a failed dump).
int ErrorOf(const struct nlmsghdr* h) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(int))) return 0;
  int v;
  memcpy(&v, NLMSG_DATA(h), sizeof v);
  return v;
}

}  // namespace

bool GenlOpen(const std::vector<uint32_t>& groups, int* out, Err* e) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) return e->Set(errno, "socket(AF_NETLINK)");
  struct sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) {
    int err = errno;
    close(fd);
    return e->Set(err, "bind(AF_NETLINK)");
  }
  // Event bursts (a resync start touches every object) must not overrun us.
  int rcvbuf = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  for (uint32_t g : groups) {
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof g) < 0) {
      int err = errno;
      close(fd);
      return e->Set(err, "setsockopt(NETLINK_ADD_MEMBERSHIP)");
    }
  }
  *out = fd;
  return true;
}

bool GenlTransact(int fd, uint16_t family, uint8_t cmd, uint8_t version, bool dump,
                  const std::vector<uint8_t>& payload, std::vector<GenlMessage>* out, Err* e) {
  const uint32_t seq = next_seq++;
  std::vector<uint8_t> req(NLMSG_LENGTH(GENL_HDRLEN) + NLMSG_ALIGN(payload.size()), 0);
  auto* h = reinterpret_cast<struct nlmsghdr*>(req.data());
  h->nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(GENL_HDRLEN) + payload.size());
  h->nlmsg_type = family;
  h->nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
  h->nlmsg_seq = seq;
  auto* g = static_cast<struct genlmsghdr*>(NLMSG_DATA(h));
  g->cmd = cmd;
  g->version = version;
  if (!payload.empty()) memcpy(req.data() + NLMSG_LENGTH(GENL_HDRLEN), payload.data(), payload.size());

  struct sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do sent = sendto(fd, req.data(), h->nlmsg_len, 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof kernel);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return e->Set(errno, "sendto(AF_NETLINK)");

  std::vector<uint8_t> buf(1 << 16);
  for (;;) {
    bool ready;
    if (!WaitReadable(fd, kReplyTimeoutMs, &ready, e)) return false;
    if (!ready) return e->Set(ETIMEDOUT, "recv");
    ssize_t n;
    if (!RecvDatagram(fd, 0, &buf, &n, e)) {
      if (e->code == EINTR) continue;
      return false;
    }
    int left = static_cast<int>(n);
    for (auto* r = reinterpret_cast<struct nlmsghdr*>(buf.data()); NLMSG_OK(r, left); r = NLMSG_NEXT(r, left)) {
      if (r->nlmsg_seq != seq) continue;  // a notification, or a late reply to someone else
      if (r->nlmsg_type == NLMSG_ERROR) {
        int err = ErrorOf(r);
        if (err < 0) return e->Set(-err, "netlink");
        if (!dump) return true;  // the acknowledgement
        continue;
      }
      if (r->nlmsg_type == NLMSG_DONE) {
        int err = ErrorOf(r);
        if (err < 0) return e->Set(-err, "netlink");
        return true;
      }
      out->push_back(ToMessage(r));
    }
  }
}

bool GenlReceive(int fd, int timeoutMs, std::vector<GenlMessage>* out, Err* e) {
  bool ready;
  if (!WaitReadable(fd, timeoutMs, &ready, e)) return false;
  if (!ready) return true;
  std::vector<uint8_t> buf(1 << 16);
  for (;;) {
    ssize_t n;
    if (!RecvDatagram(fd, MSG_DONTWAIT, &buf, &n, e)) {
      if (e->code == EAGAIN || e->code == EWOULDBLOCK) return e->code = 0, true;
      if (e->code == EINTR) continue;
      return false;
    }
    int left = static_cast<int>(n);
    for (auto* r = reinterpret_cast<struct nlmsghdr*>(buf.data()); NLMSG_OK(r, left); r = NLMSG_NEXT(r, left)) {
      if (r->nlmsg_type == NLMSG_ERROR || r->nlmsg_type == NLMSG_DONE || r->nlmsg_type == NLMSG_NOOP) continue;
      out->push_back(ToMessage(r));
    }
  }
}

}  // namespace sys
}  // namespace bisync
