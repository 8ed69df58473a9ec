#include "sys/blockdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>

namespace bisync {
namespace sys {

static int OpenFlags(const OpenOptions& o, bool isBlock) {
  int flags = (o.write ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_LARGEFILE;
  if (o.exclusive && isBlock) flags |= O_EXCL;
  return flags;
}

// Some kernels refuse O_RDWR on a read-only block device with EACCES, which
// reads like a permission problem; say EROFS when BLKROGET agrees.
static int WriteOpenErrno(const std::string& path, int err, bool isBlock) {
  if (err != EACCES || !isBlock) return err;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return err;
  int ro = 0;
  const bool readOnly = ioctl(fd, BLKROGET, &ro) == 0 && ro != 0;
  close(fd);
  return readOnly ? EROFS : err;
}

bool OpenDevice(const std::string& path, const OpenOptions& o, Opened* out, Err* e) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return e->Set(errno, "stat");
  const bool isBlock = S_ISBLK(st.st_mode);
  if (!isBlock && !S_ISREG(st.st_mode)) return e->Set(ENOTBLK, "open");
  const int flags = OpenFlags(o, isBlock);
  int fd = -1;
  if (o.direct) {
    fd = open(path.c_str(), flags | O_DIRECT);
    if (fd >= 0) {
      out->fd = fd;
      out->direct = true;
      return true;
    }
    // EINVAL: the filesystem has no O_DIRECT; fall back and say so.
    if (errno != EINVAL) return e->Set(o.write ? WriteOpenErrno(path, errno, isBlock) : errno, "open");
    out->directErrno = EINVAL;
  }
  fd = open(path.c_str(), flags);
  if (fd < 0) return e->Set(o.write ? WriteOpenErrno(path, errno, isBlock) : errno, "open");
  out->fd = fd;
  out->direct = false;
  return true;
}

static std::string ReadSysfsLine(const std::string& p) {
  std::ifstream f(p);
  std::string line;
  if (f) std::getline(f, line);
  return line;
}

static void QueryLoop(int fd, DeviceInfo* out) {
  struct loop_info64 li;
  memset(&li, 0, sizeof li);
  if (ioctl(fd, LOOP_GET_STATUS64, &li) != 0) return;  // not a loop, or unbound
  // lo_file_name holds 64 bytes at most; sysfs has the whole path.
  std::string full = ReadSysfsLine("/sys/dev/block/" + std::to_string(out->major) + ":" +
                                   std::to_string(out->minor) + "/loop/backing_file");
  out->loopBackingFile = full.empty() ? reinterpret_cast<const char*>(li.lo_file_name) : full;
}

// O_DIRECT offset alignment of a regular file (STATX_DIOALIGN, Linux 6.1+);
// 512 where the filesystem does not say.
static uint32_t FileDirectAlign(int fd) {
#ifdef STATX_DIOALIGN
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) &&
      sx.stx_dio_offset_align >= 512 && sx.stx_dio_offset_align <= kAlign)
    return sx.stx_dio_offset_align;
#endif
  return 512;
}

bool QueryDevice(int fd, DeviceInfo* out, Err* e) {
  struct stat st;
  if (fstat(fd, &st) != 0) return e->Set(errno, "fstat");
  out->isBlockDevice = S_ISBLK(st.st_mode);
  if (!out->isBlockDevice) {
    out->size = static_cast<uint64_t>(st.st_size);
    out->logicalSectorSize = FileDirectAlign(fd);
    out->physicalSectorSize = static_cast<uint32_t>(st.st_blksize);
    out->readOnly = (st.st_mode & 0222) == 0;
    return true;
  }
  out->major = major(st.st_rdev);
  out->minor = minor(st.st_rdev);
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) return e->Set(errno, "ioctl(BLKGETSIZE64)");
  int lss = 0;
  if (ioctl(fd, BLKSSZGET, &lss) != 0) return e->Set(errno, "ioctl(BLKSSZGET)");
  unsigned int pss = 0;
  if (ioctl(fd, BLKPBSZGET, &pss) != 0) return e->Set(errno, "ioctl(BLKPBSZGET)");
  int ro = 0;
  if (ioctl(fd, BLKROGET, &ro) != 0) return e->Set(errno, "ioctl(BLKROGET)");
  out->size = size;
  out->logicalSectorSize = static_cast<uint32_t>(lss);
  out->physicalSectorSize = pss;
  out->readOnly = ro != 0;
  QueryLoop(fd, out);
  return true;
}

