#include <napi.h>

namespace bisync {
void InitCompress(Napi::Env env, Napi::Object exports) {}
}  // namespace bisync
