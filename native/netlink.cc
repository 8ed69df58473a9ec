#include <napi.h>

namespace bisync {
void InitNetlink(Napi::Env env, Napi::Object exports) {}
}  // namespace bisync
