#include "errors.h"

#include <string.h>
#include <uv.h>

namespace bisync {

Napi::Error MakeSystemError(Napi::Env env, const SysError& e) {
  const int uverr = -e.err;  // libuv codes are negated errno values on Linux
  const char* code = e.err ? uv_err_name(uverr) : "EUNKNOWN";
  const char* text = e.err ? uv_strerror(uverr) : "unknown error";
  // libuv names only the errnos it uses itself (not ENOTBLK, for one).
  if (e.err && strncmp(code, "Unknown", 7) == 0 && strerrorname_np(e.err)) {
    code = strerrorname_np(e.err);
    text = strerror(e.err);
  }
  std::string msg = std::string(code) + ": " + text + ", " + e.syscall;
  if (!e.path.empty()) msg += " '" + e.path + "'";
  if (!e.detail.empty()) msg += " (" + e.detail + ")";
  Napi::Error error = Napi::Error::New(env, msg);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, uverr));
  error.Set("syscall", Napi::String::New(env, e.syscall));
  if (!e.path.empty()) error.Set("path", Napi::String::New(env, e.path));
  return error;
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number");
  return info[i].As<Napi::Number>().Int64Value();
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i) {
  return info[i].ToBoolean().Value();
}

}  // namespace bisync
