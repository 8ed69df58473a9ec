#!/bin/sh
# Builds the libFuzzer target over the meta-data parsers (clang with
# -fsanitize=fuzzer,address,undefined) and runs it for FUZZ_SECONDS (default
# 30), after the fast-check properties of the TypeScript LVM reader for as
# long. Usage: scripts/fuzz.sh [seconds]. Crashes are left in build/fuzz/.
set -eu
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-${FUZZ_SECONDS:-30}}
OUT=build/fuzz
mkdir -p "$OUT/corpus"
CXX=${CXX_FUZZ:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz: $CXX not found (install clang)" >&2; exit 2; }
"$CXX" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Inative fuzz/md_parse_fuzz.cc native/sys/md_parse.cc -o "$OUT/md_parse_fuzz"
# Seeds: an initialised AL and a small interleaved bitmap.
if [ ! -e "$OUT/corpus/seed-al" ]; then
  node -e '
    const fs = require("fs");
    const al = Buffer.alloc(3 + 8 * 4096);
    al[0] = 0; al[1] = 1; al[2] = 8;
    fs.writeFileSync(process.argv[1] + "/seed-al", al);
    const bm = Buffer.alloc(9 + 4096, 0x0f);
    bm[0] = 1; bm[1] = 1; bm[2] = 0; bm[3] = 0; bm[4] = 0x80; bm[5] = 0; bm[6] = 3;
    fs.writeFileSync(process.argv[1] + "/seed-bm", bm);
  ' "$OUT/corpus"
fi
# The LVM reader is TypeScript: its properties run under node, not libFuzzer.
node scripts/ensure-built.js >/dev/null
node dist/scripts/fuzz-lvm.js "$SECONDS_TO_RUN"
cd "$OUT"
exec ./md_parse_fuzz -max_total_time="$SECONDS_TO_RUN" -max_len=40000 -print_final_stats=1 corpus
