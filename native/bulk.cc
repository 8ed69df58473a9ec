// The bulk data path of the transport: one batch of extents moves between a
// device and a data stream (a TCP socket whose TLS-PSK handshake JS did) as
// AES-GCM records of at most kRecordBytes each, sealed and opened with the
// OpenSSL that Node carries. JS owns policy (keys, sequence numbers, which
// stream, when); this file reads a record's extents into an aligned buffer,
// encrypts it in place a slice at a time and hands each slice to the kernel,
// or the reverse, and writes no byte of a record before its tag has been
// verified.
//
// Each call runs on its own thread, not libuv's pool: a call blocks on its
// socket until the peer sends or reads, and four pool threads held that way
// would starve the device work both sides also need (and could deadlock).
//
// Record: 32-byte header (authenticated as AAD), ciphertext, 16-byte tag.
//   0 u32 magic 'BSB1'  4 u8 kind  5..7 zero  8 u64 sequence  16 u32 id
//   20 u32 ciphertext bytes  24 u32 plaintext bytes (before zstd)  28 u32 zero
// Nonce: 4 zero bytes then the sequence number (big-endian); one key per
// stream and direction, so a (key, nonce) pair is never used twice.
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "errors.h"
#include "extents.h"
#include "sys/blockdev.h"

namespace bisync {

namespace {

constexpr uint32_t kMagic = 0x31425342;  // "BSB1" little-endian
constexpr size_t kHeader = 32, kTag = 16, kKey = 32;
constexpr size_t kSlice = 256u << 10;          // encrypt/decrypt and send/recv step: stays in L2
constexpr uint64_t kMaxRecord = 1ull << 30;    // the frame limit of the control channel, too
// Block data moves in records of at most this much: a record is read, sealed and sent (or
// received, opened, written and read back) while it is still in the core's L2 cache, and the
// receiver writes each record as soon as its own tag held instead of after the whole batch.
constexpr uint64_t kRecordBytes = 512u << 10;
enum Kind : uint8_t { kData = 1, kDataZstd = 2, kMessage = 3 };

// Aligned buffers outlive the calls that use them: a fresh buffer per record
// costs a page fault per 4 KiB. Shared by every thread (and every
// worker_thread's copy of the addon), hence the lock.
class BufferPool {
 public:
  sys::AlignedPtr Take(size_t n, size_t* cap) {
    {
      std::lock_guard<std::mutex> g(mu_);
      for (size_t i = 0; i < free_.size(); i++)
        if (free_[i].cap >= n) {
          Slot s = std::move(free_[i]);
          free_.erase(free_.begin() + i);
          *cap = s.cap;
          return std::move(s.p);
        }
    }
    return sys::AllocHuge(std::max<size_t>(n, kRecordBytes), cap);  // 2 MiB: holds any record
  }
  void Give(sys::AlignedPtr p, size_t cap) {
    if (!p || cap > kKeep) return;  // an odd large one is freed, not kept for the agent's lifetime
    std::lock_guard<std::mutex> g(mu_);
    if (free_.size() < 8) free_.push_back({std::move(p), cap});
  }
  static constexpr size_t kKeep = 2u << 20;

