#include "cmd/db_common.h"

#include <getopt.h>
#include <google/protobuf/util/json_util.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace heka::cli {

std::vector<Switch> DbSwitches(std::vector<Switch> switches, bool with_format) {
  if (with_format) switches.push_back({"format", true, "output format: table (default) or json"});
  switches.push_back(
      {"dbservers", true, "database servers, host:port[=principal],... (default $HEKA_DBSERVERS)"});
  return switches;
}

int ParseFailed(const std::string& command, const Status& status) {
  return status.code() == Code::kCancelled ? kExitOk : UsageError(command, status);
}

Status Require(const Switches& sw, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    auto it = sw.find(n);
    if (it == sw.end() || it->second.empty()) {
      return Error(Code::kInvalidArgument, std::string("-") + n + " is required");
    }
  }
  return Status::Ok();
}

Result<int64_t> IntSwitch(const Switches& sw, const std::string& name) {
  const std::string& text = sw.at(name);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) {
    return Error(Code::kInvalidArgument, "-" + name + " wants a number, not '" + text + "'");
  }
  return static_cast<int64_t>(v);
}

Result<bool> JsonFormat(const Switches& sw) {
  auto it = sw.find("format");
  if (it == sw.end() || it->second == "table") return false;
  if (it->second == "json") return true;
  return Error(Code::kInvalidArgument, "-format must be table or json, not '" + it->second + "'");
}

std::vector<std::string> Repeated(int argc, char** argv, const std::vector<Switch>& switches,
                                  const std::string& name) {
  std::vector<option> opts;
  for (const Switch& s : switches) {
    opts.push_back({s.name, s.takes_value ? required_argument : no_argument, nullptr, 0});
  }
  opts.push_back({nullptr, 0, nullptr, 0});
  std::vector<std::string> values;
  optind = 1;
  opterr = 0;
  int index = -1;
  while (getopt_long_only(argc, argv, "", opts.data(), &index) != -1) {
    if (index < 0 || switches[index].name != name || optarg == nullptr) continue;
    std::string v = optarg;
    for (size_t pos = 0; pos <= v.size();) {
      size_t comma = v.find(',', pos);
      if (comma == std::string::npos) comma = v.size();
      if (comma > pos) values.push_back(v.substr(pos, comma - pos));
      pos = comma + 1;
    }
    index = -1;
  }
  return values;
}

Result<std::unique_ptr<DbSession>> OpenDb(const Switches& sw) {
  std::string list;
  if (auto it = sw.find("dbservers"); it != sw.end()) {
    list = it->second;
  } else if (const char* env = std::getenv(kDbServersEnv)) {
    list = env;
  }
  if (list.find_first_not_of(", \t") == std::string::npos) {
    return Error(Code::kInvalidArgument,
                 "no database servers: give -dbservers or set HEKA_DBSERVERS");
  }
  Result<std::vector<db::DbMember>> members = db::ParseMembers(list);
  if (!members.ok()) return members.status();
  auto session = std::make_unique<DbSession>();
  session->runtime = std::make_unique<rpc::Runtime>(rpc::RuntimeOptions{1, 1});
  session->members = *members;
  db::DbClientOptions options;
  options.members = *members;
  options.prefer_leader_reads = true;  // an admin script sees its own writes
  session->client = std::make_unique<db::DbClient>(*session->runtime, std::move(options));
  return session;
}

DbCommand StartDbCommand(std::string name, int argc, char** argv, std::vector<Switch> switches,
                         std::initializer_list<const char*> required, bool with_format) {
  DbCommand c;
  c.name = std::move(name);
  auto sw = Parse(c.name, argc, argv, DbSwitches(std::move(switches), with_format));
  if (!sw.ok()) {
    c.exit = ParseFailed(c.name, sw.status());
    return c;
  }
  c.sw = std::move(*sw);
  Status s = Require(c.sw, required);
  Result<bool> json = JsonFormat(c.sw);
  if (s.ok() && !json.ok()) s = json.status();
  if (!s.ok()) {
    c.exit = UsageError(c.name, s);
    return c;
  }
  c.json = *json;
  auto db = OpenDb(c.sw);
  if (!db.ok()) {
    c.exit = UsageError(c.name, db.status());
    return c;
  }
  c.db = std::move(*db);
  return c;
}

db::GetEntryRequest EntryRequest(const std::string& cell, const std::string& name_or_id,
                                 bool leader_only) {
  db::GetEntryRequest req;
  req.set_cell(cell);
  req.mutable_options()->set_leader_only(leader_only);
  char* end = nullptr;
  long long id = std::strtoll(name_or_id.c_str(), &end, 10);
  if (!name_or_id.empty() && *end == '\0') {
    req.set_id(id);
  } else {
    req.set_name(name_or_id);
  }
  return req;
}

Result<db::Entry> LookupEntry(DbSession& db, const std::string& cell, const std::string& name_or_id,
                              bool leader_only) {
  Result<db::GetEntryReply> r =
      db.Run(db.client->GetEntry(EntryRequest(cell, name_or_id, leader_only)));
  if (!r.ok()) return r.status();
  return r->entry();
}

Result<std::string> MessageJson(const google::protobuf::Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  std::string out;
  auto s = google::protobuf::util::MessageToJsonString(m, &out, o);
  if (!s.ok()) return Error(Code::kInternal, "cannot print JSON: " + s.ToString());
  return out;
}

Status PrintJson(const google::protobuf::Message& message) {
  auto json = MessageJson(message, /*pretty=*/true);
  if (!json.ok()) return json.status();
  std::string out = std::move(*json);
  if (out.empty() || out.back() != '\n') out.push_back('\n');
  std::fputs(out.c_str(), stdout);
  return Status::Ok();
}

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "\"";
}

std::string FormatTime(int64_t unix_ns) {
  if (unix_ns == 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_ns / 1000000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

}  // namespace heka::cli
