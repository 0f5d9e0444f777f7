// heka_fs_holder: a minimal callback holder for the file-server tests, as a separate process
// (so a test can SIGSTOP it). It says Hello as a cache manager, reads one file and appends
// "data <content>" to --out; on every break of that file, or when told to revalidate, it
// reads the file again and appends the new content. Runs until killed.
#include <getopt.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>

#include "fileserver/client/file_client.h"
#include "util/log.h"

namespace pb = heka::fileserver;

int main(int argc, char** argv) {
  std::string address, principal, ccache, cell, out;
  uint64_t volume = 0, vnode = 0, uniq = 0;
  static option opts[] = {{"address", required_argument, nullptr, 'a'},
                          {"principal", required_argument, nullptr, 'p'},
                          {"ccache", required_argument, nullptr, 'c'},
                          {"cell", required_argument, nullptr, 'C'},
                          {"volume", required_argument, nullptr, 'v'},
                          {"vnode", required_argument, nullptr, 'n'},
                          {"uniq", required_argument, nullptr, 'u'},
                          {"out", required_argument, nullptr, 'o'},
                          {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long_only(argc, argv, "", opts, nullptr)) != -1;) {
    switch (c) {
      case 'a': address = optarg; break;
      case 'p': principal = optarg; break;
      case 'c': ccache = optarg; break;
      case 'C': cell = optarg; break;
      case 'v': volume = std::stoull(optarg); break;
      case 'n': vnode = std::stoull(optarg); break;
      case 'u': uniq = std::stoull(optarg); break;
      case 'o': out = optarg; break;
      default: return 2;
    }
  }
  heka::InitLogging({"heka_fs_holder", "warn", ""});
  std::mutex mu;
  std::condition_variable cv;
  bool stale = true;
  auto mark = [&] {
    std::lock_guard lock(mu);
    stale = true;
    cv.notify_all();
  };
  heka::rpc::Runtime runtime({1, 1});
  heka::fs::FileClientOptions o;
  o.address = address;
  o.server_principal = principal;
  o.credentials.ccache = "FILE:" + ccache;
  o.client_uuid = "holder-" + std::to_string(getpid());
  o.on_break = [&](const pb::BreakRequest&) { mark(); };
  o.on_revalidate = [&] { mark(); };
  auto client = heka::fs::FileClient::Create(runtime, o);
  pb::FetchDataRequest req;
  req.mutable_fid()->set_cell(cell);
  req.mutable_fid()->set_volume(volume);
  req.mutable_fid()->set_vnode(vnode);
  req.mutable_fid()->set_uniq(uniq);
  req.set_length(1 << 20);
  for (;;) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return stale; });
      stale = false;
    }
    auto r = client->CallSync<pb::FetchDataReply>("heka.fileserver.File.FetchData", req);
    std::ofstream f(out, std::ios::app);
    if (r.ok()) {
      f << "data " << r->data() << "\n";
    } else {
      f << "error " << r.status().ToString() << "\n";
      mark();
    }
  }
}