bool CloseFd(int fd, Err* e) {
  if (close(fd) != 0 && errno != EINTR) return e->Set(errno, "close");
  return true;
}

bool IsDirect(int fd) { return (fcntl(fd, F_GETFL) & O_DIRECT) != 0; }

bool PreadFull(int fd, void* buf, size_t len, uint64_t off, size_t* got, Err* e) {
  const bool direct = IsDirect(fd);
  size_t done = 0;
  auto* p = static_cast<uint8_t*>(buf);
  while (done < len) {
    ssize_t n = pread(fd, p + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return e->Set(errno, "pread");
    }
    if (n == 0) break;  // end of device
    done += static_cast<size_t>(n);
    // Under O_DIRECT a short count that leaves the position unaligned is the
    // end of the file, and another pread there would fail with EINVAL.
    if (direct && (off + done) % kAlign) break;
  }
  *got = done;
  return true;
}

static bool PwriteLoop(int fd, const uint8_t* p, size_t len, uint64_t off, Err* e) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, p + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return e->Set(errno, "pwrite");
    }
    if (n == 0) return e->Set(ENOSPC, "pwrite");
    done += static_cast<size_t>(n);
  }
  return true;
}

// A buffered descriptor for the same open file, for the unaligned tail.
static bool PwriteBuffered(int fd, const uint8_t* p, size_t len, uint64_t off, Err* e) {
  std::string self = "/proc/self/fd/" + std::to_string(fd);
  int bfd = open(self.c_str(), O_WRONLY | O_CLOEXEC);
  if (bfd < 0) return e->Set(errno, "open");
  bool ok = PwriteLoop(bfd, p, len, off, e) && (fdatasync(bfd) == 0 || e->Set(errno, "fdatasync"));
  close(bfd);
  return ok;
}

bool PwriteFull(int fd, const void* buf, size_t len, uint64_t off, Err* e) {
  auto* p = static_cast<const uint8_t*>(buf);
  if (!IsDirect(fd) || (len % 512 == 0 && off % 512 == 0)) return PwriteLoop(fd, p, len, off, e);
  // The head in whole pages suits any O_DIRECT alignment up to kAlign.
  size_t head = static_cast<size_t>(AlignDown(len, kAlign));
  if (head && !PwriteLoop(fd, p, head, off, e)) return false;
  return PwriteBuffered(fd, p + head, len - head, off + head, e);
}

bool Flush(int fd, Err* e) {
  if (fdatasync(fd) != 0) return e->Set(errno, "fdatasync");
  return true;
}

static bool IsBlock(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISBLK(st.st_mode);
}

bool Discard(int fd, uint64_t off, uint64_t len, Err* e) {
  if (IsBlock(fd)) {
    uint64_t range[2] = {off, len};
    if (ioctl(fd, BLKDISCARD, range) != 0) return e->Set(errno, "ioctl(BLKDISCARD)");
    return true;
  }
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                static_cast<off_t>(len)) != 0)
    return e->Set(errno, "fallocate");
  return true;
}

bool ZeroOut(int fd, uint64_t off, uint64_t len, Err* e) {
  if (IsBlock(fd)) {
    uint64_t range[2] = {off, len};
    if (ioctl(fd, BLKZEROOUT, range) != 0) return e->Set(errno, "ioctl(BLKZEROOUT)");
    return true;
  }
  if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                static_cast<off_t>(len)) == 0)
    return true;
  if (errno != EOPNOTSUPP) return e->Set(errno, "fallocate");
  // Filesystems without ZERO_RANGE (tmpfs): punching a hole reads back as zeros.
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                static_cast<off_t>(len)) != 0)
    return e->Set(errno, "fallocate");
  return true;
}

void AlignedFree::operator()(void* p) const { free(p); }

AlignedPtr AllocAligned(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, n ? n : kAlign) != 0) return AlignedPtr(nullptr);
  return AlignedPtr(static_cast<uint8_t*>(p));
}

AlignedPtr AllocHuge(size_t n, size_t* cap) {
  constexpr size_t kHuge = 2u << 20;
  *cap = AlignUp(n ? n : 1, kHuge);
  void* p = nullptr;
  if (posix_memalign(&p, kHuge, *cap) != 0) return AlignedPtr(nullptr);
  madvise(p, *cap, MADV_HUGEPAGE);  // advice only: without THP the buffer still works, in small pages
  return AlignedPtr(static_cast<uint8_t*>(p));
}

}  // namespace sys
}  // namespace bisync
