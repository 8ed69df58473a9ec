// Errors shaped like Node's SystemError, and the promise-returning worker base
// that every native operation derives from.
#pragma once
#include <napi.h>
#include <string>

namespace bisync {

// What a failed syscall left behind, captured in Execute() right after the call.
struct SysError {
  int err = 0;                  // positive errno
  const char* syscall = "";     // "open", "pread", "ioctl(BLKGETSIZE64)", ...
  std::string path;             // device or file the call was about
  std::string detail;           // optional extra words for the message
  void Set(int e, const char* call) { err = e; syscall = call; }
};

// Builds an Error with code, errno (negative, as libuv/Node do), syscall, path.
Napi::Error MakeSystemError(Napi::Env env, const SysError& e);

// One AsyncWorker per operation: Run() does syscalls on plain C++ data off the
// JS thread and returns false with err_ filled; Result() builds the JS value.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
        kept_(Napi::Persistent(Napi::Object::New(env))) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  // Keeps a JS value (a Buffer we read from or write into) alive while queued.
  // (The base class's Receiver() is an empty reference with this constructor.)
  void Keep(const char* key, Napi::Value v) { kept_.Set(key, v); }

 protected:
  virtual bool Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  SysError err_;

 private:
  void Execute() final {
    if (!Run()) SetError(err_.syscall);
  }
  void OnOK() final { deferred_.Resolve(Result(Env())); }
  void OnError(const Napi::Error&) final {
    deferred_.Reject(MakeSystemError(Env(), err_).Value());
  }
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference kept_;
};

// Queues the worker and returns its promise.
inline Napi::Value Start(PromiseWorker* w) {
  auto p = w->Promise();
  w->Queue();
  return p;
}

// Argument helpers: the TS layer validates; these keep a misused binding from
// casting a double it cannot hold exactly. Errors name the argument (`name`,
// else its position): TypeError for a non-number, RangeError for a
// non-integer, a negative value where none is allowed, or beyond 2^53 / max.
constexpr double kMaxSafeInt = 9007199254740992.0;  // 2^53
constexpr uint64_t kMaxSafeUint = 9007199254740992ULL;
std::string ArgString(const Napi::CallbackInfo& info, size_t i);
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name = nullptr);
uint64_t ArgUint(const Napi::CallbackInfo& info, size_t i, const char* name = nullptr, uint64_t max = kMaxSafeUint);
int64_t CheckedInt(Napi::Env env, double d, const std::string& what);
uint64_t CheckedUint(Napi::Env env, double d, const std::string& what, uint64_t max = kMaxSafeUint);
std::string FormatDouble(double d);
bool ArgBool(const Napi::CallbackInfo& info, size_t i);

}  // namespace bisync
