// DRBD meta-data helpers: the bitmap scan (a PromiseWorker reading the bitmap
// area in chunks) and activity-log decoding. The parsing lives in
// sys/md_parse.cc; this file only moves data between JS and it.
#include <algorithm>
#include <vector>

#include "errors.h"
#include "sys/blockdev.h"
#include "sys/md_parse.h"

namespace bisync {

namespace {

constexpr size_t kScanChunk = 4u << 20;

struct ScanJob {
  int fd;
  std::string path;
  uint64_t areaOffset;  // byte offset of the bitmap area (4 KiB aligned)
  uint32_t maxPeers, slot;
  uint64_t firstWord, nWords, nBits;
};

// bitmapScan(fd, path, areaOffset, maxPeers, slot, firstWord, nWords, nBits)
//   -> { runs: Float64Array [startBit, bitCount, ...], bitsSet }
class BitmapScanWorker : public PromiseWorker {
 public:
  BitmapScanWorker(Napi::Env env, ScanJob j) : PromiseWorker(env, "bisync:bitmapScan"), j_(std::move(j)) {}
  bool Run() override {
    const size_t unit = size_t(4096) * j_.maxPeers;
    const size_t chunk = std::max(unit, kScanChunk / unit * unit);
    auto buf = sys::AllocAligned(chunk);
    if (!buf) {
      err_.Set(ENOMEM, "posix_memalign");
      return false;
    }
    md::BitmapScanner scan(j_.maxPeers, j_.slot, j_.firstWord, j_.nBits);
    const uint64_t group = uint64_t(4) * j_.maxPeers;
    uint64_t pos = j_.areaOffset + j_.firstWord * group;
    uint64_t left = j_.nWords * group;
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, left));
      size_t got = 0;
      sys::Err e;
      if (!sys::PreadFull(j_.fd, buf.get(), sys::AlignUp(n, 4096), pos, &got, &e)) {
        err_.Set(e.code, e.syscall);
        err_.path = j_.path;
        return false;
      }
      if (got < n) {
        err_.Set(EIO, "pread");
        err_.path = j_.path;
        err_.detail = "bitmap area ends at " + std::to_string(pos + got) + ", past the end of the device";
        return false;
      }
      scan.Feed(buf.get(), n, &runs_);
      pos += n;
      left -= n;
    }
    scan.Finish(&runs_);
    bitsSet_ = scan.bitsSet();
    return true;
  }
  Napi::Value Result(Napi::Env env) override {
    auto a = Napi::Float64Array::New(env, runs_.size() * 2);
    for (size_t k = 0; k < runs_.size(); k++) {
      a[2 * k] = static_cast<double>(runs_[k].start);
      a[2 * k + 1] = static_cast<double>(runs_[k].count);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("runs", a);
    o.Set("bitsSet", Napi::Number::New(env, static_cast<double>(bitsSet_)));
    return o;
  }

 private:
  ScanJob j_;
  std::vector<md::BitRun> runs_;
  uint64_t bitsSet_ = 0;
};

