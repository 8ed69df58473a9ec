// Pure syscall layer for block devices and regular files: no N-API here, so it
// can be unit-fuzzed and reused by other native targets.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace bisync {
namespace sys {

struct Err {
  int code = 0;
  const char* syscall = "";
  bool Set(int c, const char* call) { code = c; syscall = call; return false; }
};

struct OpenOptions {
  bool write = false;
  bool direct = true;
  bool exclusive = true;  // O_EXCL on block devices: refuse a mounted or DRBD-attached one
};

struct Opened {
  int fd = -1;
  bool direct = false;     // O_DIRECT is in effect
  int directErrno = 0;     // why O_DIRECT was refused, when it was
};

struct DeviceInfo {
  uint64_t size = 0;
  uint32_t logicalSectorSize = 512;
  uint32_t physicalSectorSize = 512;
  bool readOnly = false;
  bool isBlockDevice = false;
  uint32_t major = 0, minor = 0;  // of the block device (st_rdev)
  std::string loopBackingFile;    // empty unless a bound loop device
};

bool OpenDevice(const std::string& path, const OpenOptions& o, Opened* out, Err* e);
bool QueryDevice(int fd, DeviceInfo* out, Err* e);
bool CloseFd(int fd, Err* e);

// Reads until len bytes or end of device; *got says how many. O_DIRECT callers
// pass aligned buffers, offsets and lengths.
bool PreadFull(int fd, void* buf, size_t len, uint64_t off, size_t* got, Err* e);
// Writes all of len. On an O_DIRECT descriptor an unaligned length (the tail of
// a file whose size is not a multiple of the sector size) goes through a
// buffered descriptor for the same file.
bool PwriteFull(int fd, const void* buf, size_t len, uint64_t off, Err* e);
bool Flush(int fd, Err* e);
bool Discard(int fd, uint64_t off, uint64_t len, Err* e);
bool ZeroOut(int fd, uint64_t off, uint64_t len, Err* e);
bool IsDirect(int fd);

// Page-aligned heap memory for O_DIRECT bounce buffers, owned by native code.
struct AlignedFree { void operator()(void* p) const; };
using AlignedPtr = std::unique_ptr<uint8_t, AlignedFree>;
AlignedPtr AllocAligned(size_t n);
// n rounded up to whole 2 MiB pages, aligned to 2 MiB and offered to the kernel as a
// transparent huge page: pinning it for O_DIRECT costs one page, not 512.
AlignedPtr AllocHuge(size_t n, size_t* cap);

constexpr size_t kAlign = 4096;
inline uint64_t AlignDown(uint64_t v, uint64_t a) { return v & ~(a - 1); }
inline uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace sys
}  // namespace bisync
