#include "dbserver/raft/transport.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>

namespace heka::db {

namespace asio = rpc::asio;
using rpc::awaitable;

// Copies bytes between one end of a socketpair (raft has the other end) and an RPC
// connection, in order, both ways. Everything runs on its strand.
class Relay : public std::enable_shared_from_this<Relay> {
 public:
  Relay(asio::io_context& io, int fd, std::shared_ptr<rpc::Connection> conn,
        std::shared_ptr<rpc::Client> owner, std::function<void()> on_close)
      : strand_(asio::make_strand(io)),
        sd_(strand_, fd),
        conn_(std::move(conn)),
        owner_(std::move(owner)),
        on_close_(std::move(on_close)) {}

  void Start() { asio::co_spawn(strand_, ReadLoop(shared_from_this()), asio::detached); }
  // REQUIRES: before Start().
  void set_on_close(std::function<void()> fn) { on_close_ = std::move(fn); }

  void Deliver(ByteView data, bool eof) {
    auto self = shared_from_this();
    asio::post(strand_, [self, bytes = Bytes(data.begin(), data.end()), eof]() mutable {
      if (self->closed_) return;
      if (!bytes.empty()) {
        self->queue_.push_back(std::move(bytes));
        if (!self->writing_) self->WriteNext();
      }
      if (eof) self->CloseOnStrand("peer closed the raft stream");
    });
  }

  void Close(std::string why) {
    auto self = shared_from_this();
    asio::post(strand_, [self, why = std::move(why)] { self->CloseOnStrand(why); });
  }

 private:
  static awaitable<void> ReadLoop(std::shared_ptr<Relay> self) {
    std::vector<uint8_t> buf(64 * 1024);
    for (;;) {
      boost::system::error_code ec;
      size_t n = co_await self->sd_.async_read_some(asio::buffer(buf),
                                                    asio::redirect_error(asio::use_awaitable, ec));
      if (self->closed_) co_return;
      RaftData msg;
      if (ec) {
        msg.set_eof(true);
        (void)self->conn_->Push(kRaftData, msg);
        self->CloseOnStrand("raft closed its stream");
        co_return;
      }
      msg.set_data(buf.data(), n);
      if (!self->conn_->Push(kRaftData, msg).ok()) {
        self->CloseOnStrand("connection to the peer is gone");
        co_return;
      }
    }
  }

  void WriteNext() {
    if (queue_.empty() || closed_) {
      writing_ = false;
      return;
    }
    writing_ = true;
    auto self = shared_from_this();
    asio::async_write(sd_, asio::buffer(queue_.front()),
                      asio::bind_executor(strand_, [self](boost::system::error_code ec, size_t) {
                        if (!self->queue_.empty()) self->queue_.pop_front();
                        if (ec) {
                          self->CloseOnStrand("raft stream write failed: " + ec.message());
                          return;
                        }
                        self->WriteNext();
                      }));
  }

  void CloseOnStrand(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    spdlog::debug("raft: stream to {} closed: {}", conn_->peer().principal(), why);
    boost::system::error_code ignored;
    sd_.close(ignored);
    queue_.clear();
    if (owner_) owner_->Close();  // our own outgoing connection: end it
    owner_.reset();
    if (on_close_) on_close_();
    on_close_ = nullptr;
  }

