// The file server at the RPC level on loopback (BENCHMARKS.md; no cache manager yet): a real KDC,
// one heka-dbserver and one heka-fileserver process, the client calling FileClient directly.
// Every figure is next to a baseline measured in the same run on the same file system as the
// server's partition (by default under /var/tmp, a real disk, so fsync costs what it costs).
//   small_create: 4 KiB files created with their data in one CreateFile call each, 1 and 8
//     concurrent calls on one connection; baseline: local temp file + write + fsync + rename +
//     directory fsync per file, from 1 and 8 threads.
//   store / fetch: a 256 MiB file in 1 MiB StoreData calls in one store transaction (the commit
//     is durable), and FetchData in 4 MiB calls, server page cache warm and (when this process
//     may drop the kernel's caches) cold; baseline: local write + fsync and read.
//   big_dir: N entries in one directory (concurrent CreateFile), 10,000 random lookups (p50/p99
//     per lookup), then the whole directory listed in pages of 4096; baseline: the same on the
//     local file system (plain creat(), no fsync: only the shape of the numbers compares).
// small_create and store/fetch: median of --runs (default 5) with min-max. big_dir: once.
// Usage: heka_bench_fs [--seconds S] [--runs R] [--json FILE] [--root DIR] [--dir-entries N]
//                      [--dir-concurrency C] [--file-mib M]
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "dbserver/client/db_client.h"
#include "fileserver/client/file_client.h"
#include "tests/support/fs_cell.h"
#include "tests/support/test_realm.h"
#include "util/log.h"

namespace heka::bench {
namespace {

namespace pb = ::heka::fileserver;
using Clock = std::chrono::steady_clock;
constexpr size_t kMiB = 1 << 20;
constexpr size_t kSmallFile = 4096;
constexpr size_t kStoreCall = kMiB;      // bytes per StoreData
constexpr size_t kFetchCall = 4 * kMiB;  // bytes per FetchData
constexpr int kStoreWindow = 4;          // StoreData calls in flight
constexpr int kFetchWindow = 2;          // FetchData calls in flight
constexpr int kLookups = 10000;
constexpr uint32_t kPage = 4096;
constexpr const char* kFile = "heka.fileserver.File.";

struct Options {
  double seconds = 3;   // per small_create run
  int runs = 5;  // small_create is noisy on a shared 2-core machine: 5 rather than 3
  std::string json;
  std::string root = "/var/tmp";
  uint64_t dir_entries = 100000;
  int dir_concurrency = 16;
  uint64_t file_mib = 256;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "heka_bench_fs: %s\n", what.c_str());
  std::abort();  // the servers and the KDC die with us (PR_SET_PDEATHSIG)
}

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Spread {
  double median = 0, min = 0, max = 0;
};

Spread Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

double Quantile(std::vector<double>& sorted, double q) {
  return sorted[static_cast<size_t>(q * static_cast<double>(sorted.size() - 1))];
}

std::string Json(const Spread& s) {
  std::ostringstream o;
  o << "{\"median\": " << s.median << ", \"min\": " << s.min << ", \"max\": " << s.max << "}";
  return o.str();
}

// The type and device of the mount holding `path` (the longest matching mount point).
std::string FilesystemOf(const std::string& path) {
  std::string real = std::filesystem::canonical(path).string();
  std::ifstream in("/proc/self/mounts");
  std::string dev, mnt, type, rest, best_mnt, best = "unknown";
  while (in >> dev >> mnt >> type && std::getline(in, rest)) {
    bool under = real == mnt || mnt == "/" ||
                 (real.rfind(mnt, 0) == 0 && real.size() > mnt.size() && real[mnt.size()] == '/');
    if (under && mnt.size() >= best_mnt.size()) {
      best_mnt = mnt;
      best = type + " (" + dev + " on " + mnt + ")";
    }
  }
  return best;
}

// Before each timed piece: no one else's dirty pages are written back during the timing.
void Quiesce() { sync(); }

// Empties the kernel's page cache; false if this process may not.
bool DropCaches() {
  sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  f << "3\n";
  f.flush();
  return static_cast<bool>(f);
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t x = rng();
    std::memcpy(s.data() + i, &x, 8);
  }
  return s;
}

// ---- The cell ---------------------------------------------------------------------------------

