#include "tests/support/frame_proxy.h"

#include <algorithm>
#include <atomic>

#include "rpc/asio.h"

namespace heka::testing {

using heka::rpc::awaitable;
using heka::rpc::tcp;
namespace asio = boost::asio;

struct FrameProxy::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::string target_host;
  int target_port = 0;
  mutable std::mutex mu;
  Rewrite rewrite;  // mu
  Bytes recorded;   // mu
  std::atomic<bool> frozen{false};
  std::thread thread;

  void Record(const uint8_t* p, size_t n) {
    std::lock_guard lock(mu);
    recorded.insert(recorded.end(), p, p + n);
  }

  // server -> client: relay raw bytes.
  awaitable<void> Pump(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to) {
    uint8_t buf[65536];
    for (;;) {
      boost::system::error_code ec;
      size_t n = co_await from->async_read_some(asio::buffer(buf),
                                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      if (frozen) continue;
      Record(buf, n);
      co_await asio::async_write(*to, asio::buffer(buf, n),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    boost::system::error_code ignored;
    to->shutdown(tcp::socket::shutdown_send, ignored);
  }

  // client -> server: frame by frame, through the rewrite hook.
  awaitable<void> PumpFrames(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to) {
    for (size_t index = 0;; ++index) {
      Bytes frame(4);
      boost::system::error_code ec;
      co_await asio::async_read(*from, asio::buffer(frame), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      uint32_t len = (uint32_t{frame[0]} << 24) | (uint32_t{frame[1]} << 16) |
                     (uint32_t{frame[2]} << 8) | frame[3];
      if (len > (64u << 20)) len = 0;  // not a frame we can buffer: forward the prefix alone
      frame.resize(4 + len);
      co_await asio::async_read(*from, asio::buffer(frame.data() + 4, len),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      Record(frame.data(), frame.size());
      Rewrite hook;
      {
        std::lock_guard lock(mu);
        hook = rewrite;
      }
      std::vector<Bytes> out = hook ? hook(index, frame) : std::vector<Bytes>{frame};
      if (frozen) out.clear();
      for (const Bytes& f : out) {
        co_await asio::async_write(*to, asio::buffer(f), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
      }
      if (ec) break;
    }
    boost::system::error_code ignored;
    to->shutdown(tcp::socket::shutdown_send, ignored);
  }

  awaitable<void> Accept() {
    for (;;) {
      auto client = std::make_shared<tcp::socket>(io);
      boost::system::error_code ec;
      co_await acceptor.async_accept(*client, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      auto server = std::make_shared<tcp::socket>(io);
      tcp::resolver resolver(io);
      auto results = co_await resolver.async_resolve(target_host, std::to_string(target_port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
      if (ec) continue;
      co_await asio::async_connect(*server, results, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) continue;
      asio::co_spawn(io, PumpFrames(client, server), asio::detached);
      asio::co_spawn(io, Pump(server, client), asio::detached);
    }
  }
};

FrameProxy::FrameProxy(std::string target_host, int target_port) : impl_(new Impl) {
  impl_->target_host = std::move(target_host);
  impl_->target_port = target_port;
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->Accept(), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

FrameProxy::~FrameProxy() {
  impl_->io.stop();
  impl_->thread.join();
}

void FrameProxy::set_rewrite(Rewrite rewrite) {
  std::lock_guard lock(impl_->mu);
  impl_->rewrite = std::move(rewrite);
}

void FrameProxy::set_frozen(bool frozen) { impl_->frozen = frozen; }

Bytes FrameProxy::recorded() const {
  std::lock_guard lock(impl_->mu);
  return impl_->recorded;
}

bool FrameProxy::Contains(std::string_view needle) const {
  std::lock_guard lock(impl_->mu);
  return std::search(impl_->recorded.begin(), impl_->recorded.end(), needle.begin(),
                     needle.end()) != impl_->recorded.end();
}

}  // namespace heka::testing
