#include "rpc/cipher.h"

#include <openssl/evp.h>

#include <cstring>

namespace heka::rpc {
namespace {

constexpr size_t kTagSize = 16;
constexpr size_t kNonceSize = 12;

class AesGcmCipher final : public FrameCipher {
 public:
  explicit AesGcmCipher(ByteView key) {
    enc_ = EVP_CIPHER_CTX_new();
    dec_ = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(enc_, EVP_aes_256_gcm(), nullptr, key.data(), nullptr);
    EVP_DecryptInit_ex(dec_, EVP_aes_256_gcm(), nullptr, key.data(), nullptr);
  }
  ~AesGcmCipher() override {
    EVP_CIPHER_CTX_free(enc_);
    EVP_CIPHER_CTX_free(dec_);
  }

  size_t overhead() const override { return kTagSize; }

  Status Seal(ByteView aad, std::span<uint8_t> data) override {
    if (data.size() < kTagSize) return Error(Code::kInternal, "seal buffer shorter than tag");
    uint8_t nonce[kNonceSize];
    NextNonce(nonce);
    int len = static_cast<int>(data.size() - kTagSize);
    int out = 0;
    if (EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, nonce) != 1 ||
        EVP_EncryptUpdate(enc_, nullptr, &out, aad.data(), static_cast<int>(aad.size())) != 1 ||
        EVP_EncryptUpdate(enc_, data.data(), &out, data.data(), len) != 1 ||
        EVP_EncryptFinal_ex(enc_, data.data() + len, &out) != 1 ||
        EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_GET_TAG, kTagSize, data.data() + len) != 1) {
      return Error(Code::kInternal, "AES-GCM encryption failed");
    }
    return Status::Ok();
  }

  Status Open(ByteView aad, std::span<uint8_t> data) override {
    if (data.size() < kTagSize) {
      return Error(Code::kProtocolError, "frame shorter than its authentication tag");
    }
    uint8_t nonce[kNonceSize];
    NextNonce(nonce);
    int len = static_cast<int>(data.size() - kTagSize);
    int out = 0;
    if (EVP_DecryptInit_ex(dec_, nullptr, nullptr, nullptr, nonce) != 1 ||
        EVP_DecryptUpdate(dec_, nullptr, &out, aad.data(), static_cast<int>(aad.size())) != 1 ||
        EVP_DecryptUpdate(dec_, data.data(), &out, data.data(), len) != 1 ||
        EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_GCM_SET_TAG, kTagSize, data.data() + len) != 1 ||
        EVP_DecryptFinal_ex(dec_, data.data() + len, &out) != 1) {
      return Error(Code::kProtocolError,
                   "frame failed authentication (tampered, replayed or out of order)");
    }
    return Status::Ok();
  }

 private:
  // Each direction has its own key (and its own cipher object), so the counter alone makes
  // nonces unique. Seal and Open of one object are never used for the same direction.
  void NextNonce(uint8_t nonce[kNonceSize]) {
    std::memset(nonce, 0, 4);
    uint64_t c = counter_++;
    for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(c >> (56 - 8 * i));
  }

  EVP_CIPHER_CTX* enc_ = nullptr;
  EVP_CIPHER_CTX* dec_ = nullptr;
  uint64_t counter_ = 0;
};

}  // namespace

std::unique_ptr<FrameCipher> MakeAesGcmCipher(ByteView key) {
  return std::make_unique<AesGcmCipher>(key);
}

}  // namespace heka::rpc
