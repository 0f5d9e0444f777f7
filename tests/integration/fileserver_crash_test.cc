// Crashes of the file server with the real KDC and DB: kill -9 of heka-fileserver during a
// stream of acknowledged stores, a simulated power loss (FaultEnv drops what was not synced)
// under an in-process FileService, and the startup salvage with 200 volumes. Every
// acknowledged store must read back exactly after the restart and salvage, and a reader must
// never see a mix of two versions. Faults are drawn from a seed printed with each run
// (HEKA_CRASH_SEED=<n> repeats it; thread timing still varies).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "dbserver/client/db_client.h"
#include "fileserver/client/file_client.h"
#include "fileserver/server/config.h"
#include "fileserver/server/file_service.h"
#include "fileserver/volume/env.h"
#include "fileserver/volume/salvage.h"
#include "fileserver/volume/volume.h"
#include "proto/db.pb.h"
#include "rpc/server.h"
#include "tests/support/fs_cell.h"
#include "tests/support/process.h"
#include "tests/support/test_realm.h"
#include "tests/support/wait.h"

namespace heka::fs {
namespace {

using testing::FsCell;
using testing::SharedRealm;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kCell = "acme";
constexpr uint64_t kMiB = 1 << 20;
constexpr size_t kBlock = 4096;  // every block of a content names its file and version

// ---- Contents ---------------------------------------------------------------------------------

// Version 0 is the empty file; the others cycle through sizes, most of them multi-chunk.
uint64_t SizeOf(int file, uint64_t version) {
  static constexpr uint64_t kSizes[] = {3 * kMiB / 2, 300 * 1024 + 123, 9 * kMiB / 4 + 5,
                                        64 * 1024};
  return version == 0 ? 0 : kSizes[(version + static_cast<uint64_t>(file)) % 4];
}

std::string Content(int file, uint64_t version) {
  std::string out(SizeOf(file, version), '\0');
  for (size_t b = 0; b * kBlock < out.size(); ++b) {
    size_t start = b * kBlock;
    size_t len = std::min(kBlock, out.size() - start);
    char head[48];
    int n = std::snprintf(head, sizeof head, "F%03d V%010llu B%06zu|", file,
                          static_cast<unsigned long long>(version), b);
    for (size_t i = 0; i < len; ++i) {
      out[start + i] = i < static_cast<size_t>(n) ? head[i]
                                                  : static_cast<char>((version * 131 + b * 7 + i) & 0xff);
    }
  }
  return out;
}

// The version `data` is, if it is exactly one whole version of `file`.
std::optional<uint64_t> VersionOf(int file, const std::string& data) {
  if (data.empty()) return 0;
  int f = -1;
  unsigned long long v = 0;
  if (std::sscanf(data.substr(0, 20).c_str(), "F%d V%llu", &f, &v) != 2 || f != file) {
    return std::nullopt;
  }
  if (data != Content(file, v)) return std::nullopt;
  return v;
}

uint64_t SeedFromEnv() {
  const char* s = std::getenv("HEKA_CRASH_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : std::random_device{}();
}

// ---- Realm and cell -----------------------------------------------------------------------------

const std::string& AdminCcache() {
  static const std::string cc = [] {
    auto& realm = SharedRealm();
    EXPECT_TRUE(realm.AddUser("admin", "admin-pw").ok());
    std::string path = realm.NewCcachePath("admin");
    EXPECT_TRUE(realm.Kinit("admin", "admin-pw", path).ok());
    return path;
  }();
  return cc;
}

db::DbClientOptions AdminDbOptions(FsCell& cell) {
  db::DbClientOptions o;
  for (int id = 1; id <= cell.db().size(); ++id) {
    o.members.push_back({cell.db().address(id), cell.db().principal(id)});
  }
  o.credentials.ccache = "FILE:" + AdminCcache();
  o.retry_deadline = milliseconds(10000);
  return o;
}

std::shared_ptr<FileClient> AdminFileClient(rpc::Runtime& runtime, const std::string& address,
                                            const std::string& principal) {
  FileClientOptions o;
  o.address = address;
  o.server_principal = principal;
  o.credentials.ccache = "FILE:" + AdminCcache();
  o.call_timeout = milliseconds(20000);
  return FileClient::Create(runtime, o);
}

// Cell `acme` trusting HEKA.TEST, with admin@HEKA.TEST in its system:administrators (who have
// all rights on a new volume's root).
void CreateAcme(rpc::Runtime& runtime, FsCell& cell) {
  db::DbClient db(runtime, AdminDbOptions(cell));
  db::Command c1;
  c1.mutable_create_cell()->set_name(kCell);
  c1.mutable_create_cell()->add_realms("HEKA.TEST");
  auto r = db.Sync(db.Write(c1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  db::Command c2;
  c2.mutable_create_user()->set_cell(kCell);
  c2.mutable_create_user()->set_principal("admin@HEKA.TEST");
  r = db.Sync(db.Write(c2));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  db::Command c3;
  c3.mutable_add_member()->set_cell(kCell);
  c3.mutable_add_member()->set_user("admin");
  c3.mutable_add_member()->set_group("system:administrators");
  r = db.Sync(db.Write(c3));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

pb::Fid RootFid(uint64_t volume) {
  pb::Fid f;
  f.set_cell(kCell);
  f.set_volume(volume);
  f.set_vnode(kRootVnode);
  f.set_uniq(1);
  return f;
}

Result<pb::FetchStatusReply> FetchStatus(FileClient& client, const pb::Fid& fid) {
  pb::FetchStatusRequest req;
  *req.mutable_fid() = fid;
  return client.CallSync<pb::FetchStatusReply>("heka.fileserver.File.FetchStatus", req);
}

Result<std::vector<pb::Fid>> CreateFiles(FileClient& client, uint64_t volume, int n) {
  std::vector<pb::Fid> out;
  for (int i = 0; i < n; ++i) {
    pb::CreateRequest req;
    *req.mutable_dir() = RootFid(volume);
    req.set_name("f" + std::to_string(i));
    req.set_mode(0644);
    auto r = client.CallSync<pb::CreateReply>("heka.fileserver.File.CreateFile", req);
    if (!r.ok()) return r.status();
    out.push_back(r->status().fid());
  }
  return out;
}

Result<std::string> FetchAll(FileClient& client, const pb::Fid& fid) {
  pb::FetchDataRequest req;
  *req.mutable_fid() = fid;
  req.set_length(8 * kMiB);  // one reply: one consistent version
  auto r = client.CallSync<pb::FetchDataReply>("heka.fileserver.File.FetchData", req);
  if (!r.ok()) return r.status();
  return r->data();
}

bool LogHas(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) return true;
  }
  return false;
}

// ---- A stream of stores -----------------------------------------------------------------------

// One writer thread per file storing versions 1, 2, ... through FileClient, recording each
// acknowledged CommitStore and the one whose commit was in flight when calls began to fail;
// one reader thread checking that every FetchData is one whole version, not older than the
// last acknowledged one. Failures are expected only after Crashing().
class StoreStream {
 public:
  StoreStream(std::shared_ptr<FileClient> client, std::vector<pb::Fid> fids)
      : client_(std::move(client)), fids_(std::move(fids)), files_(fids_.size()) {}
  ~StoreStream() { Join(); }

  void Start() {
    writers_running_ = fids_.size();
    for (size_t f = 0; f < fids_.size(); ++f) {
      threads_.emplace_back([this, f] {
        Write(f);
        writers_running_--;
      });
    }
    threads_.emplace_back([this] { Read(); });
  }
  void Crashing() { crashing_ = true; }
  // After Crashing(): waits until every writer has met a failure and stopped.
  bool WaitWritersStopped() {
    return WaitFor([&] { return writers_running_.load() == 0; }, seconds(60));
  }
  void Join() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  uint64_t acked() const { return acked_total_.load(); }
  uint64_t reads() const { return reads_.load(); }
  std::vector<std::string> errors() const {
    std::lock_guard lock(mu_);
    return errors_;
  }
  // After the crash: `data` (file f as read back) must be its last acknowledged version or
  // the one whose commit was in flight. Returns "" if so, else what is wrong.
  std::string Check(size_t f, const std::string& data) const {
    std::lock_guard lock(mu_);
    const File& s = files_[f];
    auto v = VersionOf(static_cast<int>(f), data);
    std::string want = "version " + std::to_string(s.acked) +
                       (s.in_flight ? " or " + std::to_string(s.in_flight) : "");
    if (!v) {
      return "file " + std::to_string(f) + ": " + std::to_string(data.size()) +
             " bytes that are not one whole version; want " + want;
    }
    if (*v == s.acked || (s.in_flight != 0 && *v == s.in_flight)) return "";
    return "file " + std::to_string(f) + ": version " + std::to_string(*v) + "; want " + want;
  }
  std::string Describe() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (size_t f = 0; f < files_.size(); ++f) {
      out += "f" + std::to_string(f) + " acked " + std::to_string(files_[f].acked) +
             (files_[f].in_flight ? " in flight " + std::to_string(files_[f].in_flight) : "") +
             "; ";
    }
    return out;
  }

 private:
  struct File {
    uint64_t acked = 0;
    uint64_t in_flight = 0;  // version whose CommitStore got no answer; 0: none
  };

  void Fail(const std::string& what) {
    std::lock_guard lock(mu_);
    errors_.push_back(what);
  }

  Status Store(size_t f, uint64_t v) {
    pb::BeginStoreRequest begin;
    *begin.mutable_fid() = fids_[f];
    auto b = client_->CallSync<pb::BeginStoreReply>("heka.fileserver.File.BeginStore", begin);
    if (!b.ok()) return b.status();
    std::string content = Content(static_cast<int>(f), v);
    for (uint64_t off = 0; off < content.size(); off += kMiB) {
      pb::StoreDataRequest data;
      data.set_store_id(b->store_id());
      data.set_offset(off);
      data.set_data(content.substr(off, kMiB));
      auto d = client_->CallSync<pb::StoreDataReply>("heka.fileserver.File.StoreData", data);
      if (!d.ok()) return d.status();
    }
    {
      std::lock_guard lock(mu_);
      files_[f].in_flight = v;
    }
    pb::CommitStoreRequest commit;
    commit.set_store_id(b->store_id());
    commit.set_size(content.size());
    auto c = client_->CallSync<pb::CommitStoreReply>("heka.fileserver.File.CommitStore", commit);
    if (!c.ok()) return c.status();
    if (c->status().size() != content.size()) {
      Fail("commit of f" + std::to_string(f) + " v" + std::to_string(v) + " reports size " +
           std::to_string(c->status().size()));
    }
    std::lock_guard lock(mu_);
    files_[f].acked = v;
    files_[f].in_flight = 0;
    acked_total_++;
    return Status::Ok();
  }

  void Write(size_t f) {
    for (uint64_t v = 1; !stop_; ++v) {
      Status s = Store(f, v);
      if (s.ok()) continue;
      if (!crashing_) Fail("store f" + std::to_string(f) + " v" + std::to_string(v) + ": " + s.ToString());
      return;
    }
  }

  void Read() {
    for (size_t i = 0; !stop_; ++i) {
      size_t f = i % fids_.size();
      uint64_t floor;
      {
        std::lock_guard lock(mu_);
        floor = files_[f].acked;
      }
      auto data = FetchAll(*client_, fids_[f]);
      if (!data.ok()) {
        if (crashing_) return;
        Fail("read f" + std::to_string(f) + ": " + data.status().ToString());
        return;
      }
      reads_++;
      auto v = VersionOf(static_cast<int>(f), *data);
      if (!v) {
        Fail("read of f" + std::to_string(f) + " saw a mix or damage (" +
             std::to_string(data->size()) + " bytes)");
      } else if (*v < floor) {
        Fail("read of f" + std::to_string(f) + " saw v" + std::to_string(*v) +
             " after v" + std::to_string(floor) + " was acknowledged");
      }
    }
  }

  std::shared_ptr<FileClient> client_;
  const std::vector<pb::Fid> fids_;
  mutable std::mutex mu_;
  std::vector<File> files_;          // mu_
  std::vector<std::string> errors_;  // mu_
  std::atomic<uint64_t> acked_total_{0};
  std::atomic<uint64_t> reads_{0};
  std::atomic<bool> crashing_{false};
  std::atomic<size_t> writers_running_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// ---- The fixture ------------------------------------------------------------------------------

class FileServerCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = SeedFromEnv();
    rng_.seed(seed_);
    std::printf("seed %llu (HEKA_CRASH_SEED=%llu repeats it)\n",
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
    testing::FsCellOptions o;
    o.provider_admins = {"admin@HEKA.TEST"};
    auto c = FsCell::Create(SharedRealm(), o, AdminCcache());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cell_ = std::move(*c);
    CreateAcme(runtime_, *cell_);
  }

  std::shared_ptr<FileClient> NewClient() {
    return AdminFileClient(runtime_, cell_->fs_address(1), cell_->fs_principal(1));
  }

  // A volume placed on file server 1 in the VLDB and created there.
  Result<uint64_t> CreateVolume(const std::string& name) {
    db::DbClient db(runtime_, AdminDbOptions(*cell_));
    db::Command cmd;
    db::Volume* v = cmd.mutable_create_volume()->mutable_volume();
    v->set_name(name);
    v->set_cell(kCell);
    db::VolumeSite* site = v->add_sites();
    site->set_server_uuid(cell_->fs_uuid(1));
    site->set_partition(cell_->fs_partition(1));
    site->set_type(db::VolumeSite::RW);
    auto r = db.Sync(db.Write(cmd));
    if (!r.ok()) return r.status();
    uint64_t id = static_cast<uint64_t>(r->id());
    pb::CreateVolumeRequest req;
    req.set_cell(kCell);
    req.set_id(id);
    req.set_partition(cell_->fs_partition(1));
    auto created = NewClient()->CallSync<pb::CreateVolumeReply>(
        "heka.fileserver.VolumeServer.CreateVolume", req);
    if (!created.ok()) return created.status();
    return id;
  }

  // Waits until the root of `volume` answers FetchStatus (it is online).
  bool WaitOnline(FileClient& client, uint64_t volume, std::chrono::milliseconds timeout) {
    return WaitFor([&] { return FetchStatus(client, RootFid(volume)).ok(); }, timeout);
  }

  testing::ProcessResult Salvage(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {testing::BinDir() + "/heka-fileserver", "--config",
                                     cell_->fs_config(1), "--salvage"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return testing::RunProcess(argv, {}, seconds(120));
  }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  rpc::Runtime runtime_{{2, 4}};
  std::unique_ptr<FsCell> cell_;
};

// Every "volume N: ..." line of a --salvage run says "clean".
void ExpectAllClean(const testing::ProcessResult& r) {
  EXPECT_EQ(r.exit_code, 0) << r.output;
  size_t volumes = 0;
  std::istringstream in(r.output);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("volume ", 0) != 0) continue;
    ++volumes;
    EXPECT_NE(line.find(": clean"), std::string::npos) << line;
  }
  EXPECT_GT(volumes, 0u) << r.output;
}

// (a) kill -9 in the middle of acknowledged stores; the restart salvages the volume.
TEST_F(FileServerCrashTest, KillDuringStoresKeepsEveryAcknowledgedStore) {
  ASSERT_TRUE(cell_->StartFileServerAndWait(1).ok()) << cell_->LogTail(1);
  auto id = CreateVolume("crash.a");
  ASSERT_TRUE(id.ok()) << id.status().ToString() << cell_->LogTail(1);
  auto client = NewClient();
  auto fids = CreateFiles(*client, *id, 4);
  ASSERT_TRUE(fids.ok()) << fids.status().ToString();

  StoreStream stream(client, *fids);
  uint64_t kill_at = 12 + rng_() % 30;
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return stream.acked() >= kill_at || !stream.errors().empty(); },
                      seconds(120)))
      << "only " << stream.acked() << " stores in 120 s";
  stream.Crashing();
  cell_->KillFileServer(1);
  stream.Join();
  EXPECT_TRUE(stream.errors().empty()) << stream.errors().front();
  std::printf("killed after %llu acknowledged stores, %llu reads: %s\n",
              static_cast<unsigned long long>(stream.acked()),
              static_cast<unsigned long long>(stream.reads()), stream.Describe().c_str());

  auto start = Clock::now();
  ASSERT_TRUE(cell_->StartFileServer(1).ok());
  client = NewClient();
  ASSERT_TRUE(WaitOnline(*client, *id, seconds(60))) << cell_->LogTail(1);
  std::printf("volume online %lld ms after the restart\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(Clock::now() - start).count()));
  for (size_t f = 0; f < fids->size(); ++f) {
    auto data = FetchAll(*client, (*fids)[f]);
    ASSERT_TRUE(data.ok()) << data.status().ToString();
    EXPECT_EQ(stream.Check(f, *data), "");
  }
  EXPECT_TRUE(LogHas(cell_->fs_log(1), "salvaged volume " + std::to_string(*id) + ":"))
      << cell_->LogTail(1);
  // The progress line follows the volume's "online" line: wait for it.
  EXPECT_TRUE(WaitFor([&] {
    return LogHas(cell_->fs_log(1), "salvage of " + cell_->fs_partition(1) + ": 1/1 volumes");
  }, seconds(30))) << cell_->LogTail(1);

  // On-demand salvage refuses while the server runs, and finds everything clean after it.
  auto refused = Salvage();
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("stop it first"), std::string::npos) << refused.output;
  cell_->StopFileServer(1);
  auto after = Salvage();
  ExpectAllClean(after);
  std::printf("--salvage after the restart:\n%s", after.output.c_str());
  auto one = Salvage({"--volume", std::to_string(*id)});
  EXPECT_EQ(one.exit_code, 0) << one.output;
  EXPECT_NE(one.output.find("volume " + std::to_string(*id) + ": clean"), std::string::npos)
      << one.output;
}