 private:
  struct Slot {
    sys::AlignedPtr p;
    size_t cap;
  };
  std::mutex mu_;
  std::vector<Slot> free_;
};

BufferPool& Pool() {
  static BufferPool* pool = new BufferPool();  // never destroyed: threads may still return buffers at exit
  return *pool;
}

struct PooledBuffer {
  sys::AlignedPtr p;
  size_t cap = 0;
  bool Get(size_t n) {
    if (p && cap >= n) return true;
    Pool().Give(std::move(p), cap);
    p = Pool().Take(n, &cap);
    return p != nullptr;
  }
  ~PooledBuffer() { Pool().Give(std::move(p), cap); }
  uint8_t* data() { return p.get(); }
};

void PutU32(uint8_t* p, uint32_t v) { memcpy(p, &v, 4); }
void PutU64(uint8_t* p, uint64_t v) { memcpy(p, &v, 8); }
uint32_t GetU32(const uint8_t* p) { uint32_t v; memcpy(&v, p, 4); return v; }
uint64_t GetU64(const uint8_t* p) { uint64_t v; memcpy(&v, p, 8); return v; }

void Nonce(uint64_t seq, uint8_t out[12]) {
  memset(out, 0, 4);
  for (int i = 0; i < 8; i++) out[4 + i] = static_cast<uint8_t>(seq >> (56 - 8 * i));
}

// CPU seconds this thread spent in each part of a batch, so a benchmark can
// say where the time goes (the JS side adds these up per stream).
// verify: reading back what was written and comparing it with what was received.
enum Phase { kRead, kCrypt, kNet, kWrite, kZstd, kVerify, kPhases };
const char* const kPhaseNames[kPhases] = {"read", "crypto", "socket", "write", "zstd", "verify"};

double ThreadCpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Charges the CPU time of its scope to one phase.
class Charge {
 public:
  Charge(double* sink) : sink_(sink), t0_(ThreadCpu()) {}
  ~Charge() { *sink_ += ThreadCpu() - t0_; }

 private:
  double* sink_;
  double t0_;
};

// What every call knows: the socket, the key and sequence number of this
// record, the id JS expects in it, and where errors go.
struct Record {
  int sock;
  uint8_t key[kKey];
  uint64_t seq;
  uint32_t id;
};

class Op {
 public:
  virtual ~Op() { EVP_CIPHER_CTX_free(ctx_); }
  uint64_t wire = 0;
  double cpu[kPhases] = {};
  // The receiver read the batch back from the device and found what it wrote.
  bool verified = false;

 protected:
  explicit Op(const Record& r) : r_(r) {}
  Record r_;
  SysError err_;
  EVP_CIPHER_CTX* ctx_ = nullptr;

  bool Fail(int e, const char* call, std::string detail = "") {
    err_.Set(e, call);
    err_.detail = std::move(detail);
    return false;
  }

  // JS numbered `expected` records for this batch (an empty batch counts as one). Were the two
  // counts ever to differ, the sender would seal under sequence numbers its lane hands out
  // again: refuse before a byte moves.
  bool CountsMatch(size_t made, uint64_t expected) {
    if (std::max<size_t>(made, 1) == expected) return true;
    return Fail(EPROTO, "bulk record", "the batch makes " + std::to_string(made) + " records of at most " + std::to_string(kRecordBytes) +
                                           " bytes, but " + std::to_string(expected) + " sequence numbers were reserved for it");
  }

  bool SendAll(const uint8_t* p, size_t n) {
    Charge c(&cpu[kNet]);
    while (n) {
      ssize_t k = send(r_.sock, p, n, MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) return Fail(errno, "send");
      p += k;
      n -= static_cast<size_t>(k);
      wire += static_cast<uint64_t>(k);
    }
    return true;
  }

  bool RecvAll(uint8_t* p, size_t n) {
    Charge c(&cpu[kNet]);
    while (n) {
      ssize_t k = recv(r_.sock, p, n, MSG_WAITALL);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) return Fail(errno, "recv");
      if (k == 0) return Fail(ECONNRESET, "recv", "the data stream was closed by the other side");
      p += k;
      n -= static_cast<size_t>(k);
      wire += static_cast<uint64_t>(k);
    }
    return true;
  }

