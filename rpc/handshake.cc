#include "rpc/handshake.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "proto/rpc.pb.h"
#include "rpc/runtime.h"

namespace heka::rpc {
namespace {

constexpr size_t kNonceSize = 32;
constexpr size_t kKeySize = 32;

// SHA-256 over every handshake frame (length prefix included), in wire order.
class Transcript {
 public:
  Transcript() : md_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(md_, EVP_sha256(), nullptr); }
  ~Transcript() { EVP_MD_CTX_free(md_); }
  void Add(ByteView b) { EVP_DigestUpdate(md_, b.data(), b.size()); }
  Bytes Digest() {
    Bytes out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    EVP_MD_CTX* copy = EVP_MD_CTX_new();
    EVP_MD_CTX_copy_ex(copy, md_);
    EVP_DigestFinal_ex(copy, out.data(), &len);
    EVP_MD_CTX_free(copy);
    out.resize(len);
    return out;
  }

 private:
  EVP_MD_CTX* md_;
};

Bytes RandomBytes(size_t n) {
  Bytes b(n);
  RAND_bytes(b.data(), static_cast<int>(n));
  return b;
}

awaitable<Status> WriteFrame(tcp::socket& socket, const google::protobuf::MessageLite& msg,
                             Transcript& transcript) {
  Bytes frame(kLengthPrefixSize + msg.ByteSizeLong());
  EncodeLength(static_cast<uint32_t>(frame.size() - kLengthPrefixSize), frame.data());
  msg.SerializeWithCachedSizesToArray(frame.data() + kLengthPrefixSize);
  transcript.Add(frame);
  boost::system::error_code ec;
  co_await asio::async_write(socket, asio::buffer(frame),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Error(Code::kUnavailable, "handshake write failed: " + ec.message());
  co_return Status::Ok();
}

// A handshake frame as read: its length prefix and its payload.
struct RawFrame {
  uint8_t prefix[kLengthPrefixSize];
  Bytes body;
};

// Reads one handshake-sized frame (at most kMaxHandshakeFrame bytes).
awaitable<Result<RawFrame>> ReadRawFrame(tcp::socket& socket) {
  RawFrame f;
  boost::system::error_code ec;
  co_await asio::async_read(socket, asio::buffer(f.prefix),
                            asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Error(Code::kUnavailable, "handshake read failed: " + ec.message());
  Result<uint32_t> len = DecodeLength(f.prefix, kMaxHandshakeFrame);
  if (!len.ok()) {
    co_return Error(Code::kProtocolError, "bad handshake frame: " + len.status().message());
  }
  f.body.resize(*len);
  co_await asio::async_read(socket, asio::buffer(f.body),
                            asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Error(Code::kUnavailable, "handshake read failed: " + ec.message());
  co_return f;
}

// Reads one plaintext handshake frame into `msg`.
awaitable<Status> ReadFrame(tcp::socket& socket, google::protobuf::MessageLite* msg,
                            Transcript& transcript) {
  Result<RawFrame> f = co_await ReadRawFrame(socket);
  if (!f.ok()) co_return f.status();
  transcript.Add(ByteView(f->prefix, kLengthPrefixSize));
  transcript.Add(f->body);
  if (!msg->ParseFromArray(f->body.data(), static_cast<int>(f->body.size()))) {
    co_return Error(Code::kProtocolError, "malformed handshake message");
  }
  co_return Status::Ok();
}

struct Keys {
  Bytes client_to_server;
  Bytes server_to_client;
};

Result<Keys> DeriveKeys(const krb::SecurityContext& ctx, uint32_t version, const Bytes& digest) {
  auto derive = [&](const std::string& label) {
    Bytes input(label.begin(), label.end());
    input.insert(input.end(), digest.begin(), digest.end());
    return ctx.PseudoRandom(input, kKeySize);
  };
  std::string prefix = "heka-rpc-v" + std::to_string(version);
  Result<Bytes> c2s = derive(prefix + " client-to-server");
  if (!c2s.ok()) return c2s.status();
  Result<Bytes> s2c = derive(prefix + " server-to-client");
  if (!s2c.ok()) return s2c.status();
  return Keys{std::move(*c2s), std::move(*s2c)};
}

std::unique_ptr<FrameCipher> MakeCipher(const HandshakeOptions& o, const Bytes& key) {
  return o.test_cipher ? o.test_cipher(key) : MakeAesGcmCipher(key);
}

Clock::time_point ExpiryOf(const krb::SecurityContext& ctx) {
  return Clock::now() + ctx.remaining();
}

// Runs one GSS-API step on the blocking pool.
auto StepBlocking(asio::thread_pool& blocking, krb::SecurityContext* ctx, Bytes in) {
  return RunBlocking(blocking, [ctx, in = std::move(in)] { return ctx->Step(in); });
}

// Encrypted frame carrying ServerFinished (no FrameHeader: it is the key confirmation).
awaitable<Status> WriteFinished(tcp::socket& socket, FrameCipher& cipher, const ServerFinished& fin) {
  Bytes frame(kLengthPrefixSize + fin.ByteSizeLong() + cipher.overhead());
  EncodeLength(static_cast<uint32_t>(frame.size() - kLengthPrefixSize), frame.data());
  fin.SerializeWithCachedSizesToArray(frame.data() + kLengthPrefixSize);
  Status s = cipher.Seal(ByteView(frame.data(), kLengthPrefixSize),
                         std::span<uint8_t>(frame.data() + kLengthPrefixSize,
                                            frame.size() - kLengthPrefixSize));
  if (!s.ok()) co_return s;
  boost::system::error_code ec;
  co_await asio::async_write(socket, asio::buffer(frame),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Error(Code::kUnavailable, "handshake write failed: " + ec.message());
  co_return Status::Ok();
}

awaitable<Result<ServerFinished>> ReadFinished(tcp::socket& socket, FrameCipher& cipher) {
  Result<RawFrame> f = co_await ReadRawFrame(socket);
  if (!f.ok()) co_return f.status();
  Bytes& body = f->body;
  if (!cipher.Open(ByteView(f->prefix, kLengthPrefixSize), body).ok()) {
    co_return Error(Code::kAuthFailed,
                    "handshake integrity check failed: the keys differ (tampering or downgrade)");
  }
  ServerFinished fin;
  if (!fin.ParseFromArray(body.data(), static_cast<int>(body.size() - cipher.overhead()))) {
    co_return Error(Code::kProtocolError, "malformed server verdict");
  }
  co_return fin;
}

Status RemoteError(uint32_t code, const std::string& message, const std::string& who) {
  Code c = code == 0 ? Code::kAuthFailed : CodeFromWire(code);
  return Status(c, who + " refused the connection: " + message);
}

}  // namespace

awaitable<Result<Session>> ClientHandshake(tcp::socket& socket, const HandshakeOptions& options,
                                           asio::thread_pool& blocking) {
  const std::string& who = options.peer_name;
  auto made = co_await RunBlocking(blocking, options.context);
  if (!made.ok()) co_return made.status();
  std::unique_ptr<krb::SecurityContext> ctx = std::move(*made);
  auto step = co_await StepBlocking(blocking, ctx.get(), {});
  if (!step.status.ok()) co_return step.status;

  Transcript transcript;
  ClientHello hello;
  hello.set_magic(kHandshakeMagic);
  hello.set_min_version(kMinProtocolVersion);
  hello.set_max_version(kProtocolVersion);
  Bytes nonce = RandomBytes(kNonceSize);
  hello.set_nonce(nonce.data(), nonce.size());
  hello.set_gss_token(step.token.data(), step.token.size());
  if (Status s = co_await WriteFrame(socket, hello, transcript); !s.ok()) co_return s;

  ServerHello reply;
  if (Status s = co_await ReadFrame(socket, &reply, transcript); !s.ok()) co_return s;
  if (reply.error_code() != 0) co_return RemoteError(reply.error_code(), reply.error_message(), who);
  if (reply.version() < kMinProtocolVersion || reply.version() > kProtocolVersion) {
    co_return Error(Code::kVersionMismatch,
                    who + " chose protocol version " + std::to_string(reply.version()) +
                        ", which this client does not speak");
  }
  if (reply.nonce().size() != kNonceSize) {
    co_return Error(Code::kProtocolError, who + " sent a nonce of the wrong length");
  }
  Bytes token(reply.gss_token().begin(), reply.gss_token().end());
  while (!ctx->established()) {
    step = co_await StepBlocking(blocking, ctx.get(), std::move(token));
    if (!step.status.ok()) co_return step.status.WithContext("authenticating " + who);
    if (ctx->established() && step.token.empty()) break;
    GssToken out;
    out.set_token(step.token.data(), step.token.size());
    if (Status s = co_await WriteFrame(socket, out, transcript); !s.ok()) co_return s;
    if (ctx->established()) break;
    GssToken in;
    if (Status s = co_await ReadFrame(socket, &in, transcript); !s.ok()) co_return s;
    if (in.error_code() != 0) co_return RemoteError(in.error_code(), in.error_message(), who);
    token.assign(in.token().begin(), in.token().end());
  }

  Result<Keys> keys = DeriveKeys(*ctx, reply.version(), transcript.Digest());
  if (!keys.ok()) co_return keys.status();
  Session session;
  session.peer = ctx->peer();
  session.self = ctx->self();
  session.version = reply.version();
  session.is_client = true;
  session.send = MakeCipher(options, keys->client_to_server);
  session.recv = MakeCipher(options, keys->server_to_client);
  session.expires_at = ExpiryOf(*ctx);

  Result<ServerFinished> fin = co_await ReadFinished(socket, *session.recv);
  if (!fin.ok()) co_return fin.status();
  if (fin->error_code() != 0) co_return RemoteError(fin->error_code(), fin->error_message(), who);
  co_return session;
}

awaitable<Result<Session>> ServerHandshake(tcp::socket& socket, const HandshakeOptions& options,
                                           asio::thread_pool& blocking) {
  Transcript transcript;
  ClientHello hello;
  if (Status s = co_await ReadFrame(socket, &hello, transcript); !s.ok()) co_return s;
  if (hello.magic() != kHandshakeMagic) {
    co_return Error(Code::kProtocolError, "not a Heka client (bad handshake magic)");
  }
  if (hello.nonce().size() != kNonceSize) {
    co_return Error(Code::kProtocolError, "client nonce has the wrong length");
  }
  auto refuse = [&](Status why, const Bytes& token) -> awaitable<Result<Session>> {
    ServerHello no;
    no.set_error_code(static_cast<uint32_t>(why.code()));
    no.set_error_message(why.message());
    no.set_gss_token(token.data(), token.size());
    (void)co_await WriteFrame(socket, no, transcript);
    co_return why;
  };
  uint32_t version = std::min(hello.max_version(), kProtocolVersion);
  if (version < std::max(hello.min_version(), kMinProtocolVersion)) {
    co_return co_await refuse(
        Error(Code::kVersionMismatch,
              "client speaks protocol versions " + std::to_string(hello.min_version()) + "-" +
                  std::to_string(hello.max_version()) + ", server speaks " +
                  std::to_string(kMinProtocolVersion) + "-" + std::to_string(kProtocolVersion)),
        {});
  }
  auto made = co_await RunBlocking(blocking, options.context);
  if (!made.ok()) co_return co_await refuse(Error(Code::kInternal, "server has no usable key"), {});
  std::unique_ptr<krb::SecurityContext> ctx = std::move(*made);
  Bytes token(hello.gss_token().begin(), hello.gss_token().end());
  auto step = co_await StepBlocking(blocking, ctx.get(), std::move(token));
  if (!step.status.ok()) co_return co_await refuse(step.status, step.token);

  ServerHello reply;
  reply.set_version(version);
  Bytes nonce = RandomBytes(kNonceSize);
  reply.set_nonce(nonce.data(), nonce.size());
  reply.set_gss_token(step.token.data(), step.token.size());
  if (Status s = co_await WriteFrame(socket, reply, transcript); !s.ok()) co_return s;
  while (!ctx->established()) {
    GssToken in;
    if (Status s = co_await ReadFrame(socket, &in, transcript); !s.ok()) co_return s;
    step = co_await StepBlocking(blocking, ctx.get(), Bytes(in.token().begin(), in.token().end()));
    GssToken out;
    out.set_token(step.token.data(), step.token.size());
    if (!step.status.ok()) {
      out.set_error_code(static_cast<uint32_t>(step.status.code()));
      out.set_error_message(step.status.message());
    }
    if (!step.status.ok() || !step.token.empty()) {
      if (Status s = co_await WriteFrame(socket, out, transcript); !s.ok()) co_return s;
    }
    if (!step.status.ok()) co_return step.status;
  }

  Result<Keys> keys = DeriveKeys(*ctx, version, transcript.Digest());
  if (!keys.ok()) co_return keys.status();
  Session session;
  session.peer = ctx->peer();
  session.self = ctx->self();
  session.version = version;
  session.is_client = false;
  session.send = MakeCipher(options, keys->server_to_client);
  session.recv = MakeCipher(options, keys->client_to_server);
  session.expires_at = ExpiryOf(*ctx);

  ServerFinished fin;
  fin.set_server_principal(session.self.principal());
  fin.set_client_principal(session.peer.principal());
  Status verdict = options.authorize ? options.authorize(session.peer) : Status::Ok();
  if (verdict.ok() && session.expires_at <= Clock::now()) {
    // GSS-API accepts tickets up to the clock skew past their end; Heka does not.
    verdict = Error(Code::kCredentialsExpired, "the ticket of " + session.peer.principal() +
                                                   " has expired — run kinit again");
  }
  if (!verdict.ok()) {
    fin.set_error_code(static_cast<uint32_t>(verdict.code()));
    fin.set_error_message(verdict.message());
  }
  if (Status s = co_await WriteFinished(socket, *session.send, fin); !s.ok()) co_return s;
  if (!verdict.ok()) {
    co_return Status(verdict.code(), "refused " + session.peer.principal() + ": " + verdict.message());
  }
  co_return session;
}

}  // namespace heka::rpc