// (b) A power loss: writes not yet synced are dropped (FaultEnv), under a FileService in this
// process serving over a real rpc::Server with the real KDC.
TEST_F(FileServerCrashTest, PowerLossDropsNothingAcknowledged) {
  auto config = FileServerConfig::Load(cell_->fs_config(1));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const std::string partition = cell_->fs_partition(1);
  constexpr uint64_t kVolume = 7001;

  FaultEnv fault(DefaultEnv());
  {
    rpc::Runtime server_runtime({2, 4});
    db::DbClientOptions dbo = AdminDbOptions(*cell_);
    dbo.credentials = {};
    dbo.credentials.keytab = "FILE:" + config->keytab;
    dbo.credentials.principal = config->principal;
    dbo.credentials.ccache = "MEMORY:heka-crash-test";
    db::DbClient db(server_runtime, dbo);
    FileServiceDeps deps;
    deps.config = &*config;
    deps.runtime = &server_runtime;
    deps.db = &db;
    deps.env = &fault;
    deps.server_uuid = "crash-test";
    deps.epoch_ns = 1;
    auto service = std::make_unique<FileService>(deps);
    auto vol = Volume::Create(service->OptionsFor(partition), kVolume, "crash.b",
                              VolumeType::kReadWrite, 0);
    ASSERT_TRUE(vol.ok()) << vol.status().ToString();
    ASSERT_TRUE(FileService::SaveCell(fault, (*vol)->dir(), kCell).ok());
    auto served = std::make_shared<ServedVolume>();
    served->volume = std::move(*vol);
    served->cell = kCell;
    served->partition = partition;
    service->volumes().Put(kVolume, served);
    served.reset();

    auto registry = std::make_shared<rpc::HandlerRegistry>();
    service->Register(*registry);
    rpc::ServerOptions sopts;
    sopts.listen = config->listen;
    sopts.credentials.keytab = "FILE:" + config->keytab;
    sopts.credentials.principal = config->principal;
    auto server = rpc::Server::Create(server_runtime, sopts, registry);
    ASSERT_TRUE(server->Start().ok());

    auto client = NewClient();
    auto fids = CreateFiles(*client, kVolume, 4);
    ASSERT_TRUE(fids.ok()) << fids.status().ToString();
    StoreStream stream(client, *fids);
    uint64_t crash_at = 12 + rng_() % 30;
    int64_t calls_left = static_cast<int64_t>(rng_() % 40);
    stream.Start();
    ASSERT_TRUE(WaitFor([&] { return stream.acked() >= crash_at || !stream.errors().empty(); },
                        seconds(120)));
    // The machine dies `calls_left` file-system changes from now: nothing after reaches the
    // disk, and what was not synced by then is lost (Crash() below).
    stream.Crashing();
    fault.test_KillAfter(calls_left);
    EXPECT_TRUE(stream.WaitWritersStopped());
    stream.Join();
    EXPECT_TRUE(stream.errors().empty()) << stream.errors().front();
    std::printf("power lost %lld calls after %llu acknowledged stores: %s\n",
                static_cast<long long>(calls_left), static_cast<unsigned long long>(crash_at),
                stream.Describe().c_str());
    client.reset();
    server->Stop();
    service->Shutdown();
    server_runtime.Stop();
    service.reset();  // closes the volume; its dirty marker cannot be removed any more
    ASSERT_TRUE(fault.Crash().ok());

    VolumeOptions options;
    options.env = DefaultEnv();
    options.partition = partition;
    EXPECT_TRUE(VolumeNeedsSalvage(options, kVolume));
    {
      auto lock = PartitionLock::Acquire(partition);
      ASSERT_TRUE(lock.ok()) << lock.status().ToString();
      auto report = SalvageVolume(options, kVolume, **lock);
      ASSERT_TRUE(report.ok()) << report.status().ToString();
      std::printf("salvage: %s\n", report->Summary().c_str());
      EXPECT_EQ(report->missing_chunks, 0u) << report->Summary();
      auto again = SalvageVolume(options, kVolume, **lock);
      ASSERT_TRUE(again.ok());
      EXPECT_TRUE(again->clean()) << again->Summary();
    }
    auto reopened = Volume::Open(options, kVolume);
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    for (size_t f = 0; f < fids->size(); ++f) {
      auto data = (*reopened)->Read((*fids)[f].vnode(), 0, 8 * kMiB);
      ASSERT_TRUE(data.ok()) << data.status().ToString();
      EXPECT_EQ(stream.Check(f, std::string(data->begin(), data->end())), "");
    }
  }
}