  bool Init(bool encrypt, const uint8_t* header) {
    uint8_t iv[12];
    Nonce(r_.seq, iv);
    int outl = 0;
    if (!ctx_) ctx_ = EVP_CIPHER_CTX_new();  // one per call, re-keyed for each of its records
    if (!ctx_) return Fail(ENOMEM, "EVP_CIPHER_CTX_new");
    int ok = encrypt ? EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, r_.key, iv) &&
                           EVP_EncryptUpdate(ctx_, nullptr, &outl, header, kHeader)
                     : EVP_DecryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, r_.key, iv) &&
                           EVP_DecryptUpdate(ctx_, nullptr, &outl, header, kHeader);
    return ok ? true : Fail(EPROTO, "EVP_CipherInit");
  }

  // Seals n bytes at p in place, a slice at a time, sending each slice while
  // it is still in cache; then the tag.
  bool SealAndSend(uint8_t kind, uint8_t* p, size_t n, uint32_t rawLen) {
    uint8_t h[kHeader] = {};
    PutU32(h, kMagic);
    h[4] = kind;
    PutU64(h + 8, r_.seq);
    PutU32(h + 16, r_.id);
    PutU32(h + 20, static_cast<uint32_t>(n));
    PutU32(h + 24, rawLen);
    if (!Init(true, h) || !SendAll(h, kHeader)) return false;
    for (size_t done = 0; done < n;) {
      int k = static_cast<int>(std::min(kSlice, n - done)), outl = 0;
      {
        Charge c(&cpu[kCrypt]);
        if (!EVP_EncryptUpdate(ctx_, p + done, &outl, p + done, k) || outl != k) return Fail(EPROTO, "EVP_EncryptUpdate");
      }
      if (!SendAll(p + done, static_cast<size_t>(k))) return false;
      done += static_cast<size_t>(k);
    }
    uint8_t tag[kTag];
    int outl = 0;
    if (!EVP_EncryptFinal_ex(ctx_, tag, &outl) || !EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, kTag, tag))
      return Fail(EPROTO, "EVP_EncryptFinal");
    return SendAll(tag, kTag);
  }

  // Receives a record's header and checks everything it claims before any
  // allocation; *n is the ciphertext length, *raw the plaintext length.
  bool RecvHeader(uint8_t h[kHeader], uint8_t* kind, size_t* n, size_t* raw, size_t maxRaw) {
    if (!RecvAll(h, kHeader)) return false;
    if (GetU32(h) != kMagic) return Fail(EPROTO, "bulk record", "bad magic: not a drbd-bisync data stream, or it is out of step");
    *kind = h[4];
    if (*kind != kData && *kind != kDataZstd && *kind != kMessage) return Fail(EPROTO, "bulk record", "unknown record kind " + std::to_string(*kind));
    if (GetU64(h + 8) != r_.seq) return Fail(EPROTO, "bulk record", "sequence " + std::to_string(GetU64(h + 8)) + ", expected " + std::to_string(r_.seq) + " (replayed, reordered or lost record)");
    if (GetU32(h + 16) != r_.id) return Fail(EPROTO, "bulk record", "batch id " + std::to_string(GetU32(h + 16)) + ", expected " + std::to_string(r_.id));
    *n = GetU32(h + 20);
    *raw = GetU32(h + 24);
    // The sender compresses only when that makes the record smaller: a compressed record longer
    // than its plain text is forged or broken, and would make us allocate for it before its tag.
    if (*raw > maxRaw || *n > kMaxRecord || (*kind != kDataZstd && *n != *raw) || (*kind == kDataZstd && *n >= *raw))
      return Fail(EPROTO, "bulk record", "record of " + std::to_string(*n) + " bytes (" + std::to_string(*raw) + " plain) does not fit the " + std::to_string(maxRaw) + " expected");
    return true;
  }

  // Receives and opens n bytes into p, a slice at a time; false (EBADMSG) when the tag fails.
  bool RecvAndOpen(const uint8_t* h, uint8_t* p, size_t n) {
    if (!Init(false, h)) return false;
    for (size_t done = 0; done < n;) {
      int k = static_cast<int>(std::min(kSlice, n - done)), outl = 0;
      if (!RecvAll(p + done, static_cast<size_t>(k))) return false;
      Charge c(&cpu[kCrypt]);
      if (!EVP_DecryptUpdate(ctx_, p + done, &outl, p + done, k) || outl != k) return Fail(EPROTO, "EVP_DecryptUpdate");
      done += static_cast<size_t>(k);
    }
    uint8_t tag[kTag];
    int outl = 0;
    if (!RecvAll(tag, kTag)) return false;
    if (!EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, kTag, tag) || EVP_DecryptFinal_ex(ctx_, tag, &outl) <= 0)
      return Fail(EBADMSG, "bulk record", "authentication tag mismatch: the record was altered, replayed, or sealed with another key; nothing in it was used");
    return true;
  }
};

