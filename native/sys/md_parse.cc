// Bitmap scanning and activity-log replay for DRBD meta-data (see md_parse.h).
#include "sys/md_parse.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace bisync {
namespace md {

namespace {

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
const std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

inline uint32_t Le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline uint32_t Be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}
inline uint16_t Be16(const uint8_t* p) { return uint16_t(uint16_t(p[0]) << 8 | p[1]); }
inline void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24); p[1] = uint8_t(v >> 16); p[2] = uint8_t(v >> 8); p[3] = uint8_t(v);
}
inline void PutBe16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8); p[1] = uint8_t(v); }

// Field offsets of struct al_transaction_on_disk.
constexpr size_t kOffSlots = 36, kOffExtents = 36 + 2 * kAlUpdates, kOffContext = kOffExtents + 4 * kAlUpdates;
static_assert(kOffContext + 4 * kAlContext == 4096, "AL transaction is one 4 KiB block");

// The block's checksum as DRBD computes it: over 4 KiB with the crc field zeroed.
uint32_t BlockCrc(const uint8_t* p) {
  static const uint8_t zero[4] = {0, 0, 0, 0};
  uint32_t c = Crc32c(0, p, 8);
  c = Crc32c(c, zero, 4);
  return Crc32c(c, p + 12, 4096 - 12);
}

}  // namespace

uint32_t Crc32c(uint32_t crc, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) crc = kCrcTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

// ---- Bitmap -------------------------------------------------------------

void BitmapScanner::Close(uint64_t end, std::vector<BitRun>* out) {
  if (runStart_ == UINT64_MAX) return;
  out->push_back({runStart_, end - runStart_});
  runStart_ = UINT64_MAX;
}

void BitmapScanner::Feed(const uint8_t* area, size_t bytes, std::vector<BitRun>* out) {
  const size_t group = size_t(4) * peers_;
  const size_t groups = bytes / group;
  for (size_t g = 0; g < groups; g++, word_++) {
    const uint64_t base = word_ * 32;
    uint32_t w = base >= nBits_ ? 0 : Le32(area + g * group + size_t(4) * slot_);
    if (base < nBits_ && nBits_ - base < 32) w &= (uint32_t(1) << (nBits_ - base)) - 1;
    const bool open = runStart_ != UINT64_MAX;
    if (w == 0) {
      if (open) Close(base, out);
      if (base >= nBits_) {  // nothing more can be set: skip the rest
        word_ += groups - g;
        return;
      }
      continue;
    }
    bitsSet_ += static_cast<uint64_t>(__builtin_popcount(w));
    if (w == 0xffffffffu && open) continue;
    // Walk the transitions inside the word.
    unsigned pos = 0;
    while (pos < 32) {
      const uint32_t rest = w >> pos;
      if (runStart_ != UINT64_MAX) {
        const uint32_t inv = ~rest;
        unsigned ones = inv == 0 ? 32 - pos : unsigned(__builtin_ctz(inv));
        if (pos + ones >= 32) break;  // run continues into the next word
        pos += ones;
        Close(base + pos, out);
      } else {
        if (rest == 0) break;
        pos += unsigned(__builtin_ctz(rest));
        runStart_ = base + pos;
      }
    }
  }
}

void BitmapScanner::Finish(std::vector<BitRun>* out) { Close(std::min(word_ * 32, nBits_), out); }

// ---- Activity log -------------------------------------------------------

void DecodeAlBlock(const uint8_t* p, AlBlock* b) {
  b->magic = Be32(p);
  b->trNumber = Be32(p + 4);
  b->crc32c = Be32(p + 8);
  b->type = Be16(p + 12);
  b->nUpdates = Be16(p + 14);
  b->contextSize = Be16(p + 16);
  b->contextStart = Be16(p + 18);
  for (size_t i = 0; i < kAlUpdates; i++) b->updateSlot[i] = Be16(p + kOffSlots + 2 * i);
  for (size_t i = 0; i < kAlUpdates; i++) b->updateExtent[i] = Be32(p + kOffExtents + 4 * i);
  for (size_t i = 0; i < kAlContext; i++) b->context[i] = Be32(p + kOffContext + 4 * i);
  b->crcOk = BlockCrc(p) == b->crc32c;
  b->valid = b->magic == kAlMagic && b->crcOk;
}

void EncodeAlBlock(const AlBlock& b, uint8_t* p) {
  memset(p, 0, 4096);
  PutBe32(p, b.magic);
  PutBe32(p + 4, b.trNumber);
  PutBe16(p + 12, b.type);
  PutBe16(p + 14, b.nUpdates);
  PutBe16(p + 16, b.contextSize);
  PutBe16(p + 18, b.contextStart);
  for (size_t i = 0; i < kAlUpdates; i++) PutBe16(p + kOffSlots + 2 * i, b.updateSlot[i]);
  for (size_t i = 0; i < kAlUpdates; i++) PutBe32(p + kOffExtents + 4 * i, b.updateExtent[i]);
  for (size_t i = 0; i < kAlContext; i++) PutBe32(p + kOffContext + 4 * i, b.context[i]);
  PutBe32(p + 8, BlockCrc(p));
}