// (c) 200 volumes, one being written at the kill: the 199 idle ones serve at once after the
// restart; the written one comes back after its salvage.
TEST_F(FileServerCrashTest, IdleVolumesServeAtOnceAfterKill) {
  constexpr uint64_t kFirst = 5000;
  constexpr uint64_t kVolumes = 200;
  constexpr uint64_t kWritten = kFirst + 137;
  VolumeOptions options;
  options.env = DefaultEnv();
  options.partition = cell_->fs_partition(1);
  auto made = Clock::now();
  for (uint64_t id = kFirst; id < kFirst + kVolumes; ++id) {
    auto vol = Volume::Create(options, id, "scale." + std::to_string(id), VolumeType::kReadWrite,
                              0);
    ASSERT_TRUE(vol.ok()) << vol.status().ToString();
    ASSERT_TRUE(FileService::SaveCell(*DefaultEnv(), (*vol)->dir(), kCell).ok());
  }
  std::printf("created %llu volumes in %lld ms\n", static_cast<unsigned long long>(kVolumes),
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(Clock::now() - made).count()));
  ASSERT_TRUE(cell_->StartFileServerAndWait(1).ok()) << cell_->LogTail(1);
  auto client = NewClient();
  auto fids = CreateFiles(*client, kWritten, 2);
  ASSERT_TRUE(fids.ok()) << fids.status().ToString();

  StoreStream stream(client, *fids);
  uint64_t kill_at = 6 + rng_() % 10;
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return stream.acked() >= kill_at || !stream.errors().empty(); },
                      seconds(120)));
  stream.Crashing();
  cell_->KillFileServer(1);
  stream.Join();
  EXPECT_TRUE(stream.errors().empty()) << stream.errors().front();

  auto start = Clock::now();
  ASSERT_TRUE(cell_->StartFileServer(1).ok());
  client = NewClient();
  std::vector<uint64_t> waiting;
  for (uint64_t id = kFirst; id < kFirst + kVolumes; ++id) {
    if (id != kWritten) waiting.push_back(id);
  }
  bool all = WaitFor(
      [&] {
        std::erase_if(waiting, [&](uint64_t id) { return FetchStatus(*client, RootFid(id)).ok(); });
        return waiting.empty();
      },
      seconds(30));
  auto online_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  ASSERT_TRUE(all) << waiting.size() << " idle volumes still not served\n" << cell_->LogTail(1);
  std::printf("199 idle volumes served %lld ms after the restart\n",
              static_cast<long long>(online_ms));
  EXPECT_LT(online_ms, 10000);

  ASSERT_TRUE(WaitOnline(*client, kWritten, seconds(60))) << cell_->LogTail(1);
  std::printf("the written volume was online %lld ms after the restart\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(Clock::now() - start).count()));
  for (size_t f = 0; f < fids->size(); ++f) {
    auto data = FetchAll(*client, (*fids)[f]);
    ASSERT_TRUE(data.ok()) << data.status().ToString();
    EXPECT_EQ(stream.Check(f, *data), "");
  }
  EXPECT_TRUE(LogHas(cell_->fs_log(1), "salvaged volume " + std::to_string(kWritten) + ":"));
  EXPECT_TRUE(LogHas(cell_->fs_log(1), "199 volumes online, 1 to salvage")) << cell_->LogTail(1);
}

