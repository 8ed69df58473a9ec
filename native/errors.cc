#include "errors.h"

#include <cmath>
#include <cstdio>

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

namespace {
std::string ArgName(size_t i, const char* name) {
  return name ? std::string(name) + " (argument " + std::to_string(i) + ")" : "argument " + std::to_string(i);
}
}  // namespace

// A JS number is a double: Int64Value() would silently truncate 1.5, saturate
// 1e300 and turn NaN into 0. Only integers a double holds exactly pass.
int64_t CheckedInt(Napi::Env env, double d, const std::string& what) {
  if (!std::isfinite(d) || std::trunc(d) != d || std::fabs(d) > kMaxSafeInt)
    throw Napi::RangeError::New(env, what + " must be an integer within +-2^53, got " + FormatDouble(d));
  return static_cast<int64_t>(d);
}

uint64_t CheckedUint(Napi::Env env, double d, const std::string& what, uint64_t max) {
  const int64_t v = CheckedInt(env, d, what);
  if (v < 0 || static_cast<uint64_t>(v) > max)
    throw Napi::RangeError::New(env, what + " must be an integer from 0 to " + std::to_string(max) + ", got " + FormatDouble(d));
  return static_cast<uint64_t>(v);
}

std::string FormatDouble(double d) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), ArgName(i, name) + " must be a number");
  return CheckedInt(info.Env(), info[i].As<Napi::Number>().DoubleValue(), ArgName(i, name));
}

uint64_t ArgUint(const Napi::CallbackInfo& info, size_t i, const char* name, uint64_t max) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), ArgName(i, name) + " must be a number");
  return CheckedUint(info.Env(), info[i].As<Napi::Number>().DoubleValue(), ArgName(i, name), max);
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i) {
  return info[i].ToBoolean().Value();
}

}  // namespace bisync
