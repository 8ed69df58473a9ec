#include "extents.h"

#include <string.h>

#include "sys/aio.h"
#include "sys/blockdev.h"

namespace bisync {

std::vector<Extent> ArgExtents(const Napi::CallbackInfo& info, size_t i) {
  const Napi::Env env = info.Env();
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, "extents (argument " + std::to_string(i) + ") must be a Float64Array");
  auto a = info[i].As<Napi::Float64Array>();
  if (a.ElementLength() % 2)
    throw Napi::RangeError::New(env, "extents (argument " + std::to_string(i) + ") must hold [offset, length] pairs, got " +
                                         std::to_string(a.ElementLength()) + " numbers");
  std::vector<Extent> v(a.ElementLength() / 2);
  for (size_t k = 0; k < v.size(); k++) {
    const std::string at = "extents[" + std::to_string(k) + "]";
    const uint64_t off = CheckedUint(env, a[2 * k], at + " offset");
    const uint64_t len = CheckedUint(env, a[2 * k + 1], at + " length");
    if (off + len > kMaxSafeUint)
      throw Napi::RangeError::New(env, at + " ends at " + std::to_string(off + len) + ", beyond 2^53");
    v[k] = {off, len};
  }
  return v;
}

bool ReadExact(int fd, const std::string& path, uint8_t* buf, size_t len, uint64_t off, SysError* err) {
  sys::Err e;
  size_t got = 0;
  if (!sys::PreadFull(fd, buf, sys::AlignUp(len, sys::kAlign), off, &got, &e)) {
    err->Set(e.code, e.syscall);
    err->path = path;
    return false;
  }
  if (got < len) {
    err->Set(EIO, "pread");
    err->path = path;
    err->detail = "short read at " + std::to_string(off + got) + ": end of device";
    return false;
  }
  return true;
}

bool WriteAll(int fd, const std::string& path, const uint8_t* p, size_t len, uint64_t off, SysError* err) {
  sys::Err e;
  if (sys::PwriteFull(fd, p, len, off, &e)) return true;
  err->Set(e.code, e.syscall);
  err->path = path;
  return false;
}

namespace {

bool Whole(size_t pos, const Extent& x) { return pos % sys::kAlign == 0 && x.off % sys::kAlign == 0 && x.len % sys::kAlign == 0; }

// Runs the whole-block extents together when there are several (one needs no submission).
std::vector<sys::Io> RunWhole(int fd, const std::vector<Extent>& xs, const uint8_t* buf, bool write) {
  std::vector<sys::Io> ios;
  size_t pos = 0;
  for (const Extent& x : xs) {
    if (Whole(pos, x)) ios.push_back({const_cast<uint8_t*>(buf) + pos, static_cast<size_t>(x.len), x.off});
    pos += x.len;
  }
  if (ios.size() > 1) sys::RunAio(fd, write, ios);
  return ios;
}

// One bounce buffer per call, made on the first extent that needs it and grown as needed.
struct Bounce {
  sys::AlignedPtr p;
  size_t cap = 0;
  uint8_t* Get(size_t n, SysError* err) {
    if (cap < n) {
      p = sys::AllocAligned(n);
      cap = p ? n : 0;
    }
    if (!p) err->Set(ENOMEM, "posix_memalign");
    return p.get();
  }
};

}  // namespace

bool GatherInto(int fd, const std::string& path, const std::vector<Extent>& xs, uint8_t* buf, SysError* err) {
  const std::vector<sys::Io> ios = RunWhole(fd, xs, buf, false);
  size_t pos = 0, k = 0;
  Bounce bounce;
  for (const Extent& x : xs) {
    if (Whole(pos, x)) {
      if (ios[k++].res != static_cast<int64_t>(x.len) && !ReadExact(fd, path, buf + pos, x.len, x.off, err)) return false;
    } else {
      uint8_t* b = bounce.Get(sys::AlignUp(x.len, sys::kAlign), err);
      if (!b || !ReadExact(fd, path, b, x.len, x.off, err)) return false;
      memcpy(buf + pos, b, x.len);
    }
    pos += x.len;
  }
  return true;
}

bool ScatterFrom(int fd, const std::string& path, const std::vector<Extent>& xs, const uint8_t* buf, SysError* err) {
  const std::vector<sys::Io> ios = RunWhole(fd, xs, buf, true);
  size_t pos = 0, k = 0;
  Bounce bounce;
  for (const Extent& x : xs) {
    const uint8_t* p = buf + pos;
    if (Whole(pos, x)) {
      if (ios[k++].res != static_cast<int64_t>(x.len) && !WriteAll(fd, path, p, x.len, x.off, err)) return false;
    } else {
      if (pos % sys::kAlign != 0) {
        uint8_t* b = bounce.Get(x.len, err);
        if (!b) return false;
        memcpy(b, p, x.len);
        p = b;
      }
      if (!WriteAll(fd, path, p, x.len, x.off, err)) return false;
    }
    pos += x.len;
  }
  return true;
}

}  // namespace bisync