// A volume whose salvage fails stays offline (kVolumeOffline, not "permission denied"), the
// log says what to do, and --salvage exits 1; the other volumes serve.
TEST_F(FileServerCrashTest, VolumeWhoseSalvageFailsStaysOffline) {
  constexpr uint64_t kGood = 6001;
  constexpr uint64_t kBroken = 6002;
  VolumeOptions options;
  options.env = DefaultEnv();
  options.partition = cell_->fs_partition(1);
  for (uint64_t id : {kGood, kBroken}) {
    auto vol = Volume::Create(options, id, "v." + std::to_string(id), VolumeType::kReadWrite, 0);
    ASSERT_TRUE(vol.ok()) << vol.status().ToString();
    ASSERT_TRUE(FileService::SaveCell(*DefaultEnv(), (*vol)->dir(), kCell).ok());
  }
  // Damage: a database SQLite cannot read, in a volume that was being changed.
  std::string dir = VolumeDir(options, kBroken);
  {
    std::fstream db(dir + "/meta.sqlite", std::ios::in | std::ios::out | std::ios::binary);
    db << std::string(4096, 'x');
    std::ofstream marker(dir + "/" + kDirtyMarkerName);
  }
  ASSERT_TRUE(VolumeNeedsSalvage(options, kBroken));

  ASSERT_TRUE(cell_->StartFileServerAndWait(1).ok()) << cell_->LogTail(1);
  ASSERT_TRUE(WaitFor([&] {
    return LogHas(cell_->fs_log(1), "salvage of " + cell_->fs_partition(1) + ": 1/1 volumes");
  })) << cell_->LogTail(1);
  auto client = NewClient();
  EXPECT_TRUE(FetchStatus(*client, RootFid(kGood)).ok());
  auto broken = FetchStatus(*client, RootFid(kBroken));
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), Code::kVolumeOffline) << broken.status().ToString();
  EXPECT_TRUE(LogHas(cell_->fs_log(1), "--salvage --volume " + std::to_string(kBroken)))
      << cell_->LogTail(1);

  cell_->StopFileServer(1);
  auto r = Salvage();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("volume " + std::to_string(kBroken) + ": FAILED"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("volume " + std::to_string(kGood) + ": clean"), std::string::npos)
      << r.output;
  std::printf("--salvage with a damaged volume:\n%s", r.output.c_str());
}

}  // namespace
}  // namespace heka::fs