struct World {
  std::unique_ptr<testing::TestRealm> realm;
  std::unique_ptr<testing::FsCell> cell;
  rpc::Runtime rt{{1, 2}};  // the client: one I/O thread, like a cache manager's
  std::shared_ptr<fs::FileClient> fc;  // as the cell administrator
  pb::Fid root;
  std::string scratch;  // the baselines' directory, next to the partition

  ~World() {
    fc.reset();
    cell.reset();
  }
};

db::Command CellCommand(int step) {
  db::Command cmd;
  if (step == 0) {
    cmd.mutable_create_cell()->set_name("bench");
    cmd.mutable_create_cell()->add_realms("HEKA.TEST");
  } else if (step == 1) {
    cmd.mutable_create_user()->set_cell("bench");
    cmd.mutable_create_user()->set_principal("benchadm@HEKA.TEST");
  } else {
    cmd.mutable_add_member()->set_cell("bench");
    cmd.mutable_add_member()->set_user("benchadm");
    cmd.mutable_add_member()->set_group("system:administrators");
  }
  return cmd;
}

std::shared_ptr<fs::FileClient> ClientAs(World& w, const std::string& ccache) {
  fs::FileClientOptions o;
  o.address = w.cell->fs_address(1);
  o.server_principal = w.cell->fs_principal(1);
  o.credentials.ccache = "FILE:" + ccache;
  o.call_timeout = std::chrono::milliseconds(120000);
  return fs::FileClient::Create(w.rt, o);
}

// Cell "bench" with administrator benchadm, and one volume on the file server's partition.
void MakeCellAndVolume(World& w, const std::string& admin_cc, const std::string& benchadm_cc) {
  db::DbClientOptions dbo;
  dbo.members = *db::ParseMembers(w.cell->db().dbservers());
  dbo.credentials.ccache = "FILE:" + admin_cc;
  dbo.prefer_leader_reads = true;
  db::DbClient dbc(w.rt, dbo);
  for (int step = 0; step < 3; ++step) {
    auto r = w.rt.BlockOn(dbc.Write(CellCommand(step)));
    if (!r.ok()) Die("DB write: " + r.status().ToString());
  }
  db::Command cmd;
  db::Volume* v = cmd.mutable_create_volume()->mutable_volume();
  v->set_name("bench.vol");
  v->set_cell("bench");
  db::VolumeSite* site = v->add_sites();
  site->set_server_uuid(w.cell->fs_uuid(1));
  site->set_partition(w.cell->fs_partition(1));
  auto made = w.rt.BlockOn(dbc.Write(cmd));
  if (!made.ok()) Die("create_volume: " + made.status().ToString());
  pb::CreateVolumeRequest req;
  req.set_cell("bench");
  req.set_id(static_cast<uint64_t>(made->id()));
  auto rep = ClientAs(w, admin_cc)->CallSync<pb::CreateVolumeReply>(
      "heka.fileserver.VolumeServer.CreateVolume", req);
  if (!rep.ok()) Die("CreateVolume: " + rep.status().ToString() + "\n" + w.cell->LogTail(1));
  w.root.set_cell("bench");
  w.root.set_volume(req.id());
  w.root.set_vnode(1);
  w.root.set_uniq(1);
  w.fc = ClientAs(w, benchadm_cc);
}

std::unique_ptr<World> StartWorld(const Options& opt) {
  auto w = std::make_unique<World>();
  testing::TestRealmOptions ro;
  ro.dir = opt.root + "/heka-bench-fs-" + std::to_string(getpid());
  auto realm = testing::TestRealm::Start(ro);
  if (!realm.ok()) Die("cannot start a KDC: " + realm.status().ToString());
  w->realm = std::move(*realm);
  w->realm->SetEnv();
  std::map<std::string, std::string> cc;
  for (const char* user : {"admin", "benchadm"}) {
    if (!w->realm->AddUser(user, std::string(user) + "-pw").ok()) Die("AddUser");
    cc[user] = w->realm->NewCcachePath(user);
    if (!w->realm->Kinit(user, std::string(user) + "-pw", cc[user]).ok()) Die("kinit");
  }
  testing::FsCellOptions o;
  o.provider_admins = {"admin@HEKA.TEST"};
  auto cell = testing::FsCell::Create(*w->realm, o, cc["admin"]);
  if (!cell.ok()) Die("FsCell: " + cell.status().ToString());
  w->cell = std::move(*cell);
  if (Status s = w->cell->StartFileServerAndWait(1); !s.ok()) Die(s.ToString());
  MakeCellAndVolume(*w, cc["admin"], cc["benchadm"]);
  w->scratch = w->realm->dir() + "/local";
  std::filesystem::create_directories(w->scratch);
  return w;
}