// One zstd context per call, reused for each of its records (a fresh one per record would
// allocate its tables every 512 KiB).
struct ZstdFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
using ZstdC = std::unique_ptr<ZSTD_CCtx, ZstdFree>;
using ZstdD = std::unique_ptr<ZSTD_DCtx, ZstdFree>;

// Device I/O for a batch or one of its records: extents back to back in one aligned buffer
// (GatherInto and ScatterFrom, which read nothing past an extent's end: no slack needed).
struct Device {
  int fd;
  std::string path;
  std::vector<Extent> x;
  uint64_t Total() const { return TotalLen(x); }
};

// A batch's records: the extents cut, in order, into windows of at most kRecordBytes of data
// (one record each), so both sides of a stream derive the same records from the same extents.
std::vector<Device> Records(const Device& d) {
  std::vector<Device> out;
  Device w{d.fd, d.path, {}};
  uint64_t fill = 0;
  for (Extent x : d.x) {
    while (x.len) {
      const uint64_t n = std::min<uint64_t>(x.len, kRecordBytes - fill);
      w.x.push_back({x.off, n});
      x.off += n;
      x.len -= n;
      fill += n;
      if (fill == kRecordBytes) {
        out.push_back(std::move(w));
        w = Device{d.fd, d.path, {}};
        fill = 0;
      }
    }
  }
  if (fill) out.push_back(std::move(w));
  return out;
}

// The JS face of an Op: a promise, the values it keeps alive, and its thread.
class Call : public Op {
 public:
  static void Done(Napi::Env env, Napi::Function, std::nullptr_t*, Call* c);
  using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Call, &Call::Done>;

  void Start(Napi::Env env, const char* name) {
    tsfn_ = Tsfn::New(env, name, 0, 1);
    // Done() deletes this call, maybe before BlockingCall returns: keep the tsfn on the stack.
    std::thread([this, tsfn = tsfn_] {
      try {
        ok_ = Run();
      } catch (const std::bad_alloc&) {  // nothing may leave this thread: it would terminate the process
        ok_ = Fail(ENOMEM, "bulk");
      }
      // napi_closing: the environment (a worker thread, say) is going away. Node's rules forbid
      // touching the function again, and Done() will not run: the call is left behind.
      if (tsfn.BlockingCall(this) == napi_ok) tsfn.Release();
    }).detach();
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  // A batch is at most 1 GiB, checked before its records are laid out: on the receiving
  // side the extents come from the peer, and a whole large device would make millions.
  bool BatchFits(const Device& d, const char* call) {
    const uint64_t total = d.Total();
    return total <= kMaxRecord || Fail(EINVAL, call, "batch of " + std::to_string(total) + " bytes exceeds 1 GiB");
  }
  Call(Napi::Env env, const Record& r)
      : Op(r), deferred_(Napi::Promise::Deferred::New(env)) {}
  virtual bool Run() = 0;
  virtual Napi::Value Result(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("wire", Napi::Number::New(env, static_cast<double>(wire)));
    if (verified) o.Set("verified", true);
    Napi::Object t = Napi::Object::New(env);
    for (int i = 0; i < kPhases; i++) t.Set(kPhaseNames[i], Napi::Number::New(env, cpu[i]));
    o.Set("cpu", t);
    return o;
  }

 private:
  Napi::Promise::Deferred deferred_;
  Tsfn tsfn_;
  bool ok_ = false;
};

// Settles the promise on the JS thread (env is null when the environment is
// going away, e.g. a worker_thread exiting: then only the memory is freed).
void Call::Done(Napi::Env env, Napi::Function, std::nullptr_t*, Call* c) {
  if (env) {
    if (c->ok_) {
      c->deferred_.Resolve(c->Result(env));
    } else {
      c->deferred_.Reject(MakeSystemError(env, c->err_).Value());
    }
  }
  delete c;
}

// sendExtents(sock, key, seq, id, fd, path, extents, zstdLevel, records) -> { wire }: the batch as
// Records(extents), sequence numbers seq, seq+1, ...; each record read, compressed when that
// pays, sealed and sent before the next is read.
class SendExtents : public Call {
 public:
  SendExtents(Napi::Env env, const Record& r, Device d, int level, uint64_t records)
      : Call(env, r), d_(std::move(d)), level_(level), records_(records) {}
  bool Run() override {
    if (!BatchFits(d_, "bulk send")) return false;
    std::vector<Device> recs = Records(d_);
    if (!CountsMatch(recs.size(), records_)) return false;
    PooledBuffer buf, z;
    if (!buf.Get(kRecordBytes)) return Fail(ENOMEM, "posix_memalign");
    ZstdC cctx(level_ > 0 ? ZSTD_createCCtx() : nullptr);
    if (level_ > 0 && !cctx) return Fail(ENOMEM, "ZSTD_createCCtx");
    for (Device& rec : recs) {
      if (!SendRecord(rec, buf, z, cctx.get())) return false;
      r_.seq++;
    }
    return true;
  }

