// Bulk work over a list of extents: hash, compare, copy, gather and scatter.
// Extents come from JS as a Float64Array of [offset, length] pairs that the TS
// layer has validated (aligned, in range). Each call is one batch; the TS layer
// keeps several batches in flight.
#include <string.h>
#include <xxhash.h>

#include <algorithm>
#include <vector>

#include "errors.h"
#include "extents.h"
#include "sys/blockdev.h"

namespace bisync {

namespace {

// Bytes per read: small enough that the compare finds both chunks still in
// cache. A larger block size (up to kMaxBlock) reads one block at a time.
constexpr size_t kChunk = 1u << 20;
constexpr size_t kMaxBlock = 4u << 20;  // the TS layer's limit on block sizes

Napi::Float64Array ExtentsArray(Napi::Env env, const std::vector<Extent>& v) {
  auto a = Napi::Float64Array::New(env, v.size() * 2);
  for (size_t k = 0; k < v.size(); k++) {
    a[2 * k] = static_cast<double>(v[k].off);
    a[2 * k + 1] = static_cast<double>(v[k].len);
  }
  return a;
}

// Appends [off, off+len) to a list kept sorted by construction, merging
// with the last entry when adjacent.
void AppendCoalesced(std::vector<Extent>* out, uint64_t off, uint64_t len) {
  if (!out->empty() && out->back().off + out->back().len == off) {
    out->back().len += len;
  } else {
    out->push_back({off, len});
  }
}

bool IsZero(const uint8_t* p, size_t n) { return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0); }

// One device of a batch: its descriptor, a name for errors, a bounce buffer.
struct Side {
  int fd;
  std::string path;
  uint8_t* buf = nullptr;  // the calling pool thread's scratch buffer
};

// Each libuv pool thread keeps its two chunk buffers for the life of the
// process: allocating per batch cost a page fault per 4 KiB on every call.
uint8_t* ScratchBuffer(int slot) {
  thread_local sys::AlignedPtr bufs[2];
  if (!bufs[slot]) bufs[slot] = sys::AllocAligned(kMaxBlock);
  return bufs[slot].get();
}

// A window's pieces read into the side's scratch buffer back to back, or written from it.
bool Gather(Side& s, const std::vector<Extent>& w, SysError* err) { return GatherInto(s.fd, s.path, w, s.buf, err); }
bool Scatter(Side& s, const std::vector<Extent>& w, SysError* err) { return ScatterFrom(s.fd, s.path, w, s.buf, err); }

// Calls fn(offset, length) for every chunk of every extent; chunks hold
// whole blocks, so a block never straddles two reads.
template <typename Fn>
bool ForEachChunk(const std::vector<Extent>& extents, uint32_t blockSize, Fn fn) {
  const size_t chunk = std::max<size_t>(kChunk, blockSize);
  for (const Extent& x : extents)
    for (uint64_t done = 0; done < x.len;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, x.len - done));
      if (!fn(x.off + done, n)) return false;
      done += n;
    }
  return true;
}

// ForEachChunk's pieces, consecutive ones grouped into windows of at most maxBytes: a window is
// read or written as one gather (GatherInto), so scattered small extents reach the device as a
// queue; a piece as large as the window is a window of its own, read as before.
template <typename Fn>
bool ForEachWindow(const std::vector<Extent>& extents, uint32_t blockSize, size_t maxBytes, Fn fn) {
  std::vector<Extent> w;
  size_t bytes = 0;
  const bool ok = ForEachChunk(extents, blockSize, [&](uint64_t off, size_t n) {
    if (bytes + n > maxBytes && !w.empty()) {
      if (!fn(w, bytes)) return false;
      w.clear();
      bytes = 0;
    }
    w.push_back({off, n});
    bytes += n;
    return true;
  });
  return ok && (w.empty() || fn(w, bytes));
}

Side MakeSide(const Napi::CallbackInfo& info, size_t i) {
  return Side{static_cast<int>(ArgUint(info, i, "fd", INT32_MAX)), ArgString(info, i + 1)};
}

// The TS layer validates block sizes; this only keeps memory safe.
bool CheckBlockSize(uint32_t bs, SysError* err) {
  if (bs >= 512 && bs <= kMaxBlock) return true;
  err->Set(EINVAL, "block size");
  err->detail = "block size " + std::to_string(bs) + " is outside 512..4M";
  return false;
}

