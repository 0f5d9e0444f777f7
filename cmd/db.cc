// heka db status | backup | addmember | removemember — running the replicated database
// itself (provider administrators; status is open to anyone who can authenticate).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>

#include "cmd/commands.h"
#include "cmd/db_common.h"

namespace heka::cli {
namespace {

// One row of `db status`: a member's own view, or why it did not answer.
struct Row {
  std::string address;  // as given in -dbservers
  Result<db::StatusReply> reply;
};

std::vector<Row> QueryAll(DbSession& db) {
  std::vector<std::future<Result<db::StatusReply>>> futures;
  for (const db::DbMember& m : db.members) {
    futures.push_back(rpc::asio::co_spawn(db.runtime->io(), db.client->StatusOf(m.address),
                                          rpc::asio::use_future));
  }
  std::vector<Row> rows;
  for (size_t i = 0; i < futures.size(); ++i)
    rows.push_back({db.members[i].address, futures[i].get()});
  return rows;
}

// The id of a member that did not answer, from the member lists of those that did.
uint64_t IdOf(const std::vector<Row>& rows, const std::string& address) {
  for (const Row& r : rows) {
    if (!r.reply.ok()) continue;
    for (const db::MemberStatus& m : r.reply->members()) {
      if (m.address() == address) return m.id();
    }
  }
  return 0;
}

void PrintJsonRows(const std::vector<Row>& rows) {
  std::string out = "{\"members\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    db::MemberStatus s;
    if (r.reply.ok()) {
      s = r.reply->self();
    } else {
      s.set_id(IdOf(rows, r.address));
      s.set_role("unreachable");
    }
    if (i > 0) out += ", ";
    out += "{\"id\":" + std::to_string(s.id()) + ",\"address\":" + JsonQuote(r.address) +
           ",\"role\":" + JsonQuote(s.role()) + ",\"term\":" + std::to_string(s.term()) +
           ",\"applied\":" + std::to_string(s.applied()) + ",\"pid\":" + std::to_string(s.pid()) +
           "}";
  }
  out += "]}\n";
  std::fputs(out.c_str(), stdout);
}

void PrintTable(const std::vector<Row>& rows) {
  std::printf("%-4s %-28s %-12s %8s %10s %8s %8s\n", "ID", "ADDRESS", "ROLE", "TERM", "APPLIED",
              "LAG", "PID");
  for (const Row& r : rows) {
    if (!r.reply.ok()) {
      std::printf("%-4llu %-28s %-12s %8s %10s %8s %8s\n",
                  static_cast<unsigned long long>(IdOf(rows, r.address)), r.address.c_str(),
                  "unreachable", "-", "-", "-", "-");
      continue;
    }
    const db::MemberStatus& s = r.reply->self();
    std::printf("%-4llu %-28s %-12s %8llu %10llu %8llu %8lld\n",
                static_cast<unsigned long long>(s.id()), r.address.c_str(), s.role().c_str(),
                static_cast<unsigned long long>(s.term()),
                static_cast<unsigned long long>(s.applied()),
                static_cast<unsigned long long>(s.lag()), static_cast<long long>(s.pid()));
  }
}

// Writes `data` to `path` (mode 0600) through a temp file, fsynced and renamed into place.
Status WriteFileAtomically(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Error(Code::kIoError, "cannot create " + tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    done += static_cast<size_t>(n);
  }
  int err = done < data.size() ? errno : 0;
  if (err == 0 && fsync(fd) != 0) err = errno;
  close(fd);
  if (err == 0 && rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    unlink(tmp.c_str());
    return Error(err == ENOSPC ? Code::kNoSpace : Code::kIoError,
                 "cannot write " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

Result<db::ChangeMemberReply> Change(DbCommand& c, db::ChangeMemberRequest::Op op, uint64_t id) {
  db::ChangeMemberRequest req;
  req.set_id(id);
  req.set_address(c.Get("address"));
  req.set_principal(c.Get("principal"));
  req.set_op(op);
  return c.db->Run(c.db->client->ChangeMember(req));
}

Result<uint64_t> MemberId(const DbCommand& c) {
  auto id = IntSwitch(c.sw, "id");
  if (!id.ok()) return id.status();
  if (*id <= 0) return Error(Code::kInvalidArgument, "-id must be a positive member id");
  return static_cast<uint64_t>(*id);
}

}  // namespace

// heka db status [-format json]: every member of -dbservers, each asked about itself.
int DbStatus(int argc, char** argv) {
  DbCommand c = StartDbCommand("db status", argc, argv, {}, {}, true);
  if (c.exit) return *c.exit;
  std::vector<Row> rows = QueryAll(*c.db);
  if (c.json) {
    PrintJsonRows(rows);
  } else {
    PrintTable(rows);
  }
  bool any = false;
  for (const Row& r : rows) {
    if (r.reply.ok()) {
      any = true;
    } else if (!c.json) {
      std::fprintf(stderr, "heka db status: %s: %s\n", r.address.c_str(),
                   r.reply.status().ToString().c_str());
    }
  }
  return any ? kExitOk : c.Fail(Error(Code::kUnavailable, "no database server answered"));
}

// heka db backup -file F: a consistent image of the database, written with mode 0600.
int DbBackup(int argc, char** argv) {
  DbCommand c = StartDbCommand("db backup", argc, argv,
                               {{"file", true, "where to write the image (required)"}}, {"file"});
  if (c.exit) return *c.exit;
  auto r = c.db->Run(c.db->client->Backup());
  if (!r.ok()) return c.Fail(r.status());
  Status s = WriteFileAtomically(c.Get("file"), r->image());
  if (!s.ok()) return c.Fail(s);
  std::printf("Backup at applied index %llu written to %s (%zu bytes)\n",
              static_cast<unsigned long long>(r->applied()), c.Get("file").c_str(),
              r->image().size());
  return kExitOk;
}

// heka db addmember -id N -address A -principal P: adds a spare, then promotes it to voter.
int DbAddMember(int argc, char** argv) {
  DbCommand c = StartDbCommand("db addmember", argc, argv,
                               {{"id", true, "new member id, never used before (required)"},
                                {"address", true, "its host:port (required)"},
                                {"principal", true, "its heka/<host>@REALM principal (required)"}},
                               {"id", "address", "principal"});
  if (c.exit) return *c.exit;
  auto id = MemberId(c);
  if (!id.ok()) return UsageError(c.name, id.status());
  auto added = Change(c, db::ChangeMemberRequest::ADD, *id);
  if (!added.ok()) return c.Fail(added.status());
  auto promoted = Change(c, db::ChangeMemberRequest::PROMOTE, *id);
  if (!promoted.ok()) {
    return c.Fail(promoted.status().WithContext("member " + std::to_string(*id) +
                                                " was added as a spare but not promoted"));
  }
  std::printf("Member %llu (%s) added as a voter\n", static_cast<unsigned long long>(*id),
              c.Get("address").c_str());
  return kExitOk;
}

// heka db removemember -id N
int DbRemoveMember(int argc, char** argv) {
  DbCommand c =
      StartDbCommand("db removemember", argc, argv, {{"id", true, "member id (required)"}}, {"id"});
  if (c.exit) return *c.exit;
  auto id = MemberId(c);
  if (!id.ok()) return UsageError(c.name, id.status());
  auto removed = Change(c, db::ChangeMemberRequest::REMOVE, *id);
  if (!removed.ok()) return c.Fail(removed.status());
  std::printf("Member %llu removed\n", static_cast<unsigned long long>(*id));
  return kExitOk;
}

}  // namespace heka::cli
