// What the `heka` commands that talk to the database (pts, cell, vos VLDB, db) share: where
// the DB servers are (-dbservers, else $HEKA_DBSERVERS), a DbClient on its own runtime,
// switch checks, PTDB name-or-id lookups and -format json output. Single-threaded, like the
// CLI itself.
#pragma once

#include <google/protobuf/message.h>

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cmd/cli.h"
#include "dbserver/client/db_client.h"
#include "rpc/runtime.h"

namespace heka::cli {

inline constexpr const char* kDbServersEnv = "HEKA_DBSERVERS";

// A DbClient and the runtime it runs on (the client is destroyed first).
struct DbSession {
  std::unique_ptr<rpc::Runtime> runtime;
  std::unique_ptr<db::DbClient> client;
  std::vector<db::DbMember> members;  // as given by -dbservers / $HEKA_DBSERVERS

  // Runs one client coroutine to completion.
  template <typename T>
  T Run(rpc::awaitable<T> task) {
    return client->Sync(std::move(task));
  }
};

// `switches` plus -dbservers (and -format when `with_format`).
std::vector<Switch> DbSwitches(std::vector<Switch> switches, bool with_format = false);

// The exit code for a failed Parse(): 0 after -help, else a usage error.
int ParseFailed(const std::string& command, const Status& status);

// kInvalidArgument "-name is required" for the first of `names` missing from `sw`.
Status Require(const Switches& sw, std::initializer_list<const char*> names);

// The value of switch `name` as an integer, or kInvalidArgument naming the switch.
Result<int64_t> IntSwitch(const Switches& sw, const std::string& name);

// True for -format json, false for no -format or -format table; else kInvalidArgument.
Result<bool> JsonFormat(const Switches& sw);

// Every value given to switch `name` (repeatable switches such as -realm), in order, with
// comma-separated values split. REQUIRES: Parse() accepted argv with these switches.
std::vector<std::string> Repeated(int argc, char** argv, const std::vector<Switch>& switches,
                                  const std::string& name);

// Builds the session from -dbservers, else $HEKA_DBSERVERS; kInvalidArgument
// "no database servers: ..." when neither is given.
Result<std::unique_ptr<DbSession>> OpenDb(const Switches& sw);

// The common start of every DB command: parse `switches` (plus -dbservers, and -format when
// `with_format`), check the `required` ones, connect. When `exit` is set the command stops
// and returns it (help printed, or a usage error already reported).
struct DbCommand {
  std::string name;  // "pts examine", for the error line
  Switches sw;
  std::unique_ptr<DbSession> db;
  bool json = false;  // -format json
  std::optional<int> exit;

  int Fail(const Status& status) const { return cli::Fail(name, status); }
  std::string Get(const std::string& key) const {
    auto it = sw.find(key);
    return it == sw.end() ? std::string() : it->second;
  }
  bool Has(const std::string& key) const { return sw.count(key) > 0; }
};
DbCommand StartDbCommand(std::string name, int argc, char** argv, std::vector<Switch> switches,
                         std::initializer_list<const char*> required, bool with_format = false);

// A GetEntry request for `name_or_id` (a number is an id).
db::GetEntryRequest EntryRequest(const std::string& cell, const std::string& name_or_id,
                                 bool leader_only = false);

// The PTDB entry named by `name_or_id` (a number is an id). `leader_only` for
// read-your-writes before a write.
Result<db::Entry> LookupEntry(DbSession& db, const std::string& cell, const std::string& name_or_id,
                              bool leader_only = false);

// `m` as JSON: proto field names, every field; `pretty` adds whitespace.
Result<std::string> MessageJson(const google::protobuf::Message& m, bool pretty);

// Prints `message` as JSON (proto field names, every field, 64-bit integers as strings as
// the proto3 JSON mapping has it) followed by a newline.
Status PrintJson(const google::protobuf::Message& message);

// A JSON string literal, quoted and escaped.
std::string JsonQuote(const std::string& s);

// "2024-05-01 12:00:00 UTC" for a Unix time in nanoseconds; "-" for 0.
std::string FormatTime(int64_t unix_ns);

}  // namespace heka::cli