// ---- RPC helpers --------------------------------------------------------------------------------

// Runs `n` copies of `worker` on the client runtime and waits for all.
template <typename F>
void RunWorkers(World& w, int n, F worker) {
  std::vector<std::future<void>> fs;
  for (int i = 0; i < n; ++i) fs.push_back(rpc::asio::co_spawn(w.rt.io(), worker(), rpc::asio::use_future));
  for (auto& f : fs) f.get();
}

pb::CreateRequest CreateReq(const pb::Fid& dir, std::string name, const std::string& data) {
  pb::CreateRequest req;
  *req.mutable_dir() = dir;
  req.set_name(std::move(name));
  req.set_mode(0644);
  req.set_data(data);
  return req;
}

pb::Fid Create(World& w, const pb::Fid& dir, const std::string& name, const char* kind = "CreateFile") {
  auto r = w.fc->CallSync<pb::CreateReply>(std::string(kFile) + kind, CreateReq(dir, name, ""));
  if (!r.ok()) Die(std::string(kind) + " " + name + ": " + r.status().ToString());
  return r->status().fid();
}

// ---- small_create -------------------------------------------------------------------------------

double HekaSmallCreate(World& w, int concurrency, double seconds, const std::string& dirname) {
  Quiesce();
  pb::Fid dir = Create(w, w.root, dirname, "MakeDir");
  const std::string data = RandomBytes(kSmallFile, 1);
  std::atomic<uint64_t> next{0}, done{0};
  auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  auto t0 = Clock::now();
  RunWorkers(w, concurrency, [&]() -> rpc::awaitable<void> {
    while (Clock::now() < deadline) {
      auto req = CreateReq(dir, "f" + std::to_string(next++), data);
      auto r = co_await w.fc->Call<pb::CreateReply>(std::string(kFile) + "CreateFile", req);
      if (!r.ok()) Die("CreateFile: " + r.status().ToString());
      if (r->status().size() != kSmallFile) Die("CreateFile with data: wrong size");
      ++done;
    }
  });
  return static_cast<double>(done.load()) / Since(t0);
}

void CheckSys(bool ok, const char* what) {
  if (!ok) Die(std::string(what) + ": " + std::strerror(errno));
}

// Temp file + write + fsync + rename + directory fsync, per file, from `threads` threads.
double LocalSmallCreate(const std::string& dir, int threads, double seconds) {
  Quiesce();
  std::filesystem::create_directories(dir);
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  CheckSys(dfd >= 0, "open dir");
  const std::string data = RandomBytes(kSmallFile, 1);
  std::atomic<uint64_t> done{0};
  auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (uint64_t i = 0; Clock::now() < deadline; ++i) {
        std::string name = std::to_string(t) + "-" + std::to_string(i);
        std::string tmp = ".tmp-" + name;
        int fd = openat(dfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
        CheckSys(fd >= 0, "openat");
        CheckSys(write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()), "write");
        CheckSys(fsync(fd) == 0, "fsync");
        close(fd);
        CheckSys(renameat(dfd, tmp.c_str(), dfd, ("f" + name).c_str()) == 0, "rename");
        CheckSys(fsync(dfd) == 0, "fsync dir");
        ++done;
      }
    });
  }
  for (auto& t : ts) t.join();
  double rate = static_cast<double>(done.load()) / Since(t0);
  close(dfd);
  return rate;
}

// ---- store / fetch ------------------------------------------------------------------------------

