#include "sys/aio.h"

#include <errno.h>
#include <linux/aio_abi.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

namespace bisync {
namespace sys {

namespace {

constexpr size_t kDepth = 128;  // a 512 KiB record of 4 KiB extents in one submission

// Contexts are kept for the life of the process and handed from call to call: io_destroy
// waits for an RCU grace period (about 33 ms here), which would outlast most batches.
class ContextPool {
 public:
  aio_context_t Take() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!free_.empty()) {
        aio_context_t c = free_.back();
        free_.pop_back();
        return c;
      }
    }
    aio_context_t c = 0;
    return syscall(SYS_io_setup, kDepth, &c) == 0 ? c : 0;
  }
  void Give(aio_context_t c) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (free_.size() < kKeep) return free_.push_back(c);
    }
    syscall(SYS_io_destroy, c);
  }

 private:
  static constexpr size_t kKeep = 16;  // as many as data streams may run batches at once
  std::mutex mu_;
  std::vector<aio_context_t> free_;
};

ContextPool& Contexts() {
  static auto* pool = new ContextPool;  // never destroyed: its contexts end with the process
  return *pool;
}

enum class Chunk { kDone, kRefused, kBroken };

// Submits ios[first, first + n) and reaps what was submitted. kRefused: the kernel took only
// part (the rest keep kNotRun); kBroken: a reap failed with requests still in flight.
Chunk RunChunk(aio_context_t ctx, int fd, bool write, std::vector<Io>& ios, size_t first, size_t n) {
  iocb cbs[kDepth];
  iocb* ptrs[kDepth];
  io_event ev[kDepth];
  for (size_t k = 0; k < n; k++) {
    const Io& io = ios[first + k];
    memset(&cbs[k], 0, sizeof cbs[k]);
    cbs[k].aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
    cbs[k].aio_fildes = static_cast<uint32_t>(fd);
    cbs[k].aio_buf = reinterpret_cast<uintptr_t>(io.buf);
    cbs[k].aio_nbytes = io.len;
    cbs[k].aio_offset = static_cast<int64_t>(io.off);
    cbs[k].aio_data = first + k;
    ptrs[k] = &cbs[k];
  }
  size_t sent = 0;
  while (sent < n) {
    const long r = syscall(SYS_io_submit, ctx, n - sent, ptrs + sent);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;  // the rest keep kNotRun
    sent += static_cast<size_t>(r);
  }
  for (size_t reaped = 0; reaped < sent;) {
    const long r = syscall(SYS_io_getevents, ctx, sent - reaped, sent - reaped, ev, nullptr);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Chunk::kBroken;
    for (long j = 0; j < r; j++) ios[ev[j].data].res = ev[j].res;
    reaped += static_cast<size_t>(r);
  }
  return sent == n ? Chunk::kDone : Chunk::kRefused;
}

}  // namespace

void RunAio(int fd, bool write, std::vector<Io>& ios) {
  const aio_context_t ctx = Contexts().Take();
  if (!ctx) return;
  for (size_t first = 0; first < ios.size(); first += kDepth) {
    const Chunk c = RunChunk(ctx, fd, write, ios, first, std::min(kDepth, ios.size() - first));
    if (c == Chunk::kRefused) break;
    if (c == Chunk::kBroken) {
      syscall(SYS_io_destroy, ctx);  // returns only once nothing in flight can touch the buffers
      return;
    }
  }
  Contexts().Give(ctx);
}

}  // namespace sys
}  // namespace bisync