 private:
  bool SendRecord(Device& rec, PooledBuffer& buf, PooledBuffer& z, ZSTD_CCtx* cctx) {
    const uint64_t n = rec.Total();
    {
      Charge c(&cpu[kRead]);
      if (!GatherInto(rec.fd, rec.path, rec.x, buf.data(), &err_)) return false;
    }
    if (cctx && n >= 4096) {
      const size_t bound = ZSTD_compressBound(n);
      if (!z.Get(bound)) return Fail(ENOMEM, "posix_memalign");
      size_t k;
      {
        Charge c(&cpu[kZstd]);
        k = ZSTD_compressCCtx(cctx, z.data(), bound, buf.data(), n, level_);
      }
      if (ZSTD_isError(k)) return Fail(EPROTO, "ZSTD_compress", ZSTD_getErrorName(k));
      if (k < n) return SealAndSend(kDataZstd, z.data(), k, static_cast<uint32_t>(n));
    }
    return SealAndSend(kData, buf.data(), n, static_cast<uint32_t>(n));
  }
  Device d_;
  int level_;
  uint64_t records_;
};

// recvExtents(sock, key, seq, id, fd, path, extents, verify, records) -> { wire, verified? }: receives
// the records sendExtents made of the same extents and writes each only after its own tag held.
// With verify, each record's extents are then read back from the device into another buffer
// (O_DIRECT: from the device, not from a cache) and compared with what was written: the bytes
// the tag vouched for, i.e. the sender's. A difference fails the call (syscall "verify").
class RecvExtents : public Call {
 public:
  RecvExtents(Napi::Env env, const Record& r, Device d, bool verify, uint64_t records)
      : Call(env, r), d_(std::move(d)), verify_(verify), records_(records) {}
  bool Run() override {
    if (!BatchFits(d_, "bulk recv")) return false;
    std::vector<Device> recs = Records(d_);
    if (!CountsMatch(recs.size(), records_)) return false;
    PooledBuffer buf, plain, back;
    ZstdD dctx;  // made on the first compressed record
    for (Device& rec : recs) {
      if (!RecvRecord(rec, buf, plain, back, dctx)) return false;
      r_.seq++;
    }
    verified = verify_;
    return true;
  }