Napi::Value BitmapScan(const Napi::CallbackInfo& info) {
  ScanJob j{static_cast<int>(ArgUint(info, 0, "fd", INT32_MAX)), ArgString(info, 1), ArgUint(info, 2, "areaOffset"),
            static_cast<uint32_t>(ArgUint(info, 3, "maxPeers", UINT32_MAX)), static_cast<uint32_t>(ArgUint(info, 4, "slot", UINT32_MAX)),
            ArgUint(info, 5, "firstWord"), ArgUint(info, 6, "nWords"), ArgUint(info, 7, "nBits")};
  if (j.maxPeers < 1 || j.maxPeers > 32 || j.slot >= j.maxPeers || j.firstWord % 1024 != 0)
    throw Napi::RangeError::New(info.Env(), "bitmapScan: bad slot geometry");
  return Start(new BitmapScanWorker(info.Env(), std::move(j)));
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBuffer()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

// alReplay(buffer, stripes, stripeSize4k) -> replay summary (sync: the AL is small)
Napi::Value AlReplay(const Napi::CallbackInfo& info) {
  auto buf = ArgBuffer(info, 0);
  const auto r = md::ReplayAl(buf.Data(), buf.Length(), static_cast<uint32_t>(ArgInt(info, 1)),
                              static_cast<uint32_t>(ArgInt(info, 2)));
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("status", r.status);
  o.Set("blocks", r.blocks);
  o.Set("valid", r.valid);
  o.Set("updates", r.updates);
  o.Set("firstCorruptBlock", r.firstCorruptBlock);
  o.Set("badTrBlock", r.badTrBlock);
  o.Set("badTrNumber", r.badTrNumber);
  o.Set("oldestTr", r.oldestTr);
  o.Set("newestTr", r.newestTr);
  auto hot = Napi::Array::New(env, r.hotExtents.size());
  for (size_t i = 0; i < r.hotExtents.size(); i++) hot.Set(uint32_t(i), r.hotExtents[i]);
  o.Set("hotExtents", hot);
  return o;
}

// alInitialize(buffer): fills it with AL_TR_INITIALIZED transactions.
Napi::Value AlInitialize(const Napi::CallbackInfo& info) {
  auto buf = ArgBuffer(info, 0);
  md::InitializeAl(buf.Data(), buf.Length() / 4096);
  return info.Env().Undefined();
}

uint32_t U32(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : 0;
}

// alEncode({trNumber, type, contextSize, contextStart, updates: [[slot, extent]...], context: [...]})
//   -> Buffer(4096) with a valid crc32c
Napi::Value AlEncode(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "alEncode: argument must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  md::AlBlock b{};
  b.magic = o.Has("magic") ? U32(o, "magic") : md::kAlMagic;
  b.trNumber = U32(o, "trNumber");
  b.type = static_cast<uint16_t>(U32(o, "type"));
  b.contextSize = static_cast<uint16_t>(U32(o, "contextSize"));
  b.contextStart = static_cast<uint16_t>(U32(o, "contextStart"));
  std::fill(std::begin(b.updateSlot), std::end(b.updateSlot), uint16_t(0xffff));
  std::fill(std::begin(b.updateExtent), std::end(b.updateExtent), ~0u);
  std::fill(std::begin(b.context), std::end(b.context), ~0u);
  if (o.Get("updates").IsArray()) {
    auto u = o.Get("updates").As<Napi::Array>();
    b.nUpdates = static_cast<uint16_t>(std::min<uint32_t>(u.Length(), md::kAlUpdates));
    for (uint32_t i = 0; i < b.nUpdates; i++) {
      auto pair = u.Get(i).As<Napi::Array>();
      b.updateSlot[i] = static_cast<uint16_t>(pair.Get(0u).As<Napi::Number>().Uint32Value());
      b.updateExtent[i] = pair.Get(1u).As<Napi::Number>().Uint32Value();
    }
  }
  if (o.Get("context").IsArray()) {
    auto c = o.Get("context").As<Napi::Array>();
    for (uint32_t i = 0; i < c.Length() && i < md::kAlContext; i++) b.context[i] = c.Get(i).As<Napi::Number>().Uint32Value();
  }
  auto out = Napi::Buffer<uint8_t>::New(info.Env(), 4096);
  md::EncodeAlBlock(b, out.Data());
  return out;
}

Napi::Value Crc32c(const Napi::CallbackInfo& info) {
  auto buf = ArgBuffer(info, 0);
  const uint32_t seed = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  return Napi::Number::New(info.Env(), md::Crc32c(seed, buf.Data(), buf.Length()));
}

}  // namespace

void InitBitmap(Napi::Env env, Napi::Object exports) {
  exports.Set("bitmapScan", Napi::Function::New(env, BitmapScan, "bitmapScan"));
  exports.Set("alReplay", Napi::Function::New(env, AlReplay, "alReplay"));
  exports.Set("alInitialize", Napi::Function::New(env, AlInitialize, "alInitialize"));
  exports.Set("alEncode", Napi::Function::New(env, AlEncode, "alEncode"));
  exports.Set("crc32c", Napi::Function::New(env, Crc32c, "crc32c"));
}

}  // namespace bisync