// One store transaction of `bytes` in 1 MiB StoreData calls, kStoreWindow in flight; MB/s from
// BeginStore to the (durable) CommitStore reply.
double HekaStore(World& w, const pb::Fid& fid, uint64_t bytes, const std::string& block) {
  Quiesce();
  auto t0 = Clock::now();
  pb::BeginStoreRequest begin;
  *begin.mutable_fid() = fid;
  auto b = w.fc->CallSync<pb::BeginStoreReply>(std::string(kFile) + "BeginStore", begin);
  if (!b.ok()) Die("BeginStore: " + b.status().ToString());
  std::atomic<uint64_t> next{0};
  RunWorkers(w, kStoreWindow, [&]() -> rpc::awaitable<void> {
    for (uint64_t off; (off = next.fetch_add(kStoreCall)) < bytes;) {
      pb::StoreDataRequest put;
      put.set_store_id(b->store_id());
      put.set_offset(off);
      put.set_data(block);
      auto r = co_await w.fc->Call<pb::StoreDataReply>(std::string(kFile) + "StoreData", put);
      if (!r.ok()) Die("StoreData: " + r.status().ToString());
    }
  });
  pb::CommitStoreRequest commit;
  commit.set_store_id(b->store_id());
  commit.set_size(bytes);
  auto c = w.fc->CallSync<pb::CommitStoreReply>(std::string(kFile) + "CommitStore", commit);
  if (!c.ok()) Die("CommitStore: " + c.status().ToString());
  if (c->status().size() != bytes) Die("CommitStore: wrong size");
  return static_cast<double>(bytes) / Since(t0) / 1e6;
}

// Reads the file in 4 MiB FetchData calls, kFetchWindow in flight; MB/s.
double HekaFetch(World& w, const pb::Fid& fid, uint64_t bytes) {
  std::atomic<uint64_t> next{0}, got{0};
  auto t0 = Clock::now();
  RunWorkers(w, kFetchWindow, [&]() -> rpc::awaitable<void> {
    for (uint64_t off; (off = next.fetch_add(kFetchCall)) < bytes;) {
      pb::FetchDataRequest req;
      *req.mutable_fid() = fid;
      req.set_offset(off);
      req.set_length(kFetchCall);
      auto r = co_await w.fc->Call<pb::FetchDataReply>(std::string(kFile) + "FetchData", req);
      if (!r.ok()) Die("FetchData: " + r.status().ToString());
      got += r->data().size();
    }
  });
  double rate = static_cast<double>(bytes) / Since(t0) / 1e6;
  if (got.load() != bytes) Die("FetchData: short read");
  return rate;
}

double LocalWrite(const std::string& path, uint64_t bytes, const std::string& block) {
  Quiesce();
  auto t0 = Clock::now();
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CheckSys(fd >= 0, "open");
  for (uint64_t off = 0; off < bytes; off += block.size()) {
    CheckSys(write(fd, block.data(), block.size()) == static_cast<ssize_t>(block.size()), "write");
  }
  CheckSys(fsync(fd) == 0, "fsync");
  close(fd);
  return static_cast<double>(bytes) / Since(t0) / 1e6;
}

double LocalRead(const std::string& path, uint64_t bytes) {
  std::string buf(kFetchCall, '\0');
  auto t0 = Clock::now();
  int fd = open(path.c_str(), O_RDONLY);
  CheckSys(fd >= 0, "open");
  uint64_t got = 0;
  for (ssize_t n; (n = read(fd, buf.data(), buf.size())) > 0;) got += static_cast<uint64_t>(n);
  close(fd);
  if (got != bytes) Die("local read: short");
  return static_cast<double>(bytes) / Since(t0) / 1e6;
}

// ---- big_dir ------------------------------------------------------------------------------------

std::string EntryName(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "e%08llu", static_cast<unsigned long long>(i));
  return buf;
}

struct BigDir {
  double create_s = 0, lookup_p50_ms = 0, lookup_p99_ms = 0, lookups_per_s = 0, list_ms = 0;
  uint64_t listed = 0;
};

void HekaBigCreate(World& w, const pb::Fid& dir, uint64_t n, int concurrency) {
  std::atomic<uint64_t> next{0};
  auto t0 = Clock::now();
  RunWorkers(w, concurrency, [&]() -> rpc::awaitable<void> {
    for (uint64_t i; (i = next++) < n;) {
      auto r = co_await w.fc->Call<pb::CreateReply>(std::string(kFile) + "CreateFile",
                                                    CreateReq(dir, EntryName(i), ""));
      if (!r.ok()) Die("CreateFile " + EntryName(i) + ": " + r.status().ToString());
      if ((i + 1) % 100000 == 0) {
        std::fprintf(stderr, "  big_dir: %llu created, %.0f/s\n", static_cast<unsigned long long>(i + 1),
                     static_cast<double>(i + 1) / Since(t0));
      }
    }
  });
}

