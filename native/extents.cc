#include "extents.h"

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

}  // namespace bisync
