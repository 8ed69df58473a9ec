// Payload compression (zstd) and checksums for the wire protocol. The TS layer
// decides when to compress and what to do with a mismatch; this file only
// transforms bytes, off the JS thread for anything the size of a batch.
#include <errno.h>
#include <stdlib.h>
#include <xxhash.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <vector>

#include "errors.h"

namespace bisync {

namespace {

struct Span {
  const uint8_t* data;
  size_t len;
};

// Buffer[] -> spans; the caller keeps the array alive while a worker reads them.
std::vector<Span> ArgSpans(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be an array of Buffers");
  auto a = info[i].As<Napi::Array>();
  std::vector<Span> v;
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value b = a[k];
    if (!b.IsBuffer()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must hold only Buffers");
    auto buf = b.As<Napi::Buffer<uint8_t>>();
    v.push_back({buf.Data(), buf.Length()});
  }
  return v;
}

// Hands a malloc'd block to JS without copying it.
Napi::Buffer<uint8_t> AdoptBuffer(Napi::Env env, uint8_t* p, size_t len) {
  return Napi::Buffer<uint8_t>::New(env, p, len, [](Napi::Env, uint8_t* q) { free(q); });
}

bool ZstdFailed(size_t rc, const char* call, SysError* err) {
  if (!ZSTD_isError(rc)) return false;
  err->Set(ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation ? ENOMEM : EPROTO, call);
  err->detail = ZSTD_getErrorName(rc);
  return true;
}

// compress(buffers, level) -> Buffer: one zstd frame of the buffers back to back,
// with the content size and zstd's own content checksum in the frame.
class CompressWorker : public PromiseWorker {
 public:
  CompressWorker(Napi::Env env, std::vector<Span> in, int level)
      : PromiseWorker(env, "bisync:compress"), in_(std::move(in)), level_(level) {}
  ~CompressWorker() override { free(out_); }

  bool Run() override {
    size_t total = 0;
    for (const Span& s : in_) total += s.len;
    cap_ = ZSTD_compressBound(total);
    out_ = static_cast<uint8_t*>(malloc(cap_ ? cap_ : 1));
    ZSTD_CCtx* cx = ZSTD_createCCtx();
    if (!out_ || !cx) {
      ZSTD_freeCCtx(cx);
      err_.Set(ENOMEM, "malloc");
      return false;
    }
    bool ok = Compress(cx, total);
    ZSTD_freeCCtx(cx);
    return ok;
  }

  Napi::Value Result(Napi::Env env) override {
    uint8_t* p = out_;
    out_ = nullptr;
    return AdoptBuffer(env, p, len_);
  }

 private:
  bool Compress(ZSTD_CCtx* cx, size_t total) {
    if (ZstdFailed(ZSTD_CCtx_setParameter(cx, ZSTD_c_compressionLevel, level_), "ZSTD_CCtx_setParameter", &err_) ||
        ZstdFailed(ZSTD_CCtx_setParameter(cx, ZSTD_c_checksumFlag, 1), "ZSTD_CCtx_setParameter", &err_) ||
        ZstdFailed(ZSTD_CCtx_setPledgedSrcSize(cx, total), "ZSTD_CCtx_setPledgedSrcSize", &err_))
      return false;
    ZSTD_outBuffer out{out_, cap_, 0};
    for (size_t k = 0; k < in_.size(); k++) {
      const bool last = k + 1 == in_.size();
      ZSTD_inBuffer in{in_[k].data, in_[k].len, 0};
      size_t rc;
      do {
        rc = ZSTD_compressStream2(cx, &out, &in, last ? ZSTD_e_end : ZSTD_e_continue);
        if (ZstdFailed(rc, "ZSTD_compressStream2", &err_)) return false;
      } while (last ? rc != 0 : in.pos < in.size);
    }
    if (in_.empty()) {
      ZSTD_inBuffer in{nullptr, 0, 0};
      if (ZstdFailed(ZSTD_compressStream2(cx, &out, &in, ZSTD_e_end), "ZSTD_compressStream2", &err_)) return false;
    }
    len_ = out.pos;
    return true;
  }

  std::vector<Span> in_;
  int level_;
  uint8_t* out_ = nullptr;
  size_t cap_ = 0, len_ = 0;
};

// decompress(input, originalSize) -> Buffer of exactly originalSize bytes.
class DecompressWorker : public PromiseWorker {
 public:
  DecompressWorker(Napi::Env env, Span in, size_t size)
      : PromiseWorker(env, "bisync:decompress"), in_(in), size_(size) {}
  ~DecompressWorker() override { free(out_); }

  bool Run() override {
    out_ = static_cast<uint8_t*>(malloc(size_ ? size_ : 1));
    if (!out_) {
      err_.Set(ENOMEM, "malloc");
      return false;
    }
    const size_t rc = ZSTD_decompress(out_, size_, in_.data, in_.len);
    if (ZstdFailed(rc, "ZSTD_decompress", &err_)) return false;
    if (rc != size_) {
      err_.Set(EPROTO, "ZSTD_decompress");
      err_.detail = "decompressed " + std::to_string(rc) + " bytes, expected " + std::to_string(size_);
      return false;
    }
    return true;
  }

  Napi::Value Result(Napi::Env env) override {
    uint8_t* p = out_;
    out_ = nullptr;
    return AdoptBuffer(env, p, size_);
  }

 private:
  Span in_;
  size_t size_;
  uint8_t* out_ = nullptr;
};

}  // namespace

void InitCompress(Napi::Env env, Napi::Object exports) {
  exports.Set("compress", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                auto* w = new CompressWorker(info.Env(), ArgSpans(info, 0), static_cast<int>(ArgInt(info, 1)));
                w->Keep("input", info[0]);
                return Start(w);
              }, "compress"));
  exports.Set("decompress", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                if (!info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "argument 0 must be a Buffer");
                auto b = info[0].As<Napi::Buffer<uint8_t>>();
                const int64_t size = ArgInt(info, 1);
                if (size < 0) throw Napi::RangeError::New(info.Env(), "original size must not be negative");
                auto* w = new DecompressWorker(info.Env(), Span{b.Data(), b.Length()}, static_cast<size_t>(size));
                w->Keep("input", info[0]);
                return Start(w);
              }, "decompress"));
  exports.Set("hashBuffers", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                // Synchronous XXH3-128 over buffers back to back (a frame's parts),
                // canonical form, equal to hashBuffer of their concatenation.
                XXH3_state_t st;
                XXH3_128bits_reset(&st);
                for (const Span& s : ArgSpans(info, 0)) XXH3_128bits_update(&st, s.data, s.len);
                XXH128_canonical_t c;
                XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&st));
                return Napi::Buffer<uint8_t>::Copy(info.Env(), c.digest, sizeof c.digest);
              }, "hashBuffers"));
}

}  // namespace bisync
