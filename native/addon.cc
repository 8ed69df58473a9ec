// Registers the native surface; each concern lives in its own file.
#include <napi.h>

namespace bisync {
void InitDevice(Napi::Env env, Napi::Object exports);     // device.cc
void InitExtentOps(Napi::Env env, Napi::Object exports);  // extent_ops.cc
void InitBitmap(Napi::Env env, Napi::Object exports);     // bitmap.cc
void InitNetlink(Napi::Env env, Napi::Object exports);    // netlink.cc
void InitCompress(Napi::Env env, Napi::Object exports);   // compress.cc
void InitBulk(Napi::Env env, Napi::Object exports);       // bulk.cc
}  // namespace bisync

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  bisync::InitDevice(env, exports);
  bisync::InitExtentOps(env, exports);
  bisync::InitBitmap(env, exports);
  bisync::InitNetlink(env, exports);
  bisync::InitCompress(env, exports);
  bisync::InitBulk(env, exports);
  return exports;
}

NODE_API_MODULE(drbd_bisync, Init)
