// libFuzzer target over the pure meta-data parsers (native/sys/md_parse.cc):
// the bitmap scanner and the activity-log decoder/replay. The first bytes of
// the input choose the geometry; the rest is the on-disk data.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "sys/md_parse.h"

using namespace bisync::md;

namespace {

void FuzzBitmap(const uint8_t* data, size_t size) {
  if (size < 8) return;
  const uint32_t maxPeers = 1 + data[0] % 32;
  const uint32_t slot = data[1] % maxPeers;
  const uint64_t nBits = (uint64_t(data[2]) << 16 | uint64_t(data[3]) << 8 | data[4]) + 1;
  const size_t split = data[5] * 4u * maxPeers;  // feed in two pieces, as the worker does per chunk
  data += 8;
  size -= 8;
  BitmapScanner scan(maxPeers, slot, 0, nBits);
  std::vector<BitRun> runs;
  const size_t group = 4u * maxPeers;
  const size_t first = std::min(size / group * group, split);
  scan.Feed(data, first, &runs);
  scan.Feed(data + first, size - first, &runs);
  scan.Finish(&runs);
  // Runs are ascending, non-empty, non-adjacent, inside nBits, and add up.
  uint64_t total = 0, prevEnd = 0;
  for (size_t i = 0; i < runs.size(); i++) {
    const BitRun& r = runs[i];
    if (r.count == 0 || r.start + r.count > nBits || (i > 0 && r.start <= prevEnd)) abort();
    prevEnd = r.start + r.count;
    total += r.count;
  }
  if (total != scan.bitsSet()) abort();
}

void FuzzAl(const uint8_t* data, size_t size) {
  if (size < 2) return;
  const uint32_t stripes = data[0] % 5;
  const uint32_t stripeSize = data[1] % 12;
  AlReplay r = ReplayAl(data + 2, size - 2, stripes, stripeSize);
  if (r.valid > r.blocks || r.updates > r.valid) abort();
  for (size_t i = 1; i < r.hotExtents.size(); i++)
    if (r.hotExtents[i - 1] >= r.hotExtents[i]) abort();
  // A decoded block re-encodes to a block that decodes to the same fields.
  if (size - 2 >= 4096) {
    AlBlock b, c;
    DecodeAlBlock(data + 2, &b);
    std::vector<uint8_t> buf(4096);
    EncodeAlBlock(b, buf.data());
    DecodeAlBlock(buf.data(), &c);
    if (!c.crcOk || c.trNumber != b.trNumber || c.nUpdates != b.nUpdates || c.context[918] != b.context[918]) abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1)
    FuzzBitmap(data + 1, size - 1);
  else
    FuzzAl(data + 1, size - 1);
  return 0;
}
