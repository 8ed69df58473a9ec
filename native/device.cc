// Open, query, read, write, flush, discard and zero-out: one worker each.
#include <string.h>

#include "errors.h"
#include "sys/blockdev.h"

namespace bisync {

namespace {

void FillSysError(SysError* out, const sys::Err& e, const std::string& path) {
  out->Set(e.code, e.syscall);
  out->path = path;
}

Napi::Object InfoObject(Napi::Env env, const sys::DeviceInfo& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("size", Napi::Number::New(env, static_cast<double>(d.size)));
  o.Set("logicalSectorSize", Napi::Number::New(env, d.logicalSectorSize));
  o.Set("physicalSectorSize", Napi::Number::New(env, d.physicalSectorSize));
  o.Set("readOnly", Napi::Boolean::New(env, d.readOnly));
  o.Set("isBlockDevice", Napi::Boolean::New(env, d.isBlockDevice));
  o.Set("major", Napi::Number::New(env, d.major));
  o.Set("minor", Napi::Number::New(env, d.minor));
  if (!d.loopBackingFile.empty()) o.Set("loopBackingFile", Napi::String::New(env, d.loopBackingFile));
  return o;
}

class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, std::string path, sys::OpenOptions o)
      : PromiseWorker(env, "bisync:open"), path_(std::move(path)), opts_(o) {}
  bool Run() override {
    sys::Err e;
    if (!sys::OpenDevice(path_, opts_, &opened_, &e)) return FillSysError(&err_, e, path_), false;
    if (!sys::QueryDevice(opened_.fd, &info_, &e)) {
      sys::Err ignored;
      sys::CloseFd(opened_.fd, &ignored);
      return FillSysError(&err_, e, path_), false;
    }
    return true;
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = InfoObject(env, info_);
    o.Set("fd", Napi::Number::New(env, opened_.fd));
    o.Set("direct", Napi::Boolean::New(env, opened_.direct));
    if (opened_.directErrno) o.Set("directErrno", Napi::Number::New(env, -opened_.directErrno));
    return o;
  }

 private:
  std::string path_;
  sys::OpenOptions opts_;
  sys::Opened opened_;
  sys::DeviceInfo info_;
};

// A worker about one open descriptor; path is carried for error messages.
class FdWorker : public PromiseWorker {
 public:
  FdWorker(Napi::Env env, const char* name, int fd, std::string path)
      : PromiseWorker(env, name), fd_(fd), path_(std::move(path)) {}

 protected:
  bool Fail(const sys::Err& e) {
    FillSysError(&err_, e, path_);
    return false;
  }
  int fd_;
  std::string path_;
};

class InfoWorker : public FdWorker {
 public:
  using FdWorker::FdWorker;
  bool Run() override {
    sys::Err e;
    return sys::QueryDevice(fd_, &info_, &e) || Fail(e);
  }
  Napi::Value Result(Napi::Env env) override { return InfoObject(env, info_); }

 private:
  sys::DeviceInfo info_;
};

class CloseWorker : public FdWorker {
 public:
  using FdWorker::FdWorker;
  bool Run() override {
    sys::Err e;
    return sys::CloseFd(fd_, &e) || Fail(e);
  }
};

class FlushWorker : public FdWorker {
 public:
  using FdWorker::FdWorker;
  bool Run() override {
    sys::Err e;
    return sys::Flush(fd_, &e) || Fail(e);
  }
};

class RangeWorker : public FdWorker {
 public:
  RangeWorker(Napi::Env env, const char* name, int fd, std::string path, uint64_t off, uint64_t len,
              bool zero)
      : FdWorker(env, name, fd, std::move(path)), off_(off), len_(len), zero_(zero) {}
  bool Run() override {
    sys::Err e;
    bool ok = zero_ ? sys::ZeroOut(fd_, off_, len_, &e) : sys::Discard(fd_, off_, len_, &e);
    return ok || Fail(e);
  }

 private:
  uint64_t off_, len_;
  bool zero_;
};

// Reads [position, position+length) into a JS buffer. On O_DIRECT descriptors
// an unaligned request is served through an aligned bounce buffer.
class ReadWorker : public FdWorker {
 public:
  ReadWorker(Napi::Env env, int fd, std::string path, uint8_t* dst, size_t len, uint64_t pos)
      : FdWorker(env, "bisync:read", fd, std::move(path)), dst_(dst), len_(len), pos_(pos) {}
  bool Run() override {
    sys::Err e;
    // kAlign, not 512: a 4096-byte-sector device refuses 512-aligned O_DIRECT reads.
    const bool aligned = reinterpret_cast<uintptr_t>(dst_) % sys::kAlign == 0 && pos_ % sys::kAlign == 0 &&
                         len_ % sys::kAlign == 0;
    if (!sys::IsDirect(fd_) || aligned) return sys::PreadFull(fd_, dst_, len_, pos_, &got_, &e) || Fail(e);
    const uint64_t start = sys::AlignDown(pos_, sys::kAlign);
    const uint64_t end = sys::AlignUp(pos_ + len_, sys::kAlign);
    auto bounce = sys::AllocAligned(end - start);
    if (!bounce) return Fail(sys::Err{ENOMEM, "posix_memalign"});
    size_t got = 0;
    if (!sys::PreadFull(fd_, bounce.get(), end - start, start, &got, &e)) return Fail(e);
    const size_t skip = pos_ - start;
    got_ = got > skip ? std::min(len_, got - skip) : 0;
    memcpy(dst_, bounce.get() + skip, got_);
    return true;
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(got_)); }

 private:
  uint8_t* dst_;
  size_t len_;
  uint64_t pos_;
  size_t got_ = 0;
};

