#include "tests/support/fake_context.h"

#include <openssl/hmac.h>

namespace heka::testing {
namespace {

using Clock = std::chrono::steady_clock;

class FakeContext final : public krb::SecurityContext {
 public:
  FakeContext(FakeContextOptions o, bool initiator)
      : o_(std::move(o)), initiator_(initiator), expires_(Clock::now() + o_.lifetime) {
    self_ = *krb::Identity::Parse(o_.self);
  }

  StepResult Step(ByteView in) override {
    StepResult r;
    if (o_.fail) {
      r.status = Error(Code::kAuthFailed, "fake mechanism told to fail");
      return r;
    }
    std::string hello = "FAKE:" + o_.self;
    if (initiator_ && in.empty()) {
      r.token.assign(hello.begin(), hello.end());
      return r;
    }
    std::string token(AsChars(in));
    if (token.rfind("FAKE:", 0) != 0) {
      r.status = Error(Code::kAuthFailed, "not a fake token");
      return r;
    }
    auto peer = krb::Identity::Parse(token.substr(5));
    if (!peer.ok()) {
      r.status = peer.status();
      return r;
    }
    peer_ = *peer;
    established_ = true;
    if (!initiator_) r.token.assign(hello.begin(), hello.end());
    return r;
  }
  bool established() const override { return established_; }
  const krb::Identity& peer() const override { return peer_; }
  const krb::Identity& self() const override { return self_; }
  std::chrono::seconds remaining() const override {
    auto left = std::chrono::duration_cast<std::chrono::seconds>(expires_ - Clock::now());
    return left.count() > 0 ? left : std::chrono::seconds(0);
  }
  Result<Bytes> PseudoRandom(ByteView input, size_t length) const override {
    Bytes out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    HMAC(EVP_sha256(), o_.secret.data(), static_cast<int>(o_.secret.size()), input.data(),
         input.size(), out.data(), &len);
    out.resize(std::min<size_t>(len, length));
    return out;
  }

 private:
  FakeContextOptions o_;
  bool initiator_;
  bool established_ = false;
  krb::Identity self_;
  krb::Identity peer_;
  Clock::time_point expires_;
};

}  // namespace

std::unique_ptr<krb::SecurityContext> MakeFakeInitiator(FakeContextOptions options) {
  return std::make_unique<FakeContext>(std::move(options), true);
}
std::unique_ptr<krb::SecurityContext> MakeFakeAcceptor(FakeContextOptions options) {
  return std::make_unique<FakeContext>(std::move(options), false);
}

}  // namespace heka::testing