void InitializeAl(uint8_t* area, size_t blocks) {
  for (size_t i = 0; i < blocks; i++) {
    uint8_t* p = area + i * 4096;
    memset(p, 0, 4096);
    PutBe32(p, kAlMagic);
    PutBe16(p + 12, kAlTrInitialized);
    PutBe32(p + 8, BlockCrc(p));
  }
}

AlReplay ReplayAl(const uint8_t* area, size_t bytes, uint32_t stripes, uint32_t stripeSize4k) {
  AlReplay r;
  if (stripes == 0 || stripeSize4k == 0) {
    r.status = kNoData;
    return r;
  }
  const uint64_t want = uint64_t(stripes) * stripeSize4k;
  const uint32_t mx = static_cast<uint32_t>(std::min<uint64_t>(want, bytes / 4096));
  r.blocks = mx;
  if (mx == 0) {
    r.status = kNoData;
    return r;
  }
  // Logical transaction slot b lives in on-disk block o (striping).
  auto onDisk = [&](uint32_t b) -> uint32_t {
    uint64_t t = b % mx;
    t = (t % stripes) * stripeSize4k + t / stripes;
    return static_cast<uint32_t>(t);
  };
  std::vector<AlBlock> cpu(mx);
  struct Cursor { uint32_t i = 0, tr = 0; } oldest, newest;
  for (uint32_t b = 0; b < mx; b++) {
    const uint32_t o = onDisk(b);
    if (o >= mx) {  // striping that does not fit the area: treat as corrupt
      cpu[b].valid = false;
      if (r.firstCorruptBlock < 0) r.firstCorruptBlock = int32_t(o);
      continue;
    }
    DecodeAlBlock(area + size_t(o) * 4096, &cpu[b]);
    if (!cpu[b].valid) {
      if (r.firstCorruptBlock < 0) r.firstCorruptBlock = int32_t(o);
      continue;
    }
    r.valid++;
    if (cpu[b].type == kAlTrInitialized) continue;
    const uint32_t tr = cpu[b].trNumber;
    if (++r.updates == 1) {
      oldest = newest = {b, tr};
      continue;
    }
    bool ok = tr != oldest.tr && tr != newest.tr;
    if (int32_t(tr - oldest.tr) < 0) {
      ok = ok && uint32_t(oldest.tr - tr + b - oldest.i) == mx;
      oldest = {b, tr};
    }
    if (int32_t(tr - newest.tr) > 0) {
      ok = ok && tr - newest.tr == b - newest.i;
      newest = {b, tr};
    }
    if (!ok && r.badTrBlock < 0) {
      r.badTrBlock = int32_t(o);
      r.badTrNumber = tr;
    }
  }
  r.oldestTr = oldest.tr;
  r.newestTr = newest.tr;
  if (r.valid == 0) {
    r.status = kNoData;
    return r;
  }
  if (r.updates == 0) {
    // All INITIALIZED (or only the very first transaction torn): nothing to do.
    r.status = (r.valid == mx || (!cpu[0].valid && r.valid == mx - 1)) ? 0 : kInvalid;
    return r;
  }
  std::vector<uint32_t> hot(kAlExtentsMax, ~0u);
  uint64_t last = newest.i < oldest.i ? uint64_t(newest.i) + mx : newest.i;
  for (uint64_t b = oldest.i; b <= last; b++) {
    const AlBlock& t = cpu[b % mx];
    if (!t.valid || t.type == kAlTrInitialized) continue;
    for (size_t i = 0; i < kAlContext; i++) {
      const uint32_t slot = uint32_t(t.contextStart) + uint32_t(i);
      if (t.context[i] == ~0u && slot >= t.contextSize) continue;
      if (slot >= kAlExtentsMax) continue;
      hot[slot] = t.context[i];
    }
    for (size_t i = 0; i < kAlUpdates; i++) {
      const uint32_t slot = t.updateSlot[i];
      if (i >= t.nUpdates && slot == 0xffff) continue;
      if (slot >= kAlExtentsMax) continue;
      hot[slot] = t.updateExtent[i];
    }
  }
  for (uint32_t e : hot)
    if (e != ~0u) r.hotExtents.push_back(e);
  std::sort(r.hotExtents.begin(), r.hotExtents.end());
  r.hotExtents.erase(std::unique(r.hotExtents.begin(), r.hotExtents.end()), r.hotExtents.end());
  r.status = int(r.updates);
  return r;
}

}  // namespace md
}  // namespace bisync
