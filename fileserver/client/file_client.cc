#include "fileserver/client/file_client.h"

#include <spdlog/spdlog.h>

namespace heka::fs {

namespace asio = rpc::asio;

std::shared_ptr<FileClient> FileClient::Create(rpc::Runtime& runtime, FileClientOptions options) {
  return std::shared_ptr<FileClient>(new FileClient(runtime, std::move(options)));
}

FileClient::FileClient(rpc::Runtime& runtime, FileClientOptions options)
    : runtime_(runtime), options_(std::move(options)) {
  rpc::ClientOptions copts;
  copts.address = options_.address;
  copts.server_principal = options_.server_principal;
  copts.credentials = options_.credentials;
  copts.test_context = options_.test_context;
  if (!options_.client_uuid.empty()) {
    auto handlers = std::make_shared<rpc::HandlerRegistry>();
    auto on_break = options_.on_break;
    handlers->Register<pb::BreakRequest, pb::BreakReply>(
        "heka.fileserver.CallbackService.Break",
        [on_break](rpc::CallContext&,
                             const pb::BreakRequest& req) -> rpc::awaitable<Result<pb::BreakReply>> {
          // Mark, then acknowledge; the slow invalidation is the caller's to post.
          if (on_break) on_break(req);
          co_return pb::BreakReply();
        });
    copts.handlers = std::move(handlers);
  }
  client_ = rpc::Client::Create(runtime, copts);
}

rpc::awaitable<Result<std::shared_ptr<rpc::Connection>>> FileClient::Ready() {
  auto conn = co_await client_->GetConnection();
  if (!conn.ok() || options_.client_uuid.empty()) co_return conn;
  {
    std::lock_guard lock(mu_);
    if (greeted_.lock() == *conn) co_return conn;
  }
  pb::HelloRequest hello;
  hello.set_client_uuid(options_.client_uuid);
  auto rep = co_await (*conn)->Call<pb::HelloReply>("heka.fileserver.File.Hello", hello, options_.call_timeout);
  if (!rep.ok()) co_return rep.status();
  {
    std::lock_guard lock(mu_);
    greeted_ = *conn;
  }
  epoch_ = rep->server_epoch_ns();
  if (rep->revalidate() && options_.on_revalidate) options_.on_revalidate();
  co_return conn;
}

}  // namespace heka::fs