class WriteWorker : public FdWorker {
 public:
  WriteWorker(Napi::Env env, int fd, std::string path, const uint8_t* src, size_t len, uint64_t pos)
      : FdWorker(env, "bisync:write", fd, std::move(path)), src_(src), len_(len), pos_(pos) {}
  bool Run() override {
    sys::Err e;
    if (!sys::IsDirect(fd_) || reinterpret_cast<uintptr_t>(src_) % sys::kAlign == 0)
      return sys::PwriteFull(fd_, src_, len_, pos_, &e) || Fail(e);
    auto bounce = sys::AllocAligned(sys::AlignUp(len_, sys::kAlign));
    if (!bounce) return Fail(sys::Err{ENOMEM, "posix_memalign"});
    memcpy(bounce.get(), src_, len_);
    return sys::PwriteFull(fd_, bounce.get(), len_, pos_, &e) || Fail(e);
  }

 private:
  const uint8_t* src_;
  size_t len_;
  uint64_t pos_;
};

// open(path, write, direct, exclusive)
Napi::Value Open(const Napi::CallbackInfo& info) {
  sys::OpenOptions o;
  o.write = ArgBool(info, 1);
  o.direct = ArgBool(info, 2);
  o.exclusive = ArgBool(info, 3);
  return Start(new OpenWorker(info.Env(), ArgString(info, 0), o));
}

template <typename W>
Napi::Value FdOp(const Napi::CallbackInfo& info, const char* name) {
  return Start(new W(info.Env(), name, static_cast<int>(ArgUint(info, 0, "fd", INT32_MAX)), ArgString(info, 1)));
}

// The TS layer validates; this keeps a misused binding from touching memory
// outside the buffer.
Napi::Buffer<uint8_t> ArgBufferRange(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBuffer()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a Buffer");
  auto buf = info[i].As<Napi::Buffer<uint8_t>>();
  const uint64_t off = ArgUint(info, i + 1, "bufferOffset"), len = ArgUint(info, i + 2, "length");
  if (off + len > buf.Length())
    throw Napi::RangeError::New(info.Env(), "buffer range [" + std::to_string(off) + ", " + std::to_string(len) +
                                                "] is outside a buffer of " + std::to_string(buf.Length()) + " bytes");
  return buf;
}

// read(fd, path, buffer, bufferOffset, length, position) -> bytesRead
Napi::Value Read(const Napi::CallbackInfo& info) {
  auto buf = ArgBufferRange(info, 2);
  auto* w = new ReadWorker(info.Env(), static_cast<int>(ArgUint(info, 0, "fd", INT32_MAX)), ArgString(info, 1),
                           buf.Data() + ArgUint(info, 3), static_cast<size_t>(ArgUint(info, 4)),
                           ArgUint(info, 5, "position"));
  w->Keep("buffer", buf);
  return Start(w);
}

// write(fd, path, buffer, bufferOffset, length, position)
Napi::Value Write(const Napi::CallbackInfo& info) {
  auto buf = ArgBufferRange(info, 2);
  auto* w = new WriteWorker(info.Env(), static_cast<int>(ArgUint(info, 0, "fd", INT32_MAX)), ArgString(info, 1),
                            buf.Data() + ArgUint(info, 3), static_cast<size_t>(ArgUint(info, 4)),
                            ArgUint(info, 5, "position"));
  w->Keep("buffer", buf);
  return Start(w);
}

// discard(fd, path, offset, length) / zeroOut(fd, path, offset, length)
Napi::Value RangeOp(const Napi::CallbackInfo& info, bool zero) {
  return Start(new RangeWorker(info.Env(), zero ? "bisync:zeroOut" : "bisync:discard",
                               static_cast<int>(ArgUint(info, 0, "fd", INT32_MAX)), ArgString(info, 1),
                               ArgUint(info, 2, "offset"), ArgUint(info, 3, "length"), zero));
}

}  // namespace

void InitDevice(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("close", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                return FdOp<CloseWorker>(i, "bisync:close"); }, "close"));
  exports.Set("info", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                return FdOp<InfoWorker>(i, "bisync:info"); }, "info"));
  exports.Set("flush", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                return FdOp<FlushWorker>(i, "bisync:flush"); }, "flush"));
  exports.Set("read", Napi::Function::New(env, Read, "read"));
  exports.Set("write", Napi::Function::New(env, Write, "write"));
  exports.Set("discard", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                return RangeOp(i, false); }, "discard"));
  exports.Set("zeroOut", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                return RangeOp(i, true); }, "zeroOut"));
}

}  // namespace bisync
