// What the native entry points that work on extents share: the extent list as
// JS passes it (checked), and whole reads and writes at an offset that turn a
// failed or short syscall into a SysError naming the device.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "errors.h"

namespace bisync {

struct Extent {
  uint64_t off, len;
};

// The bytes the extents cover, saturating at UINT64_MAX instead of wrapping: a sum past 2^64
// must not pass a size check as the small number it wraps to.
inline uint64_t TotalLen(const std::vector<Extent>& x) {
  uint64_t t = 0;
  for (const Extent& e : x)
    if (__builtin_add_overflow(t, e.len, &t)) return UINT64_MAX;
  return t;
}

// Argument i as [offset, length] pairs from a Float64Array; every offset and
// length is checked before the cast: a non-integer, negative or beyond-2^53
// double (or an odd-length array) is a RangeError naming it.
std::vector<Extent> ArgExtents(const Napi::CallbackInfo& info, size_t i);

// Reads exactly len bytes at off into buf (len may end at an unaligned device
// end). The read is rounded up to whole sectors for O_DIRECT, so buf must hold
// len rounded up to 4096.
bool ReadExact(int fd, const std::string& path, uint8_t* buf, size_t len, uint64_t off, SysError* err);
bool WriteAll(int fd, const std::string& path, const uint8_t* p, size_t len, uint64_t off, SysError* err);

// Reads the extents back to back into buf (aligned to 4096), or writes
// buf's bytes to them. Extents of whole aligned blocks at aligned places in buf move between
// buf and the device together (one Linux AIO submission: a device serves scattered 4 KiB
// blocks far faster as a queue than one at a time); the others, and whatever the device did
// not complete in full, one call at a time through a bounce buffer, which also gives the
// error a single call would. Nothing is read past an extent's end, so reads land in any order.
bool GatherInto(int fd, const std::string& path, const std::vector<Extent>& x, uint8_t* buf, SysError* err);
bool ScatterFrom(int fd, const std::string& path, const std::vector<Extent>& x, const uint8_t* buf, SysError* err);

}  // namespace bisync
