#include "tests/support/fs_cell.h"

#include <filesystem>
#include <fstream>

#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace heka::testing {

Result<std::unique_ptr<FsCell>> FsCell::Create(TestRealm& realm, FsCellOptions options,
                                               const std::string& admin_ccache) {
  std::unique_ptr<FsCell> c(new FsCell(realm, std::move(options)));
  DbClusterOptions dbo;
  dbo.members = c->options_.db_members;
  dbo.provider_admins = c->options_.provider_admins;
  auto db = DbCluster::Create(realm, dbo);
  if (!db.ok()) return db.status();
  c->db_ = std::move(*db);
  if (Status s = c->db_->StartAll(); !s.ok()) return s;
  auto leader = c->db_->WaitForLeader(admin_ccache, std::chrono::seconds(20));
  if (!leader.ok()) return leader.status();
  static int cell_no = 0;
  ++cell_no;
  std::string root = realm.dir() + "/fscell" + std::to_string(cell_no);
  for (int n = 1; n <= c->options_.fileservers; ++n) {
    Server s;
    s.port = FreePort();
    s.principal = realm.Principal("heka/fs" + std::to_string(n) + "-" + std::to_string(cell_no));
    auto kt = realm.AddService(s.principal);
    if (!kt.ok()) return kt.status();
    s.keytab = *kt;
    s.dir = root + "/fs" + std::to_string(n);
    std::filesystem::create_directories(s.dir + "/vicepa");
    std::filesystem::create_directories(s.dir + "/state");
    c->servers_[n] = s;
    if (Status st = c->WriteConfig(n); !st.ok()) return st;
  }
  return c;
}

FsCell::~FsCell() {
  for (auto& [n, s] : servers_) KillChild(s.pid);
}

std::string FsCell::fs_address(int n) const {
  return "127.0.0.1:" + std::to_string(servers_.at(n).port);
}

Status FsCell::WriteConfig(int n) {
  const Server& s = servers_.at(n);
  std::ofstream f(fs_config(n));
  f << "provider_admins = [";
  for (size_t i = 0; i < options_.provider_admins.size(); ++i) {
    f << (i ? ", " : "") << "\"" << options_.provider_admins[i] << "\"";
  }
  f << "]\n\n[server]\nadvertise = [\"" << fs_address(n) << "\"]\n"
    << "principal = \"" << s.principal << "\"\nkeytab = \"" << s.keytab << "\"\n"
    << "state_dir = \"" << fs_state_dir(n) << "\"\npartitions = [\"" << fs_partition(n) << "\"";
  for (const auto& p : options_.extra_partitions) f << ", \"" << p << "\"";
  f << "]\ndbservers = \"" << db_->dbservers() << "\"\n"
    << "break_bound_ms = " << options_.break_bound_ms << "\ncps_ttl_ms = " << options_.cps_ttl_ms
    << "\nlock_lease_ms = " << options_.lock_lease_ms << "\nlock_grace_ms = "
    << options_.lock_grace_ms << "\n";
  return f ? Status::Ok() : Error(Code::kIoError, "cannot write " + fs_config(n));
}

Status FsCell::StartFileServer(int n) {
  Server& s = servers_.at(n);
  if (s.pid > 0) return Status::Ok();
  s.pid = Spawn({BinDir() + "/heka-fileserver", "--config", fs_config(n), "--log", fs_log(n)});
  return s.pid > 0 ? Status::Ok() : Error(Code::kInternal, "fork failed");
}

Status FsCell::StartFileServerAndWait(int n) {
  if (Status s = StartFileServer(n); !s.ok()) return s;
  // The log is appended to across restarts: only this process's line counts.
  const std::string mark = "[" + std::to_string(servers_.at(n).pid) + "] registered in the VLDB";
  auto registered = [&] {
    std::ifstream in(fs_log(n));
    for (std::string line; std::getline(in, line);) {
      if (line.find(mark) != std::string::npos) return true;
    }
    return false;
  };
  if (!WaitFor(registered, std::chrono::seconds(30))) {
    return Error(Code::kDeadlineExceeded, "file server " + std::to_string(n) +
                                              " did not register:\n" + LogTail(n));
  }
  return Status::Ok();
}

void FsCell::KillFileServer(int n) {
  KillChild(servers_.at(n).pid);
  servers_.at(n).pid = -1;
}

void FsCell::StopFileServer(int n) {
  StopChild(servers_.at(n).pid);
  servers_.at(n).pid = -1;
}

std::string FsCell::fs_uuid(int n) const {
  std::ifstream in(fs_state_dir(n) + "/server.uuid");
  std::string uuid;
  std::getline(in, uuid);
  return uuid;
}

std::string FsCell::LogTail(int n, size_t lines) const {
  std::ifstream in(fs_log(n));
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out = "--- " + fs_log(n) + "\n";
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    out += all[i] + "\n";
  }
  return out;
}

}  // namespace heka::testing
