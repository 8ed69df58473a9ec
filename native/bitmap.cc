#include <napi.h>

namespace bisync {
void InitBitmap(Napi::Env env, Napi::Object exports) {}
}  // namespace bisync