 private:
  bool RecvRecord(Device& rec, PooledBuffer& buf, PooledBuffer& plain, PooledBuffer& back, ZstdD& dctx) {
    const uint64_t total = rec.Total();
    uint8_t h[kHeader], kind;
    size_t n, raw;
    if (!RecvHeader(h, &kind, &n, &raw, total)) return false;
    if (kind == kMessage || raw != total) return Fail(EPROTO, "bulk record", "expected " + std::to_string(total) + " bytes of block data, got a record of " + std::to_string(raw));
    if (!buf.Get(n)) return Fail(ENOMEM, "posix_memalign");
    if (!RecvAndOpen(h, buf.data(), n)) return false;
    if (kind == kData) return Write(rec, buf.data()) && Verify(rec, buf.data(), total, back);
    if (!plain.Get(total)) return Fail(ENOMEM, "posix_memalign");
    if (!dctx) dctx.reset(ZSTD_createDCtx());
    if (!dctx) return Fail(ENOMEM, "ZSTD_createDCtx");
    size_t got;
    {
      Charge c(&cpu[kZstd]);
      got = ZSTD_decompressDCtx(dctx.get(), plain.data(), total, buf.data(), n);
    }
    if (ZSTD_isError(got) || got != total) return Fail(EPROTO, "ZSTD_decompress", ZSTD_isError(got) ? ZSTD_getErrorName(got) : "size differs from the header's");
    return Write(rec, plain.data()) && Verify(rec, plain.data(), total, back);
  }
  bool Write(Device& rec, const uint8_t* buf) {
    Charge c(&cpu[kWrite]);
    return ScatterFrom(rec.fd, rec.path, rec.x, buf, &err_);
  }
  bool Verify(Device& rec, const uint8_t* written, uint64_t total, PooledBuffer& back) {
    if (!verify_) return true;
    Charge c(&cpu[kVerify]);
    if (!back.Get(total)) return Fail(ENOMEM, "posix_memalign");
    if (!GatherInto(rec.fd, rec.path, rec.x, back.data(), &err_)) return false;
    if (memcmp(back.data(), written, total) != 0) {
      uint64_t pos = 0;
      while (back.data()[pos] == written[pos]) pos++;
      uint64_t at = 0;
      for (const Extent& x : rec.x) {
        if (pos < x.len) { at = x.off + pos; break; }
        pos -= x.len;
      }
      err_.path = d_.path;
      return Fail(EIO, "verify", "the device returned other bytes than were written, first at offset " + std::to_string(at));
    }
    return true;
  }
  Device d_;
  bool verify_;
  uint64_t records_;
};

// sendMessage(sock, key, seq, id, buffer) -> { wire }: a small record (stream hello and its answer).
class SendMessage : public Call {
 public:
  SendMessage(Napi::Env env, const Record& r, const uint8_t* p, size_t n) : Call(env, r), msg_(p, p + n) {}
  bool Run() override { return SealAndSend(kMessage, msg_.data(), msg_.size(), static_cast<uint32_t>(msg_.size())); }

 private:
  std::vector<uint8_t> msg_;
};

// recvMessage(sock, key, seq, id, maxBytes) -> { wire, message: Buffer }
class RecvMessage : public Call {
 public:
  RecvMessage(Napi::Env env, const Record& r, size_t max) : Call(env, r), max_(max) {}
  bool Run() override {
    uint8_t h[kHeader], kind;
    size_t n, raw;
    if (!RecvHeader(h, &kind, &n, &raw, max_)) return false;
    if (kind != kMessage) return Fail(EPROTO, "bulk record", "expected a message record, got kind " + std::to_string(kind));
    msg_.resize(n);
    return RecvAndOpen(h, msg_.data(), n);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Call::Result(env).As<Napi::Object>();
    o.Set("message", Napi::Buffer<uint8_t>::Copy(env, msg_.data(), msg_.size()));
    return o;
  }