BigDir HekaBigDir(World& w, uint64_t n, int concurrency, uint64_t seed) {
  BigDir r;
  pb::Fid dir = Create(w, w.root, "big", "MakeDir");
  Quiesce();
  auto t0 = Clock::now();
  HekaBigCreate(w, dir, n, concurrency);
  r.create_s = Since(t0);
  std::mt19937_64 rng(seed);
  std::vector<double> lat;
  auto l0 = Clock::now();
  for (int k = 0; k < kLookups; ++k) {
    pb::LookupRequest req;
    *req.mutable_dir() = dir;
    req.set_name(EntryName(rng() % n));
    auto t = Clock::now();
    auto rep = w.fc->CallSync<pb::LookupReply>(std::string(kFile) + "Lookup", req);
    lat.push_back(Since(t) * 1e3);
    if (!rep.ok()) Die("Lookup " + req.name() + ": " + rep.status().ToString());
  }
  r.lookups_per_s = kLookups / Since(l0);
  std::sort(lat.begin(), lat.end());
  r.lookup_p50_ms = Quantile(lat, 0.5);
  r.lookup_p99_ms = Quantile(lat, 0.99);
  auto s0 = Clock::now();
  for (std::string after;;) {
    pb::ListDirRequest req;
    *req.mutable_dir() = dir;
    req.set_after(after);
    req.set_limit(kPage);
    auto rep = w.fc->CallSync<pb::ListDirReply>(std::string(kFile) + "ListDir", req);
    if (!rep.ok()) Die("ListDir: " + rep.status().ToString());
    r.listed += static_cast<uint64_t>(rep->entries_size());
    if (rep->entries_size() > 0) after = rep->entries(rep->entries_size() - 1).name();
    if (rep->done()) break;
  }
  r.list_ms = Since(s0) * 1e3;
  return r;
}

// The same on the local file system: creat() + close (no fsync), stat(), readdir().
BigDir LocalBigDir(const std::string& dir, uint64_t n, uint64_t seed) {
  BigDir r;
  std::filesystem::create_directories(dir);
  Quiesce();
  auto t0 = Clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    int fd = open((dir + "/" + EntryName(i)).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    CheckSys(fd >= 0, "open");
    close(fd);
  }
  r.create_s = Since(t0);
  std::mt19937_64 rng(seed);
  std::vector<double> lat;
  auto l0 = Clock::now();
  for (int k = 0; k < kLookups; ++k) {
    struct stat st;
    std::string p = dir + "/" + EntryName(rng() % n);
    auto t = Clock::now();
    CheckSys(stat(p.c_str(), &st) == 0, "stat");
    lat.push_back(Since(t) * 1e3);
  }
  r.lookups_per_s = kLookups / Since(l0);
  std::sort(lat.begin(), lat.end());
  r.lookup_p50_ms = Quantile(lat, 0.5);
  r.lookup_p99_ms = Quantile(lat, 0.99);
  auto s0 = Clock::now();
  DIR* d = opendir(dir.c_str());
  CheckSys(d != nullptr, "opendir");
  while (dirent* e = readdir(d)) r.listed += e->d_name[0] != '.';
  closedir(d);
  r.list_ms = Since(s0) * 1e3;
  return r;
}

// ---- Reporting ----------------------------------------------------------------------------------

struct Results {
  std::string filesystem;
  Spread heka_c1, heka_c8, local_t1, local_t8;
  Spread store, fetch_warm, fetch_cold, local_write, local_read_warm, local_read_cold;
  bool cold = false;
  BigDir heka_dir, local_dir;
  uint64_t dir_entries = 0;
  double total_s = 0;
};

void PrintSpread(const char* name, const Spread& s, const char* unit) {
  std::printf("  %-34s %9.0f %s  (min %.0f, max %.0f)\n", name, s.median, unit, s.min, s.max);
}

