// Generic netlink for JS: open a socket (optionally joined to multicast
// groups), send a request and collect its replies, wait for notifications.
// Payloads stay raw bytes; attribute meaning lives in TypeScript.
#include <string>
#include <vector>

#include "errors.h"
#include "sys/genl.h"

namespace bisync {

namespace {

void Fill(SysError* out, const sys::Err& e, std::string detail = "") {
  out->Set(e.code, e.syscall);
  out->detail = std::move(detail);
}

Napi::Array MessagesToJs(Napi::Env env, const std::vector<sys::GenlMessage>& msgs) {
  Napi::Array arr = Napi::Array::New(env, msgs.size());
  for (size_t i = 0; i < msgs.size(); i++) {
    const auto& m = msgs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("type", Napi::Number::New(env, m.type));
    o.Set("flags", Napi::Number::New(env, m.flags));
    o.Set("seq", Napi::Number::New(env, m.seq));
    o.Set("cmd", Napi::Number::New(env, m.cmd));
    o.Set("version", Napi::Number::New(env, m.version));
    o.Set("payload", Napi::Buffer<uint8_t>::Copy(env, m.payload.data(), m.payload.size()));
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, std::vector<uint32_t> groups)
      : PromiseWorker(env, "bisync:genlOpen"), groups_(std::move(groups)) {}
  bool Run() override {
    sys::Err e;
    if (!sys::GenlOpen(groups_, &fd_, &e)) return Fill(&err_, e, "generic netlink socket"), false;
    return true;
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, fd_); }

 private:
  std::vector<uint32_t> groups_;
  int fd_ = -1;
};

class CloseWorker : public PromiseWorker {
 public:
  CloseWorker(Napi::Env env, int fd) : PromiseWorker(env, "bisync:genlClose"), fd_(fd) {}
  bool Run() override {
    sys::Err e;
    if (!sys::CloseFd(fd_, &e)) return Fill(&err_, e), false;
    return true;
  }

 private:
  int fd_;
};

class TransactWorker : public PromiseWorker {
 public:
  TransactWorker(Napi::Env env, int fd, uint16_t family, uint8_t cmd, uint8_t version, bool dump,
                 std::vector<uint8_t> payload)
      : PromiseWorker(env, "bisync:genlTransact"),
        fd_(fd), family_(family), cmd_(cmd), version_(version), dump_(dump), payload_(std::move(payload)) {}
  bool Run() override {
    sys::Err e;
    if (!sys::GenlTransact(fd_, family_, cmd_, version_, dump_, payload_, &out_, &e)) {
      Fill(&err_, e, "family " + std::to_string(family_) + " command " + std::to_string(cmd_));
      return false;
    }
    return true;
  }
  Napi::Value Result(Napi::Env env) override { return MessagesToJs(env, out_); }

 private:
  int fd_;
  uint16_t family_;
  uint8_t cmd_, version_;
  bool dump_;
  std::vector<uint8_t> payload_;
  std::vector<sys::GenlMessage> out_;
};

class ReceiveWorker : public PromiseWorker {
 public:
  ReceiveWorker(Napi::Env env, int fd, int timeoutMs)
      : PromiseWorker(env, "bisync:genlReceive"), fd_(fd), timeoutMs_(timeoutMs) {}
  bool Run() override {
    sys::Err e;
    if (!sys::GenlReceive(fd_, timeoutMs_, &out_, &e)) return Fill(&err_, e, "generic netlink notifications"), false;
    return true;
  }
  Napi::Value Result(Napi::Env env) override { return MessagesToJs(env, out_); }

 private:
  int fd_, timeoutMs_;
  std::vector<sys::GenlMessage> out_;
};

std::vector<uint8_t> ArgBytes(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBuffer()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a Buffer");
  auto b = info[i].As<Napi::Buffer<uint8_t>>();
  return std::vector<uint8_t>(b.Data(), b.Data() + b.Length());
}

// genlOpen(groups: number[]): Promise<fd>
Napi::Value GenlOpenJs(const Napi::CallbackInfo& info) {
  std::vector<uint32_t> groups;
  if (!info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "argument 0 must be an array of group ids");
  Napi::Array a = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) groups.push_back(a.Get(i).As<Napi::Number>().Uint32Value());
  return Start(new OpenWorker(info.Env(), std::move(groups)));
}

// genlClose(fd): Promise<void>
Napi::Value GenlCloseJs(const Napi::CallbackInfo& info) {
  return Start(new CloseWorker(info.Env(), static_cast<int>(ArgInt(info, 0))));
}

// genlTransact(fd, family, cmd, version, dump, payload): Promise<message[]>
Napi::Value GenlTransactJs(const Napi::CallbackInfo& info) {
  return Start(new TransactWorker(info.Env(), static_cast<int>(ArgInt(info, 0)), static_cast<uint16_t>(ArgInt(info, 1)),
                                  static_cast<uint8_t>(ArgInt(info, 2)), static_cast<uint8_t>(ArgInt(info, 3)),
                                  ArgBool(info, 4), ArgBytes(info, 5)));
}

// genlReceive(fd, timeoutMs): Promise<message[]> (empty on timeout)
Napi::Value GenlReceiveJs(const Napi::CallbackInfo& info) {
  return Start(new ReceiveWorker(info.Env(), static_cast<int>(ArgInt(info, 0)), static_cast<int>(ArgInt(info, 1))));
}

}  // namespace

void InitNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("genlOpen", Napi::Function::New(env, GenlOpenJs, "genlOpen"));
  exports.Set("genlClose", Napi::Function::New(env, GenlCloseJs, "genlClose"));
  exports.Set("genlTransact", Napi::Function::New(env, GenlTransactJs, "genlTransact"));
  exports.Set("genlReceive", Napi::Function::New(env, GenlReceiveJs, "genlReceive"));
}

}  // namespace bisync