 private:
  size_t max_;
  std::vector<uint8_t> msg_;
};

// ---- Benchmark helpers (npm run bench): what this machine itself charges for the same bytes ----

// rawSend/rawRecv(sock, bytes) -> { wire, cpu }: plain bytes through the socket in 1 MiB calls and
// nothing else (no cipher, no device): the kernel's own cost of moving them, plus one copy each way.
class RawIo : public Call {
 public:
  RawIo(Napi::Env env, int sock, uint64_t bytes, bool send) : Call(env, Record{sock, {}, 0, 0}), bytes_(bytes), send_(send) {}
  bool Run() override {
    std::vector<uint8_t> buf(1u << 20, 0xa5);
    for (uint64_t done = 0; done < bytes_;) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes_ - done));
      if (!(send_ ? SendAll(buf.data(), k) : RecvAll(buf.data(), k))) return false;
      done += k;
    }
    return true;
  }

 private:
  uint64_t bytes_;
  bool send_;
};

// cipherCost(bytes) -> { seal, open }: thread CPU seconds to seal and then open `bytes` as 8 MiB
// records, in place, 256 KiB at a time, with the EVP calls SealAndSend and RecvAndOpen make (on
// the calling thread: a benchmark helper, not for the event loop of a running merge).
Napi::Value CipherCost(const Napi::CallbackInfo& info) {
  const uint64_t bytes = ArgUint(info, 0, "bytes");
  constexpr size_t kRecord = 8u << 20;
  std::vector<uint8_t> rec(kRecord, 0x5a);
  uint8_t key[kKey], aad[kHeader] = {}, iv[12], tag[kTag];
  for (size_t i = 0; i < kKey; i++) key[i] = static_cast<uint8_t>(i * 7 + 1);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  double seal = 0, open = 0;
  bool ok = ctx != nullptr;
  for (uint64_t seq = 0, done = 0; ok && done < bytes; seq++, done += kRecord) {
    Nonce(seq, iv);
    int outl = 0;
    double t0 = ThreadCpu();
    ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, iv) && EVP_EncryptUpdate(ctx, nullptr, &outl, aad, kHeader);
    for (size_t p = 0; ok && p < kRecord; p += kSlice) ok = EVP_EncryptUpdate(ctx, rec.data() + p, &outl, rec.data() + p, kSlice);
    ok = ok && EVP_EncryptFinal_ex(ctx, tag, &outl) && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTag, tag);
    double t1 = ThreadCpu();
    ok = ok && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, iv) && EVP_DecryptUpdate(ctx, nullptr, &outl, aad, kHeader);
    for (size_t p = 0; ok && p < kRecord; p += kSlice) ok = EVP_DecryptUpdate(ctx, rec.data() + p, &outl, rec.data() + p, kSlice);
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTag, tag) && EVP_DecryptFinal_ex(ctx, tag, &outl) > 0;
    seal += t1 - t0;
    open += ThreadCpu() - t1;
  }
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    SysError e;
    e.Set(EPROTO, "EVP_aes_256_gcm");
    throw MakeSystemError(info.Env(), e);
  }
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("seal", seal);
  o.Set("open", open);
  return o;
}

Record ArgRecord(const Napi::CallbackInfo& info) {
  Record r{};
  r.sock = static_cast<int>(ArgUint(info, 0, "sock", INT32_MAX));
  if (!info[1].IsBuffer() || info[1].As<Napi::Buffer<uint8_t>>().Length() != kKey)
    throw Napi::TypeError::New(info.Env(), "key must be a 32-byte Buffer");
  memcpy(r.key, info[1].As<Napi::Buffer<uint8_t>>().Data(), kKey);
  r.seq = ArgUint(info, 2, "seq");
  r.id = static_cast<uint32_t>(ArgUint(info, 3, "id", UINT32_MAX));
  return r;
}

Device ArgDevice(const Napi::CallbackInfo& info, size_t i) {
  return Device{static_cast<int>(ArgUint(info, i, "fd", INT32_MAX)), ArgString(info, i + 1), ArgExtents(info, i + 2)};
}

Napi::Value Launch(Napi::Env env, Call* c, const char* name) {
  auto p = c->Promise();
  c->Start(env, name);
  return p;
}