bool Allocate(Side& s, SysError* err, int slot = 0) {
  s.buf = ScratchBuffer(slot);
  if (s.buf) return true;
  err->Set(ENOMEM, "posix_memalign");
  return false;
}

// hash(fd, path, extents, blockSize) -> { digests: Buffer(16 per block), zero: Buffer(1 per block) }
class HashWorker : public PromiseWorker {
 public:
  HashWorker(Napi::Env env, Side s, std::vector<Extent> x, uint32_t bs)
      : PromiseWorker(env, "bisync:hash"), s_(std::move(s)), x_(std::move(x)), bs_(bs) {}
  bool Run() override {
    if (!CheckBlockSize(bs_, &err_) || !Allocate(s_, &err_)) return false;
    return ForEachWindow(x_, bs_, std::max<size_t>(kChunk, bs_), [&](const std::vector<Extent>& w, size_t) {
      if (!Gather(s_, w, &err_)) return false;
      const uint8_t* p = s_.buf;
      for (const Extent& piece : w) {
        for (size_t b = 0; b < piece.len; b += bs_) {
          const size_t len = std::min<size_t>(bs_, piece.len - b);
          XXH128_canonical_t c;
          XXH128_canonicalFromHash(&c, XXH3_128bits(p + b, len));
          digests_.insert(digests_.end(), c.digest, c.digest + sizeof c.digest);
          zero_.push_back(IsZero(p + b, len) ? 1 : 0);
        }
        p += piece.len;
      }
      return true;
    });
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("digests", Napi::Buffer<uint8_t>::Copy(env, digests_.data(), digests_.size()));
    o.Set("zero", Napi::Buffer<uint8_t>::Copy(env, zero_.data(), zero_.size()));
    return o;
  }

 private:
  Side s_;
  std::vector<Extent> x_;
  uint32_t bs_;
  std::vector<uint8_t> digests_, zero_;
};

// compare(fdA, pathA, fdB, pathB, extents, blockSize) -> Float64Array of differing extents
class CompareWorker : public PromiseWorker {
 public:
  CompareWorker(Napi::Env env, Side a, Side b, std::vector<Extent> x, uint32_t bs)
      : PromiseWorker(env, "bisync:compare"), a_(std::move(a)), b_(std::move(b)), x_(std::move(x)), bs_(bs) {}
  bool Run() override {
    if (!CheckBlockSize(bs_, &err_) || !Allocate(a_, &err_) || !Allocate(b_, &err_, 1)) return false;
    return ForEachWindow(x_, bs_, std::max<size_t>(kChunk, bs_), [&](const std::vector<Extent>& w, size_t) {
      if (!Gather(a_, w, &err_) || !Gather(b_, w, &err_)) return false;
      // One pass, block by block: a whole-chunk memcmp first would scan a
      // differing chunk twice.
      size_t pos = 0;
      for (const Extent& piece : w) {
        for (size_t b = 0; b < piece.len; b += bs_) {
          const size_t len = std::min<size_t>(bs_, piece.len - b);
          if (memcmp(a_.buf + pos + b, b_.buf + pos + b, len) != 0) AppendCoalesced(&diff_, piece.off + b, len);
        }
        pos += piece.len;
      }
      return true;
    });
  }
  Napi::Value Result(Napi::Env env) override { return ExtentsArray(env, diff_); }

 private:
  Side a_, b_;
  std::vector<Extent> x_;
  uint32_t bs_;
  std::vector<Extent> diff_;
};

// copy(fdSrc, pathSrc, fdDst, pathDst, extents) -> bytes copied
class CopyWorker : public PromiseWorker {
 public:
  CopyWorker(Napi::Env env, Side src, Side dst, std::vector<Extent> x)
      : PromiseWorker(env, "bisync:copy"), src_(std::move(src)), dst_(std::move(dst)), x_(std::move(x)) {}
  bool Run() override {
    if (!Allocate(src_, &err_)) return false;
    return ForEachWindow(x_, kMaxBlock, kMaxBlock, [&](const std::vector<Extent>& w, size_t n) {
      if (!Gather(src_, w, &err_) || !ScatterFrom(dst_.fd, dst_.path, w, src_.buf, &err_)) return false;
      bytes_ += n;
      return true;
    });
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(bytes_)); }

 private:
  Side src_, dst_;
  std::vector<Extent> x_;
  uint64_t bytes_ = 0;
};

