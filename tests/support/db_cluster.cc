#include "tests/support/db_cluster.h"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/process.h"
#include "tests/support/wait.h"

extern char** environ;

namespace heka::testing {

DbCluster::DbCluster(TestRealm& realm, DbClusterOptions options)
    : realm_(realm), options_(std::move(options)) {}

DbCluster::~DbCluster() {
  for (auto& [id, m] : members_) {
    if (m.pid > 0) Kill(id);
  }
}

Result<std::unique_ptr<DbCluster>> DbCluster::Create(TestRealm& realm, DbClusterOptions options) {
  std::unique_ptr<DbCluster> c(new DbCluster(realm, std::move(options)));
  static int cluster_no = 0;
  c->root_ = realm.dir() + "/dbcluster" + std::to_string(++cluster_no);
  std::filesystem::create_directories(c->root_);
  for (int i = 1; i <= c->options_.members; ++i) {
    Member m;
    m.id = i;
    m.port = FreePort();
    m.principal = realm.Principal("heka/db" + std::to_string(i) + "-" + std::to_string(cluster_no));
    auto kt = realm.AddService(m.principal);
    if (!kt.ok()) return kt.status();
    m.keytab = *kt;
    m.dir = c->root_ + "/db" + std::to_string(i);
    std::filesystem::create_directories(m.dir);
    c->members_[i] = m;
  }
  for (auto& [id, m] : c->members_) {
    if (Status s = c->WriteConfig(m); !s.ok()) return s;
  }
  return c;
}

Result<int> DbCluster::AddMemberConfig(const std::string& keytab_override) {
  Member m;
  m.id = static_cast<int>(members_.size()) + 1;
  m.port = FreePort();
  m.principal = realm_.Principal("heka/db" + std::to_string(m.id) + "-" +
                                 root_.substr(root_.rfind("dbcluster") + 9));
  auto kt = realm_.AddService(m.principal);
  if (!kt.ok()) return kt.status();
  m.keytab = keytab_override.empty() ? *kt : keytab_override;
  m.dir = root_ + "/db" + std::to_string(m.id);
  m.bootstrap = false;
  std::filesystem::create_directories(m.dir);
  members_[m.id] = m;
  for (auto& [id, other] : members_) {
    if (Status s = WriteConfig(other); !s.ok()) return s;
  }
  return m.id;
}

Status DbCluster::WriteConfig(const Member& m) {
  std::ofstream f(config_path(m.id));
  f << "provider_admins = [";
  for (size_t i = 0; i < options_.provider_admins.size(); ++i) {
    f << (i ? ", " : "") << "\"" << options_.provider_admins[i] << "\"";
  }
  f << "]\n\n[member]\nid = " << m.id << "\naddress = \"127.0.0.1:" << m.port << "\"\n"
    << "principal = \"" << m.principal << "\"\nkeytab = \"" << m.keytab << "\"\n"
    << "data_dir = \"" << m.dir << "\"\nbackup_chunk_bytes = " << options_.backup_chunk_bytes
    << "\n\n[raft]\nsnapshot_threshold = "
    << options_.snapshot_threshold << "\n";
  for (const auto& [id, p] : members_) {
    if (!p.bootstrap && id != m.id && m.bootstrap) continue;  // initial members know initial peers
    f << "\n[[peers]]\nid = " << id << "\naddress = \"127.0.0.1:" << p.port << "\"\n"
      << "principal = \"" << p.principal << "\"\n";
  }
  return f ? Status::Ok() : Error(Code::kIoError, "cannot write " + config_path(m.id));
}

Status DbCluster::Start(int id) {
  Member& m = members_.at(id);
  if (m.pid > 0) return Status::Ok();
  std::vector<std::string> argv = {BinDir() + "/heka-dbserver", "--config", config_path(id),
                                   "--log", log_path(id)};
  if (m.bootstrap) argv.push_back("--bootstrap");
  pid_t pid = Spawn(argv);
  if (pid < 0) return Error(Code::kInternal, "fork failed");
  m.pid = pid;
  return Status::Ok();
}

Status DbCluster::StartAll() {
  for (auto& [id, m] : members_) {
    if (!m.bootstrap) continue;
    if (Status s = Start(id); !s.ok()) return s;
  }
  return Status::Ok();
}

void DbCluster::Kill(int id) {
  Member& m = members_.at(id);
  KillChild(m.pid);
  m.pid = -1;
}

void DbCluster::Stop(int id) {
  Member& m = members_.at(id);
  StopChild(m.pid);
  m.pid = -1;
}

std::string DbCluster::LogTail(int id, size_t lines) const {
  std::ifstream in(log_path(id));
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out = "--- " + log_path(id) + "\n";
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    out += all[i] + "\n";
  }
  return out;
}

bool DbCluster::running(int id) const { return members_.at(id).pid > 0; }
pid_t DbCluster::pid(int id) const { return members_.at(id).pid; }
std::string DbCluster::address(int id) const {
  return "127.0.0.1:" + std::to_string(members_.at(id).port);
}
std::string DbCluster::principal(int id) const { return members_.at(id).principal; }
std::string DbCluster::data_dir(int id) const { return members_.at(id).dir; }
std::string DbCluster::config_path(int id) const { return members_.at(id).dir + ".toml"; }
std::string DbCluster::log_path(int id) const { return members_.at(id).dir + ".log"; }

std::string DbCluster::dbservers() const {
  std::string out;
  for (const auto& [id, m] : members_) {
    if (!m.bootstrap) continue;
    out += (out.empty() ? "" : ",") + address(id) + "=" + m.principal;
  }
  return out;
}

Result<db::StatusReply> DbCluster::StatusOf(int id, const std::string& ccache) {
  rpc::ClientOptions o;
  o.address = address(id);
  o.server_principal = principal(id);
  o.credentials.ccache = "FILE:" + ccache;
  o.connect_timeout = std::chrono::milliseconds(500);
  auto client = rpc::Client::Create(runtime_, o);
  auto r = runtime_.BlockOn(client->Call<db::StatusReply>("heka.db.Db.Status", db::StatusRequest(),
                                                          std::chrono::milliseconds(1000)));
  client->Close();
  return r;
}

Result<int> DbCluster::WaitForLeader(const std::string& ccache, std::chrono::milliseconds timeout) {
  int leader = 0;
  WaitFor(
      [&] {
        for (const auto& [id, m] : members_) {
          if (m.pid <= 0) continue;
          auto s = StatusOf(id, ccache);
          if (s.ok() && s->self().role() == "leader") {
            leader = id;
            return true;
          }
        }
        return false;
      },
      timeout);
  if (leader != 0) return leader;
  return Error(Code::kDeadlineExceeded, "no leader elected in time");
}

}  // namespace heka::testing
