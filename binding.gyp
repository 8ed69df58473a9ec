{
  # xxHash and zstd come from npm packages that ship their C sources (pinned in
  # package-lock.json), so the build needs no -dev packages: xxhash-addon's
  # xxhash.h (header-only with XXH_INLINE_ALL) and zstd-napi's gyp file for a
  # static libzstd. Both are build-time only: published tarballs carry prebuilds.
  "variables": {
    "xxhash_include": "<!(node scripts/native-deps.js xxhash-include)",
    "zstd_gyp": "<!(node scripts/native-deps.js zstd-gyp)"
  },
  "targets": [
    {
      "target_name": "drbd_bisync",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/sys/blockdev.cc",
        "native/sys/aio.cc",
        "native/device.cc",
        "native/extents.cc",
        "native/extent_ops.cc",
        "native/bitmap.cc",
        "native/sys/md_parse.cc",
        "native/netlink.cc",
        "native/sys/genl.cc",
        "native/compress.cc",
        "native/bulk.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<(xxhash_include)",
        "native"
      ],
      "dependencies": ["<(zstd_gyp):libzstd"],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_ADDON_API_CPP_EXCEPTIONS",
        "XXH_INLINE_ALL",
        "_FILE_OFFSET_BITS=64",
        "_GNU_SOURCE"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["-O3", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "cflags_cc": ["-std=c++17", "-O3", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