  asio::strand<asio::io_context::executor_type> strand_;
  asio::posix::stream_descriptor sd_;
  std::shared_ptr<rpc::Connection> conn_;
  std::shared_ptr<rpc::Client> owner_;
  std::function<void()> on_close_;
  std::deque<Bytes> queue_;
  bool writing_ = false;
  bool closed_ = false;
};

RaftTransport::RaftTransport(rpc::Runtime& runtime, UvLoop& loop, RaftTransportOptions options)
    : runtime_(runtime), loop_(loop), options_(std::move(options)) {
  raw_.data = this;
  raw_.impl = this;
  raw_.init = &RaftTransport::Init;
  raw_.listen = &RaftTransport::Listen;
  raw_.connect = &RaftTransport::Connect;
  raw_.close = &RaftTransport::Close;
  auto handlers = std::make_shared<rpc::HandlerRegistry>();
  handlers->RegisterPush<RaftData>(kRaftData, [this](rpc::Connection& c, const RaftData& m) {
    OnData(c, AsBytes(m.data()), m.eof());
  });
  client_handlers_ = handlers;
}

RaftTransport::~RaftTransport() {
  std::unordered_map<rpc::Connection*, std::shared_ptr<Relay>> relays;
  {
    std::lock_guard lock(mu_);
    relays.swap(relays_);
  }
  for (auto& [c, r] : relays) r->Close("shutting down");
}

void RaftTransport::RegisterHandlers(rpc::HandlerRegistry& registry) {
  registry.Register<RaftOpen, RaftOpenReply>(
      kRaftOpen, [this](rpc::CallContext& ctx, const RaftOpen& req) { return ServeOpen(ctx, req); });
  registry.RegisterPush<RaftData>(kRaftData, [this](rpc::Connection& c, const RaftData& m) {
    OnData(c, AsBytes(m.data()), m.eof());
  });
}

int RaftTransport::Init(raft_uv_transport*, raft_id, const char*) { return 0; }

int RaftTransport::Listen(raft_uv_transport* t, raft_uv_accept_cb cb) {
  auto* self = static_cast<RaftTransport*>(t->impl);
  std::lock_guard lock(self->mu_);
  self->accept_cb_ = cb;
  return 0;
}

void RaftTransport::Close(raft_uv_transport* t, raft_uv_transport_close_cb cb) {
  auto* self = static_cast<RaftTransport*>(t->impl);
  std::set<raft_uv_connect*> pending;
  {
    std::lock_guard lock(self->mu_);
    self->closing_ = true;
    self->accept_cb_ = nullptr;
    pending.swap(self->pending_);
  }
  for (raft_uv_connect* req : pending) req->cb(req, nullptr, RAFT_CANCELED);
  cb(t);
}

int RaftTransport::Connect(raft_uv_transport* t, raft_uv_connect* req, raft_id id,
                           const char* address, raft_uv_connect_cb cb) {
  auto* self = static_cast<RaftTransport*>(t->impl);
  req->cb = cb;
  {
    std::lock_guard lock(self->mu_);
    if (self->closing_) return RAFT_CANCELED;
    self->pending_.insert(req);
  }
  asio::co_spawn(self->runtime_.io(), self->DoConnect(req, id, address), asio::detached);
  return 0;
}

awaitable<void> RaftTransport::DoConnect(raft_uv_connect* req, uint64_t id, std::string address) {
  std::optional<MemberInfo> who = options_.lookup(id);
  if (!who) {
    spdlog::warn("raft: member {} is not in the member list; not connecting to {}", id, address);
    loop_.Post([this, req] { FinishConnect(req, -1); });
    co_return;
  }
  rpc::ClientOptions o;
  o.address = address;
  o.server_principal = who->principal;
  o.credentials = options_.credentials;
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.handshake_timeout = std::chrono::milliseconds(3000);
  o.connection = options_.connection;
  o.handlers = client_handlers_;
  auto client = rpc::Client::Create(runtime_, o);
  int fd = -1;
  auto conn = co_await client->GetConnection();
  if (conn.ok()) {
    RaftOpen open;
    open.set_from_id(options_.self_id);
    open.set_to_id(id);
    auto r = co_await (*conn)->Call<RaftOpenReply>(kRaftOpen, open, std::chrono::milliseconds(3000));
    if (r.ok()) {
      auto relay_fd = StartRelay(*conn, client);
      if (relay_fd.ok()) fd = *relay_fd;
    } else {
      spdlog::warn("raft: member {} at {} refused our stream: {}", id, address, r.status().ToString());
    }
  } else {
    spdlog::debug("raft: cannot reach member {} at {}: {}", id, address, conn.status().ToString());
  }
  if (fd < 0) client->Close();
  loop_.Post([this, req, fd] { FinishConnect(req, fd); });
}

void RaftTransport::FinishConnect(raft_uv_connect* req, int fd) {
  {
    std::lock_guard lock(mu_);
    if (pending_.erase(req) == 0) {  // cancelled by Close(): the callback already fired
      if (fd >= 0) ::close(fd);
      return;
    }
  }
  if (fd < 0) {
    req->cb(req, nullptr, RAFT_NOCONNECTION);
    return;
  }
  req->cb(req, OpenPipe(fd), 0);
}

uv_stream_t* RaftTransport::OpenPipe(int fd) {
  auto* pipe = static_cast<uv_pipe_t*>(raft_malloc(sizeof(uv_pipe_t)));
  uv_pipe_init(loop_.loop(), pipe, 0);
  uv_pipe_open(pipe, fd);
  return reinterpret_cast<uv_stream_t*>(pipe);
}

Result<int> RaftTransport::StartRelay(std::shared_ptr<rpc::Connection> conn,
                                      std::shared_ptr<rpc::Client> owner) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return Error(Code::kInternal, std::string("socketpair: ") + std::strerror(errno));
  }
  rpc::Connection* key = conn.get();
  auto relay = std::make_shared<Relay>(runtime_.io(), fds[1], conn, std::move(owner), nullptr);
  Relay* raw = relay.get();
  relay->set_on_close([this, key, raw] {
    std::lock_guard lock(mu_);
    auto it = relays_.find(key);
    if (it != relays_.end() && it->second.get() == raw) relays_.erase(it);
  });
  std::shared_ptr<Relay> replaced;
  {
    std::lock_guard lock(mu_);
    auto& slot = relays_[key];
    replaced = std::move(slot);
    slot = relay;
  }
  if (replaced) replaced->Close("replaced by a new stream on the same connection");
  // Raft only reads its inbound streams, so a dead peer would otherwise go unnoticed here.
  std::weak_ptr<Relay> weak = relay;
  conn->AddCloseObserver([weak](const Status& why) {
    if (auto r = weak.lock()) r->Close("connection closed: " + why.message());
  });
  relay->Start();
  return fds[0];
}

