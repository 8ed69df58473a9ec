// Linux native AIO for the extents of one record: all of them go to the device in
// one submission and come back in one wait, instead of a sleep and a wake-up per
// extent. What a split brain leaves is mostly scattered 4 KiB blocks; a device
// serves those far faster many at a time (an SSD's queue, the loop device's
// worker: 4.5 us per 4 KiB read here at depth 128 against 16.5 us one at a time).
// No policy: the caller says what to read or write, and redoes one call at a time
// whatever did not complete in full (which also gives it the usual error).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bisync {
namespace sys {

struct Io {
  static constexpr int64_t kNotRun = INT64_MIN;
  uint8_t* buf;
  size_t len;
  uint64_t off;
  int64_t res = kNotRun;  // bytes moved, -errno, or kNotRun when it was never submitted
};

// Runs every io on fd (all reads, or all writes) concurrently and sets each one's res.
// Never fails as a whole: where AIO is not to be had (no context, a refused submission)
// the ios it did not run keep kNotRun.
void RunAio(int fd, bool write, std::vector<Io>& ios);

}  // namespace sys
}  // namespace bisync
