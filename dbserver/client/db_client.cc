#include "dbserver/client/db_client.h"

#include <openssl/rand.h>

#include <random>

#include "rpc/endpoint.h"

namespace heka::db {
namespace {

namespace asio = rpc::asio;
using rpc::awaitable;
using Clock = std::chrono::steady_clock;

constexpr const char* kWrite = "heka.db.Db.Write";

// Failures that say nothing about the database, only that this member could not be asked.
bool Unreachable(Code code) {
  switch (code) {
    case Code::kUnavailable:
    case Code::kDeadlineExceeded:
    case Code::kConnectionClosed:
    case Code::kProtocolError:
    case Code::kUnknownServer:  // a member whose principal is wrong: the others may be fine
    case Code::kBadServerKey:
      return true;
    default:
      return false;
  }
}

DbClientOptions OptionsFor(std::vector<DbMember> members, krb::ClientCredentials credentials) {
  DbClientOptions o;
  o.members = std::move(members);
  o.credentials = std::move(credentials);
  return o;
}

std::string Seconds(milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

}  // namespace

// ---- Free helpers. ---------------------------------------------------------------------------

Result<std::vector<DbMember>> ParseMembers(std::string_view list) {
  std::vector<DbMember> members;
  size_t pos = 0;
  while (pos < list.size()) {
    size_t end = list.find_first_of(", \t\n", pos);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = list.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    DbMember m;
    size_t eq = item.find('=');
    m.address = std::string(item.substr(0, eq));
    if (eq != std::string_view::npos) m.principal = std::string(item.substr(eq + 1));
    Result<rpc::Endpoint> ep = rpc::Endpoint::Parse(m.address);
    if (!ep.ok()) {
      return Error(Code::kInvalidArgument,
                   "bad database server '" + std::string(item) + "': " + ep.status().message());
    }
    if (eq != std::string_view::npos && m.principal.empty()) {
      return Error(Code::kInvalidArgument, "empty principal in '" + std::string(item) + "'");
    }
    members.push_back(std::move(m));
  }
  if (members.empty()) return Error(Code::kInvalidArgument, "no database servers given");
  return members;
}

std::optional<std::string> ParseLeaderHint(std::string_view message) {
  constexpr std::string_view kKey = "leader=";
  size_t at = message.find(kKey);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = message.substr(at + kKey.size());
  size_t end = rest.find_first_of(" \t\n,;()");
  std::string_view address = rest.substr(0, end);
  if (address.empty()) return std::nullopt;
  return std::string(address);
}

std::string NewRequestId() {
  uint8_t b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    std::random_device rd;  // OpenSSL's generator failing is near impossible; stay unique anyway
    for (uint8_t& c : b) c = static_cast<uint8_t>(rd());
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t c : b) {
    s.push_back(kHex[c >> 4]);
    s.push_back(kHex[c & 15]);
  }
  return s;
}

// ---- Routing. --------------------------------------------------------------------------------

// What one routed call has seen so far.
struct DbClient::Attempt {
  Clock::time_point deadline;
  size_t tries = 0;
  bool round_unreachable = true;  // every member tried in this round was unreachable
  bool leaderless = false;        // some member answered kNotLeader or kNoQuorum
  Status last;
  std::vector<std::pair<std::string, Status>> errors;  // the latest error of each member

  void Record(const std::string& address, const Status& s) {
    last = s;
    if (!Unreachable(s.code())) round_unreachable = false;
    if (s.code() == Code::kNotLeader || s.code() == Code::kNoQuorum) leaderless = true;
    for (auto& [a, e] : errors) {
      if (a == address) {
        e = s;
        return;
      }
    }
    errors.emplace_back(address, s);
  }