// gather(fd, path, extents, buffer): reads the extents back to back into buffer.
// scatter(fd, path, extents, buffer): writes buffer's bytes to the extents.
class GatherScatterWorker : public PromiseWorker {
 public:
  GatherScatterWorker(Napi::Env env, Side s, std::vector<Extent> x, uint8_t* data, bool write)
      : PromiseWorker(env, write ? "bisync:scatter" : "bisync:gather"),
        s_(std::move(s)), x_(std::move(x)), data_(data), write_(write) {}
  bool Run() override {
    if (!Allocate(s_, &err_)) return false;
    size_t pos = 0;
    return ForEachWindow(x_, kMaxBlock, kMaxBlock, [&](const std::vector<Extent>& w, size_t n) {
      if (write_) {
        memcpy(s_.buf, data_ + pos, n);
        if (!Scatter(s_, w, &err_)) return false;
      } else {
        if (!Gather(s_, w, &err_)) return false;
        memcpy(data_ + pos, s_.buf, n);
      }
      pos += n;
      return true;
    });
  }

 private:
  Side s_;
  std::vector<Extent> x_;
  uint8_t* data_;
  bool write_;
};

Napi::Value Hash(const Napi::CallbackInfo& info) {
  return Start(new HashWorker(info.Env(), MakeSide(info, 0), ArgExtents(info, 2),
                              static_cast<uint32_t>(ArgUint(info, 3, "blockSize", UINT32_MAX))));
}

Napi::Value Compare(const Napi::CallbackInfo& info) {
  return Start(new CompareWorker(info.Env(), MakeSide(info, 0), MakeSide(info, 2), ArgExtents(info, 4),
                                 static_cast<uint32_t>(ArgUint(info, 5, "blockSize", UINT32_MAX))));
}

Napi::Value Copy(const Napi::CallbackInfo& info) {
  return Start(new CopyWorker(info.Env(), MakeSide(info, 0), MakeSide(info, 2), ArgExtents(info, 4)));
}

Napi::Value GatherScatter(const Napi::CallbackInfo& info, bool write) {
  if (!info[3].IsBuffer()) throw Napi::TypeError::New(info.Env(), "argument 3 must be a Buffer");
  auto buf = info[3].As<Napi::Buffer<uint8_t>>();
  std::vector<Extent> x = ArgExtents(info, 2);
  const uint64_t total = TotalLen(x);
  if (total != buf.Length())  // the TS layer checks; this keeps memory safe
    throw Napi::RangeError::New(info.Env(), "extents cover " + std::to_string(total) + " bytes but the buffer holds " +
                                                std::to_string(buf.Length()));
  auto* w = new GatherScatterWorker(info.Env(), MakeSide(info, 0), std::move(x), buf.Data(), write);
  w->Keep("buffer", buf);
  return Start(w);
}

}  // namespace

void InitExtentOps(Napi::Env env, Napi::Object exports) {
  exports.Set("hash", Napi::Function::New(env, Hash, "hash"));
  exports.Set("compare", Napi::Function::New(env, Compare, "compare"));
  exports.Set("copy", Napi::Function::New(env, Copy, "copy"));
  exports.Set("gather", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                return GatherScatter(i, false); }, "gather"));
  exports.Set("scatter", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                return GatherScatter(i, true); }, "scatter"));
  exports.Set("hashBuffer", Napi::Function::New(env, [](const Napi::CallbackInfo& i) -> Napi::Value {
                // Synchronous XXH3-128 of a small buffer (batch checksums on the wire).
                auto b = i[0].As<Napi::Buffer<uint8_t>>();
                XXH128_canonical_t c;
                XXH128_canonicalFromHash(&c, XXH3_128bits(b.Data(), b.Length()));
                return Napi::Buffer<uint8_t>::Copy(i.Env(), c.digest, sizeof c.digest);
              }, "hashBuffer"));
}

}  // namespace bisync