// adopt(fd) -> fd: a blocking, close-on-exec duplicate that outlives the JS socket it came from.
Napi::Value Adopt(const Napi::CallbackInfo& info) {
  int fd = fcntl(static_cast<int>(ArgUint(info, 0, "fd", INT32_MAX)), F_DUPFD_CLOEXEC, 3);
  SysError e;
  if (fd < 0) {
    e.Set(errno, "dup");
    throw MakeSystemError(info.Env(), e);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
    e.Set(errno, "fcntl");
    close(fd);
    throw MakeSystemError(info.Env(), e);
  }
  // Blocking calls on a stream no longer see Node's idle timer (it watches the control
  // connection only): a peer or path gone dead must still end them within about the 30 s
  // the README promises. Data unacknowledged for 30 s fails the call (ETIMEDOUT); an idle
  // stream is probed every 5 s after 10 s, four times. Best effort: not TCP (a socketpair
  // in a test) keeps the defaults.
  const int on = 1, idle = 10, intvl = 5, cnt = 4;
  const unsigned user_timeout_ms = 30000;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void InitBulk(Napi::Env env, Napi::Object exports) {
  Napi::Object b = Napi::Object::New(env);
  b.Set("adopt", Napi::Function::New(env, Adopt, "adopt"));
  // shutdown wakes every thread blocked on the socket; close only once none is.
  b.Set("shutdown", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { shutdown(static_cast<int>(ArgUint(i, 0, "sock", INT32_MAX)), SHUT_RDWR); }, "shutdown"));
  b.Set("close", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { close(static_cast<int>(ArgUint(i, 0, "sock", INT32_MAX))); }, "close"));
  // Arguments are read in order, statement by statement, so the first bad one is the one named.
  b.Set("sendExtents", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
          Record r = ArgRecord(i);
          Device d = ArgDevice(i, 4);
          const int level = static_cast<int>(ArgInt(i, 7, "zstdLevel"));
          const uint64_t records = ArgUint(i, 8, "records");
          return Launch(i.Env(), new SendExtents(i.Env(), r, std::move(d), level, records), "bisync:bulkSend"); }, "sendExtents"));
  b.Set("recvExtents", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
          Record r = ArgRecord(i);
          Device d = ArgDevice(i, 4);
          const bool verify = ArgBool(i, 7);
          const uint64_t records = ArgUint(i, 8, "records");
          return Launch(i.Env(), new RecvExtents(i.Env(), r, std::move(d), verify, records), "bisync:bulkRecv"); }, "recvExtents"));
  b.Set("sendMessage", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
          if (!i[4].IsBuffer()) throw Napi::TypeError::New(i.Env(), "message must be a Buffer");
          auto m = i[4].As<Napi::Buffer<uint8_t>>();
          return Launch(i.Env(), new SendMessage(i.Env(), ArgRecord(i), m.Data(), m.Length()), "bisync:bulkSendMessage"); }, "sendMessage"));
  b.Set("recvMessage", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
          return Launch(i.Env(), new RecvMessage(i.Env(), ArgRecord(i), static_cast<size_t>(ArgUint(i, 4, "maxBytes", kMaxRecord))), "bisync:bulkRecvMessage"); }, "recvMessage"));
  b.Set("rawSend", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
          return Launch(i.Env(), new RawIo(i.Env(), static_cast<int>(ArgUint(i, 0, "sock", INT32_MAX)), ArgUint(i, 1, "bytes"), true), "bisync:rawSend"); }, "rawSend"));
  b.Set("rawRecv", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
          return Launch(i.Env(), new RawIo(i.Env(), static_cast<int>(ArgUint(i, 0, "sock", INT32_MAX)), ArgUint(i, 1, "bytes"), false), "bisync:rawRecv"); }, "rawRecv"));
  b.Set("cipherCost", Napi::Function::New(env, CipherCost, "cipherCost"));
  b.Set("recordBytes", Napi::Number::New(env, static_cast<double>(kRecordBytes)));
  exports.Set("bulk", b);
}

}  // namespace bisync