void Print(const Results& r, const Options& o) {
  std::printf("file server at the RPC level, loopback, GSS+AES-GCM; partition on %s\n",
              r.filesystem.c_str());
  std::printf("small_create (4 KiB, one CreateFile with data each), median of %d:\n", o.runs);
  PrintSpread("heka, 1 call in flight", r.heka_c1, "files/s");
  PrintSpread("heka, 8 calls in flight", r.heka_c8, "files/s");
  PrintSpread("local tmp+fsync+rename+dirfsync, 1 thr", r.local_t1, "files/s");
  PrintSpread("local tmp+fsync+rename+dirfsync, 8 thr", r.local_t8, "files/s");
  std::printf("  ratios: heka/local %.2f (1), %.2f (8); heka(8)/sshfs 1,003/s (BENCHMARKS.md) %.2f\n",
              r.heka_c1.median / r.local_t1.median, r.heka_c8.median / r.local_t8.median,
              r.heka_c8.median / 1003);
  std::printf("%llu MiB file: store in 1 MiB StoreData (durable commit), fetch in 4 MiB FetchData:\n",
              static_cast<unsigned long long>(o.file_mib));
  PrintSpread("heka store", r.store, "MB/s");
  PrintSpread("local write + fsync", r.local_write, "MB/s");
  PrintSpread("heka fetch, warm", r.fetch_warm, "MB/s");
  PrintSpread("local read, warm", r.local_read_warm, "MB/s");
  if (r.cold) {
    PrintSpread("heka fetch, cold (caches dropped)", r.fetch_cold, "MB/s");
    PrintSpread("local read, cold", r.local_read_cold, "MB/s");
  }
  char cold[64] = "";
  if (r.cold) std::snprintf(cold, sizeof cold, ", fetch cold %.2f", r.fetch_cold.median / r.local_read_cold.median);
  std::printf("  ratios: store %.2f, fetch warm %.2f%s of local\n", r.store.median / r.local_write.median,
              r.fetch_warm.median / r.local_read_warm.median, cold);
  std::printf("big_dir, %llu entries (%d concurrent CreateFile), %d random lookups, ListDir pages of %u:\n",
              static_cast<unsigned long long>(r.dir_entries), o.dir_concurrency, kLookups, kPage);
  for (const auto* d : {&r.heka_dir, &r.local_dir}) {
    std::printf("  %-6s create %8.1f s (%7.0f/s)  lookup p50 %.3f ms p99 %.3f ms (%6.0f/s)  list %8.1f ms "
                "(%llu entries%s)\n",
                d == &r.heka_dir ? "heka" : "local", d->create_s, r.dir_entries / d->create_s,
                d->lookup_p50_ms, d->lookup_p99_ms, d->lookups_per_s, d->list_ms,
                static_cast<unsigned long long>(d->listed), d->listed == r.dir_entries ? ", ok" : ", WRONG COUNT");
  }
  std::printf("  (local: creat() without fsync, for shape only)\ntotal %.0f s\n", r.total_s);
}

std::string DirJson(const BigDir& d) {
  std::ostringstream o;
  o << "{\"create_s\": " << d.create_s << ", \"lookup_p50_ms\": " << d.lookup_p50_ms
    << ", \"lookup_p99_ms\": " << d.lookup_p99_ms << ", \"lookups_per_s\": " << d.lookups_per_s
    << ", \"list_ms\": " << d.list_ms << ", \"listed\": " << d.listed << "}";
  return o.str();
}

void WriteJson(const Results& r, const Options& o) {
  std::ofstream out(o.json);
  out << "{\"fs_rpc_env\": {\"filesystem\": \"" << r.filesystem << "\", \"runs\": " << o.runs
      << ", \"total_s\": " << r.total_s << "},\n"
      << " \"fs_small_create\": {\"heka_1_per_s\": " << Json(r.heka_c1) << ", \"heka_8_per_s\": "
      << Json(r.heka_c8) << ", \"local_1_per_s\": " << Json(r.local_t1) << ", \"local_8_per_s\": "
      << Json(r.local_t8) << "},\n"
      << " \"fs_store_fetch\": {\"file_mib\": " << o.file_mib << ", \"store_mb_s\": " << Json(r.store)
      << ", \"local_write_mb_s\": " << Json(r.local_write) << ", \"fetch_warm_mb_s\": "
      << Json(r.fetch_warm) << ", \"local_read_warm_mb_s\": " << Json(r.local_read_warm);
  if (r.cold) {
    out << ", \"fetch_cold_mb_s\": " << Json(r.fetch_cold) << ", \"local_read_cold_mb_s\": "
        << Json(r.local_read_cold);
  }
  out << "},\n \"fs_big_dir\": {\"entries\": " << r.dir_entries << ", \"concurrency\": "
      << o.dir_concurrency << ", \"heka\": " << DirJson(r.heka_dir) << ", \"local_no_fsync\": "
      << DirJson(r.local_dir) << "}}\n";
}

// ---- Driver -------------------------------------------------------------------------------------