void RaftTransport::OnData(rpc::Connection& conn, ByteView data, bool eof) {
  std::shared_ptr<Relay> relay;
  {
    std::lock_guard lock(mu_);
    auto it = relays_.find(&conn);
    if (it != relays_.end()) relay = it->second;
  }
  if (relay) relay->Deliver(data, eof);
}

awaitable<Result<RaftOpenReply>> RaftTransport::ServeOpen(rpc::CallContext& ctx,
                                                          const RaftOpen& req) {
  std::optional<MemberInfo> who = options_.lookup(req.from_id());
  if (req.to_id() != options_.self_id) {
    co_return Error(Code::kInvalidArgument, "this is member " + std::to_string(options_.self_id) +
                                                ", not " + std::to_string(req.to_id()));
  }
  if (!who || who->principal != ctx.peer.principal()) {
    spdlog::warn("raft: refused a stream from {} claiming to be member {}", ctx.peer.principal(),
                 req.from_id());
    co_return Error(Code::kPermissionDenied, ctx.peer.principal() + " is not DB member " +
                                                 std::to_string(req.from_id()));
  }
  raft_uv_accept_cb cb;
  {
    std::lock_guard lock(mu_);
    cb = accept_cb_;
  }
  if (cb == nullptr) co_return Error(Code::kUnavailable, "raft is not listening yet");
  Result<int> fd = StartRelay(ctx.connection, nullptr);
  if (!fd.ok()) co_return fd.status();
  uint64_t from = req.from_id();
  std::string address = who->address;
  loop_.Post([this, fd = *fd, from, address] {
    raft_uv_accept_cb accept;
    {
      std::lock_guard lock(mu_);
      accept = accept_cb_;
    }
    if (accept == nullptr) {
      ::close(fd);
      return;
    }
    accept(&raw_, from, address.c_str(), OpenPipe(fd));
  });
  co_return RaftOpenReply();
}

}  // namespace heka::db