  std::string Summary() const {
    std::string out;
    for (const auto& [a, e] : errors) {
      if (!out.empty()) out += "; ";
      out += a + ": " + e.ToString();
    }
    return out;
  }
};

DbClient::Next DbClient::Classify(const Status& status) {
  if (status.code() == Code::kNotLeader) return Next::kFollowHint;
  if (status.code() == Code::kNoQuorum || status.code() == Code::kStale) return Next::kTryNext;
  return Unreachable(status.code()) ? Next::kTryNext : Next::kDone;
}

Status DbClient::GiveUp(const Attempt& attempt, Route route) const {
  if (route == Route::kLeader && attempt.leaderless) {
    return Error(Code::kNoQuorum, "no DB leader within " + Seconds(options_.retry_deadline) +
                                      ": fewer than a majority of database servers are up (" +
                                      attempt.Summary() + ")");
  }
  if (attempt.round_unreachable) {
    return Error(Code::kUnavailable, "no database server reachable (" + attempt.Summary() + ")");
  }
  return Status(attempt.last.code(), "no database server could answer (" + attempt.Summary() + ")");
}

template <typename Rep, typename Req>
awaitable<Result<Rep>> DbClient::Routed(std::string method, Req request, Route route,
                                        milliseconds retry_deadline,
                                        milliseconds timeout) {
  if (PeerCount() == 0) co_return Error(Code::kInvalidArgument, "no database servers configured");
  Attempt attempt;
  attempt.deadline = Clock::now() + retry_deadline;
  size_t index = StartIndex(route);
  for (;;) {
    std::pair<std::shared_ptr<rpc::Client>, std::string> peer = PeerAt(index);
    Result<Rep> r = co_await peer.first->Call<Rep>(method, request, timeout);
    if (r.ok()) {
      Remember(route, index);
      co_return r;
    }
    Next next = Classify(r.status());
    if (next == Next::kDone) co_return r.status();
    attempt.Record(peer.second, r.status());
    // The deadline ends a call only after every member was tried once: one attempt at an
    // unreachable member may take the whole call_timeout, longer than retry_deadline.
    if (Clock::now() >= attempt.deadline && attempt.tries + 1 >= PeerCount()) {
      co_return GiveUp(attempt, route);
    }
    if (++attempt.tries % PeerCount() == 0) {                           // a whole round of failures
      if (attempt.round_unreachable) co_return GiveUp(attempt, route);  // nobody to wait for
      attempt.round_unreachable = true;
      co_await Pause(options_.retry_pause);
    }
    std::optional<std::string> hint;
    if (next == Next::kFollowHint) hint = ParseLeaderHint(r.status().message());
    index = hint ? FollowHint(*hint) : (index + 1) % PeerCount();
  }
}

template <typename Rep, typename Req>
awaitable<Result<Rep>> DbClient::Read(std::string method, Req request) {
  if (options_.prefer_leader_reads && !request.options().leader_only()) {
    Req at_leader = request;
    at_leader.mutable_options()->set_leader_only(true);
    Result<Rep> r = co_await Routed<Rep>(method, std::move(at_leader), Route::kLeader,
                                         milliseconds(1000), options_.call_timeout);
    Code c = r.status().code();
    if (r.ok() || (c != Code::kNoQuorum && c != Code::kUnavailable && c != Code::kNotLeader)) {
      co_return r;
    }
  }
  if (request.options().leader_only()) {
    co_return co_await Routed<Rep>(std::move(method), std::move(request), Route::kLeader,
                                   options_.retry_deadline, options_.call_timeout);
  }
  Result<Rep> r = co_await Routed<Rep>(method, request, Route::kAny, options_.retry_deadline,
                                       options_.call_timeout);
  if (r.ok() || r.status().code() != Code::kNotFound) co_return r;
  // A follower applies a write a moment after the leader acknowledged it: its "not found" may
  // be about a user, cell or volume made just now (pts createuser, then fs setacl; vos create,
  // then fs mkmount). Only the leader's is sure; without a leader, the follower's stands.
  request.mutable_options()->set_leader_only(true);
  Result<Rep> sure = co_await Routed<Rep>(std::move(method), std::move(request), Route::kLeader,
                                          milliseconds(1000), options_.call_timeout);
  const Code c = sure.status().code();
  if (!sure.ok() && (c == Code::kNoQuorum || c == Code::kUnavailable || c == Code::kNotLeader)) {
    co_return r;
  }
  co_return sure;
}

awaitable<void> DbClient::Pause(milliseconds how_long) {
  asio::steady_timer timer(co_await asio::this_coro::executor, how_long);
  co_await timer.async_wait(asio::use_awaitable);
}

// ---- The member table. -----------------------------------------------------------------------

DbClient::DbClient(rpc::Runtime& runtime, DbClientOptions options)
    : runtime_(runtime), options_(std::move(options)) {
  std::lock_guard lock(mu_);
  for (const DbMember& m : options_.members) peers_.push_back({m, NewClientLocked(m)});
}

DbClient::DbClient(rpc::Runtime& runtime, std::vector<DbMember> members,
                   krb::ClientCredentials credentials)
    : DbClient(runtime, OptionsFor(std::move(members), std::move(credentials))) {}

DbClient::~DbClient() {
  std::lock_guard lock(mu_);
  for (Peer& p : peers_) p.client->Close();
}

std::shared_ptr<rpc::Client> DbClient::NewClientLocked(const DbMember& member) {
  rpc::ClientOptions o;
  o.address = member.address;
  o.server_principal = member.principal;
  o.credentials = options_.credentials;
  o.connect_timeout = options_.connect_timeout;
  // A member that accepts and then says nothing costs no more than one call.
  o.handshake_timeout = std::min(o.handshake_timeout, options_.call_timeout);
  o.test_context = options_.test_context;
  return rpc::Client::Create(runtime_, std::move(o));
}

size_t DbClient::IndexOfLocked(const std::string& address) {
  for (size_t i = 0; i < peers_.size(); ++i) {
    if (peers_[i].member.address == address) return i;
  }
  Result<rpc::Endpoint> want = rpc::Endpoint::Parse(address);
  for (size_t i = 0; want.ok() && i < peers_.size(); ++i) {
    Result<rpc::Endpoint> have = rpc::Endpoint::Parse(peers_[i].member.address);
    if (have.ok() && *have == *want) return i;
  }
  DbMember m{address, ""};
  peers_.push_back({m, NewClientLocked(m)});
  return peers_.size() - 1;
}

std::pair<std::shared_ptr<rpc::Client>, std::string> DbClient::PeerAt(size_t index) const {
  std::lock_guard lock(mu_);
  const Peer& p = peers_.at(index);
  return {p.client, p.member.address};
}

size_t DbClient::StartIndex(Route route) const {
  std::lock_guard lock(mu_);
  return route == Route::kAny ? reader_ : leader_;
}

void DbClient::Remember(Route route, size_t index) {
  std::lock_guard lock(mu_);
  if (route == Route::kLeader) {
    leader_ = index;
    leader_known_ = true;
  } else if (route == Route::kAny) {
    reader_ = index;
  }
}

size_t DbClient::FollowHint(const std::string& address) {
  std::lock_guard lock(mu_);
  leader_ = IndexOfLocked(address);
  return leader_;
}

size_t DbClient::PeerCount() const {
  std::lock_guard lock(mu_);
  return peers_.size();
}

std::vector<DbMember> DbClient::members() const {
  std::lock_guard lock(mu_);
  std::vector<DbMember> out;
  for (const Peer& p : peers_) out.push_back(p.member);
  return out;
}

std::string DbClient::leader() const {
  std::lock_guard lock(mu_);
  return leader_known_ ? peers_[leader_].member.address : "";
}

// ---- The Db methods. -------------------------------------------------------------------------

awaitable<Result<CommandResult>> DbClient::Write(Command command) {
  if (command.request_id().empty()) command.set_request_id(NewRequestId());
  WriteRequest request;
  *request.mutable_command() = std::move(command);
  Result<WriteReply> r = co_await Routed<WriteReply>(kWrite, std::move(request), Route::kLeader, options_.retry_deadline,
                                                     options_.call_timeout);
  if (!r.ok()) co_return r.status();
  if (r->result().code() != 0) {
    co_return Status(CodeFromWire(r->result().code()), r->result().message());
  }
  co_return r->result();
}

awaitable<Result<GetCellReply>> DbClient::GetCell(GetCellRequest request) {
  co_return co_await Read<GetCellReply>("heka.db.Db.GetCell", std::move(request));
}

awaitable<Result<ListCellsReply>> DbClient::ListCells(ListCellsRequest request) {
  co_return co_await Read<ListCellsReply>("heka.db.Db.ListCells", std::move(request));
}

awaitable<Result<GetEntryReply>> DbClient::GetEntry(GetEntryRequest request) {
  co_return co_await Read<GetEntryReply>("heka.db.Db.GetEntry", std::move(request));
}

awaitable<Result<ListEntriesReply>> DbClient::ListEntries(ListEntriesRequest request) {
  co_return co_await Read<ListEntriesReply>("heka.db.Db.ListEntries", std::move(request));
}

awaitable<Result<MembershipReply>> DbClient::Membership(MembershipRequest request) {
  co_return co_await Read<MembershipReply>("heka.db.Db.Membership", std::move(request));
}

awaitable<Result<ListOwnedReply>> DbClient::ListOwned(ListOwnedRequest request) {
  co_return co_await Read<ListOwnedReply>("heka.db.Db.ListOwned", std::move(request));
}

awaitable<Result<GetCpsReply>> DbClient::GetCps(GetCpsRequest request) {
  co_return co_await Routed<GetCpsReply>("heka.db.Db.GetCps", std::move(request), Route::kAny, options_.retry_deadline,
                                         options_.call_timeout);
}

awaitable<Result<GetVolumeReply>> DbClient::GetVolume(GetVolumeRequest request) {
  co_return co_await Read<GetVolumeReply>("heka.db.Db.GetVolume", std::move(request));
}

awaitable<Result<ListVolumesReply>> DbClient::ListVolumes(ListVolumesRequest request) {
  co_return co_await Read<ListVolumesReply>("heka.db.Db.ListVolumes", std::move(request));
}

awaitable<Result<ListServersReply>> DbClient::ListServers(ListServersRequest request) {
  co_return co_await Read<ListServersReply>("heka.db.Db.ListServers", std::move(request));
}

awaitable<Result<StatusReply>> DbClient::StatusOf(std::string address) {
  std::shared_ptr<rpc::Client> client;
  {
    std::lock_guard lock(mu_);
    client = peers_[IndexOfLocked(address)].client;
  }
  co_return co_await client->Call<StatusReply>("heka.db.Db.Status", StatusRequest(),
                                               options_.call_timeout);
}

awaitable<Result<ChangeMemberReply>> DbClient::ChangeMember(ChangeMemberRequest request) {
  co_return co_await Routed<ChangeMemberReply>("heka.db.Db.ChangeMember", std::move(request),
                                               Route::kLeader, options_.retry_deadline,
                                               options_.call_timeout);
}

// Fetches the image chunk by chunk from the leader that took it, and joins the chunks.
awaitable<Result<BackupReply>> DbClient::Backup() {
  Result<BackupReply> first = co_await Routed<BackupReply>(
      "heka.db.Db.Backup", BackupRequest(), Route::kLeader, options_.retry_deadline,
      options_.backup_timeout);
  if (!first.ok()) co_return first;
  BackupReply whole = std::move(*first);
  std::string* image = whole.mutable_image();
  while (image->size() < whole.total()) {
    BackupRequest next;
    next.set_token(whole.token());
    next.set_offset(image->size());
    Result<BackupReply> chunk = co_await Routed<BackupReply>(
        "heka.db.Db.Backup", std::move(next), Route::kLeader, options_.retry_deadline,
        options_.backup_timeout);
    if (!chunk.ok()) co_return chunk.status();
    if (chunk->image().empty()) co_return Error(Code::kProtocolError, "empty backup chunk");
    image->append(chunk->image());
  }
  co_return whole;
}

}  // namespace heka::db