void SmallCreates(World& w, const Options& o, Results& r) {
  std::vector<double> h1, h8, l1, l8;
  for (int i = 0; i < o.runs; ++i) {
    std::string n = std::to_string(i);
    h1.push_back(HekaSmallCreate(w, 1, o.seconds, "sc1-" + n));
    l1.push_back(LocalSmallCreate(w.scratch + "/sc1-" + n, 1, o.seconds));
    h8.push_back(HekaSmallCreate(w, 8, o.seconds, "sc8-" + n));
    l8.push_back(LocalSmallCreate(w.scratch + "/sc8-" + n, 8, o.seconds));
  }
  r.heka_c1 = Summarize(h1);
  r.heka_c8 = Summarize(h8);
  r.local_t1 = Summarize(l1);
  r.local_t8 = Summarize(l8);
}

void StoreFetch(World& w, const Options& o, Results& r) {
  const uint64_t bytes = o.file_mib * kMiB;
  const std::string block = RandomBytes(kStoreCall, 2);
  std::vector<double> st, fw, fc, lw, lrw, lrc;
  r.cold = true;
  for (int i = 0; i < o.runs; ++i) {
    pb::Fid fid = Create(w, w.root, "big-" + std::to_string(i));
    st.push_back(HekaStore(w, fid, bytes, block));
    fw.push_back(HekaFetch(w, fid, bytes));
    std::string path = w.scratch + "/big-" + std::to_string(i);
    lw.push_back(LocalWrite(path, bytes, block));
    lrw.push_back(LocalRead(path, bytes));
    if (r.cold && DropCaches()) {
      fc.push_back(HekaFetch(w, fid, bytes));
      if (!DropCaches()) Die("drop_caches");
      lrc.push_back(LocalRead(path, bytes));
    } else {
      r.cold = false;
    }
    std::filesystem::remove(path);
  }
  r.store = Summarize(st);
  r.fetch_warm = Summarize(fw);
  r.local_write = Summarize(lw);
  r.local_read_warm = Summarize(lrw);
  if (r.cold) {
    r.fetch_cold = Summarize(fc);
    r.local_read_cold = Summarize(lrc);
  }
}

Options Parse(int argc, char** argv) {
  Options o;
  static option opts[] = {{"seconds", required_argument, nullptr, 's'},
                          {"runs", required_argument, nullptr, 'r'},
                          {"json", required_argument, nullptr, 'j'},
                          {"root", required_argument, nullptr, 'd'},
                          {"dir-entries", required_argument, nullptr, 'n'},
                          {"dir-concurrency", required_argument, nullptr, 'c'},
                          {"file-mib", required_argument, nullptr, 'm'},
                          {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long_only(argc, argv, "", opts, nullptr)) != -1;) {
    if (c == 's') o.seconds = std::atof(optarg);
    else if (c == 'r') o.runs = std::max(1, std::atoi(optarg));
    else if (c == 'j') o.json = optarg;
    else if (c == 'd') o.root = optarg;
    else if (c == 'n') o.dir_entries = std::max<uint64_t>(1, std::strtoull(optarg, nullptr, 10));
    else if (c == 'c') o.dir_concurrency = std::max(1, std::atoi(optarg));
    else if (c == 'm') o.file_mib = std::max<uint64_t>(1, std::strtoull(optarg, nullptr, 10));
    else std::exit(2);
  }
  return o;
}

}  // namespace
}  // namespace heka::bench

int main(int argc, char** argv) {
  using namespace heka::bench;
  Options o = Parse(argc, argv);
  heka::InitLogging({"heka-bench", "warn", ""});
  auto t0 = Clock::now();
  auto w = StartWorld(o);
  Results r;
  r.filesystem = FilesystemOf(w->cell->fs_partition(1));
  r.dir_entries = o.dir_entries;
  std::fprintf(stderr, "heka_bench_fs: partition %s on %s\n", w->cell->fs_partition(1).c_str(),
               r.filesystem.c_str());
  SmallCreates(*w, o, r);
  StoreFetch(*w, o, r);
  uint64_t seed = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  std::fprintf(stderr, "heka_bench_fs: big_dir seed %llu\n", static_cast<unsigned long long>(seed));
  r.heka_dir = HekaBigDir(*w, o.dir_entries, o.dir_concurrency, seed);
  r.local_dir = LocalBigDir(w->scratch + "/big-dir", o.dir_entries, seed);
  r.total_s = Since(t0);
  Print(r, o);
  if (!o.json.empty()) WriteJson(r, o);
  return r.heka_dir.listed == o.dir_entries && r.local_dir.listed == o.dir_entries ? 0 : 1;
}
