// Pure parsing of DRBD on-disk meta-data pieces: bitmap scanning and activity
// log replay. No N-API and no I/O here, so the addon and the libFuzzer target
// compile the same code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bisync {
namespace md {

// CRC32C (Castagnoli) without pre/post inversion, as DRBD seeds it with 0.
uint32_t Crc32c(uint32_t crc, const uint8_t* p, size_t n);

// ---- Bitmap -------------------------------------------------------------

struct BitRun {
  uint64_t start, count;  // in bits
};

// Scans one slot of an (optionally interleaved) bitmap: 32-bit little-endian
// words, slot s's word k at byte 4*(k*maxPeers + s). Feed consecutive pieces
// of the area; runs crossing a piece boundary stay open until Finish().
class BitmapScanner {
 public:
  BitmapScanner(uint32_t maxPeers, uint32_t slot, uint64_t firstWord, uint64_t nBits)
      : peers_(maxPeers), slot_(slot), word_(firstWord), nBits_(nBits) {}
  // `area` starts at slot word word_ (i.e. at byte 4*word_*maxPeers of the
  // area); only whole word groups (4*maxPeers bytes) are consumed.
  void Feed(const uint8_t* area, size_t bytes, std::vector<BitRun>* out);
  void Finish(std::vector<BitRun>* out);
  uint64_t bitsSet() const { return bitsSet_; }
  uint64_t nextWord() const { return word_; }

 private:
  void Close(uint64_t end, std::vector<BitRun>* out);
  uint32_t peers_, slot_;
  uint64_t word_, nBits_;
  uint64_t runStart_ = UINT64_MAX;
  uint64_t bitsSet_ = 0;
};

// ---- Activity log -------------------------------------------------------

constexpr uint32_t kAlMagic = 0x69cb65a2;
constexpr uint16_t kAlTrUpdate = 0;
constexpr uint16_t kAlTrInitialized = 0xffff;
constexpr size_t kAlUpdates = 64;
constexpr size_t kAlContext = 919;
constexpr uint32_t kAlExtentsMax = 65534;

struct AlBlock {
  uint32_t magic, trNumber, crc32c;
  uint16_t type, nUpdates, contextSize, contextStart;
  uint16_t updateSlot[kAlUpdates];
  uint32_t updateExtent[kAlUpdates];
  uint32_t context[kAlContext];
  bool crcOk;
  bool valid;  // magic and crc
};

// Decodes one 4 KiB transaction block (big-endian fields).
void DecodeAlBlock(const uint8_t* p, AlBlock* out);

struct AlReplay {
  // drbdmeta's replay_al_84 result: >0 updates replayed, 0 nothing to do,
  // kNoData no valid block, kInvalid only some INITIALIZED blocks valid.
  int status = 0;
  uint32_t blocks = 0, valid = 0, updates = 0;
  int32_t firstCorruptBlock = -1;  // on-disk block index, -1 when none
  // A tr_number that breaks the ring sequence (duplicate, or a gap the ring
  // position does not explain); -1 when consistent.
  int32_t badTrBlock = -1;
  uint32_t badTrNumber = 0;
  uint32_t oldestTr = 0, newestTr = 0;
  std::vector<uint32_t> hotExtents;  // sorted, unique, AL extent numbers (4 MiB)
};
constexpr int kNoData = -61;   // -ENODATA
constexpr int kInvalid = -22;  // -EINVAL

// Replays an AL area of stripes*stripeSize4k blocks the way drbdmeta does
// (oldest to newest transaction; context first, then updates).
AlReplay ReplayAl(const uint8_t* area, size_t bytes, uint32_t stripes, uint32_t stripeSize4k);

// Fills `blocks` 4 KiB blocks with AL_TR_INITIALIZED transactions (what
// drbdmeta's initialize_al writes).
void InitializeAl(uint8_t* area, size_t blocks);

// Encodes one update transaction (for tests and tools crafting an AL).
void EncodeAlBlock(const AlBlock& in, uint8_t* p);

}  // namespace md
}  // namespace bisync
