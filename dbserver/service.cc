#include "dbserver/service.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>

namespace heka::db {
namespace {

using rpc::awaitable;
using rpc::CallContext;
namespace asio = rpc::asio;

std::string RandomId() {
  uint8_t b[16];
  RAND_bytes(b, sizeof b);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (uint8_t c : b) {
    s.push_back(hex[c >> 4]);
    s.push_back(hex[c & 15]);
  }
  return s;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string OpName(const Command& c) {
  const auto* field = c.GetDescriptor()->FindFieldByNumber(c.op_case());
  return field ? field->name() : "none";
}

template <typename T>
void FillHeader(T* reply, const RaftNode& node) {
  NodeStatus s = node.status();
  reply->mutable_header()->set_stale(s.stale);
  reply->mutable_header()->set_applied(s.applied);
  reply->mutable_header()->set_leader_hint(s.leader_address);
}

}  // namespace

DbService::DbService(const DbServerConfig& config, StateMachine& state, RaftNode& node,
                     rpc::Runtime& runtime)
    : config_(config), state_(state), node_(node), runtime_(runtime),
      admins_(config.provider_admins.begin(), config.provider_admins.end()) {}

Caller DbService::CallerOf(const krb::Identity& peer) const {
  return Caller{peer.principal(), admins_.count(peer.principal()) > 0};
}

Status DbService::NotLeader() const {
  NodeStatus s = node_.status();
  if (s.leader_address.empty()) {
    return Error(Code::kNoQuorum, "no leader: fewer than a majority of DB members are reachable");
  }
  return Error(Code::kNotLeader, "leader=" + s.leader_address);
}

awaitable<Result<CommandResult>> DbService::Propose(Command cmd) {
  Result<CommandResult> r = co_await asio::async_initiate<const asio::use_awaitable_t<>,
                                                          void(Result<CommandResult>)>(
      [](auto handler, RaftNode* node, Command cmd) {
        auto ex = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        node->Propose(cmd, [ex, shared](Result<CommandResult> r) {
          asio::post(ex, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
        });
      },
      asio::use_awaitable, &node_, std::move(cmd));
  co_return r;
}

// A SetMember command proposed by the server itself on a provider administrator's behalf.
static Command MemberCommand(const std::string& caller, uint64_t id) {
  Command cmd;
  cmd.set_version(kCommandVersion);
  cmd.set_request_id(RandomId());
  cmd.set_time_ns(NowNs());
  cmd.set_caller(caller);
  cmd.set_caller_is_provider_admin(true);
  cmd.mutable_set_member()->set_id(id);
  return cmd;
}

std::vector<Command> DbService::SeedCommands() const {
  std::vector<Command> out;
  for (const PeerConfig& p : config_.peers) {
    Command cmd = MemberCommand(config_.principal, p.id);
    cmd.set_request_id("seed-member-" + std::to_string(p.id));
    cmd.mutable_set_member()->set_principal(p.principal);
    cmd.mutable_set_member()->set_address(p.address);
    out.push_back(std::move(cmd));
  }
  return out;
}

void DbService::MaybeSeedMembers() {
  if (node_.status().role != "leader" || !state_.Members().empty()) return;
  for (const Command& cmd : SeedCommands()) node_.Propose(cmd, [](Result<CommandResult>) {});
}

awaitable<Status> DbService::SeedMembersIfEmpty() {
  if (!state_.Members().empty()) co_return Status::Ok();
  // Upserts with fixed request ids: racing the periodic seeding is harmless.
  for (Command cmd : SeedCommands()) {
    auto r = co_await Propose(std::move(cmd));
    if (!r.ok()) co_return r.status();
  }
  co_return Status::Ok();
}

void DbService::Register(rpc::HandlerRegistry& registry) {
  registry.Register<WriteRequest, WriteReply>(
      "heka.db.Db.Write", [this](CallContext& ctx, const WriteRequest& req) -> awaitable<Result<WriteReply>> {
        Command cmd = req.command();
        if (cmd.has_set_member()) {
          co_return Error(Code::kInvalidArgument, "members change through ChangeMember");
        }
        Caller caller = CallerOf(ctx.peer);
        // The command version is this server's to set: a client-chosen newer version would
        // stop every member that applies it.
        if (cmd.version() != 0 && cmd.version() != kCommandVersion) {
          co_return Error(Code::kVersionMismatch,
                          "this server writes command version " + std::to_string(kCommandVersion));
        }
        cmd.set_version(kCommandVersion);
        if (cmd.request_id().empty()) cmd.set_request_id(RandomId());
        cmd.set_time_ns(NowNs());
        cmd.set_caller(caller.principal);
        cmd.set_caller_is_provider_admin(caller.provider_admin);
        std::string op = OpName(cmd);
        Result<CommandResult> r = co_await Propose(cmd);
        if (!r.ok()) co_return r.status();
        spdlog::info("audit: {} {} -> {}", caller.principal, op,
                     r->code() == 0 ? std::string("ok")
                                    : Status(CodeFromWire(r->code()), r->message()).ToString());
        WriteReply reply;
        *reply.mutable_result() = *r;
        co_return reply;
      });

  // Reads run on the blocking pool: they take the state machine's lock and touch SQLite.
  auto read = [this](auto fn) {
    return rpc::RunBlocking(runtime_.blocking_pool(), std::move(fn));
  };
  auto leader_check = [this](const ReadOptions& o) -> Status {
    if (o.leader_only() && node_.status().role != "leader") return NotLeader();
    return Status::Ok();
  };

  registry.Register<GetCellRequest, GetCellReply>(
      "heka.db.Db.GetCell", [=, this](CallContext& ctx, const GetCellRequest& req) -> awaitable<Result<GetCellReply>> {
        if (Status s = leader_check(req.options()); !s.ok()) co_return s;
        Caller caller = CallerOf(ctx.peer);
        auto cell_job = [this, caller, req] { return state_.GetCell(caller, req.name()); };
        auto cell = co_await read(cell_job);
        if (!cell.ok()) co_return cell.status();
        GetCellReply reply;
        *reply.mutable_cell() = *cell;
        FillHeader(&reply, node_);
        co_return reply;
      });
  registry.Register<ListCellsRequest, ListCellsReply>(
      "heka.db.Db.ListCells", [=, this](CallContext& ctx, const ListCellsRequest& req) -> awaitable<Result<ListCellsReply>> {
        if (Status s = leader_check(req.options()); !s.ok()) co_return s;
        Caller caller = CallerOf(ctx.peer);
        auto cells_job = [this, caller] { return state_.ListCells(caller); };
        auto cells = co_await read(cells_job);
        if (!cells.ok()) co_return cells.status();
        ListCellsReply reply;
        for (auto& c : *cells) *reply.add_cells() = c;
        FillHeader(&reply, node_);
        co_return reply;
      });
  registry.Register<GetEntryRequest, GetEntryReply>(
      "heka.db.Db.GetEntry", [=, this](CallContext& ctx, const GetEntryRequest& req) -> awaitable<Result<GetEntryReply>> {
        if (Status s = leader_check(req.options()); !s.ok()) co_return s;
        Caller caller = CallerOf(ctx.peer);
        auto entry_job = [this, caller, req] {
          return state_.GetEntry(caller, req.cell(), req.name(), req.id());
        };
        auto entry = co_await read(entry_job);
        if (!entry.ok()) co_return entry.status();
        GetEntryReply reply;
        *reply.mutable_entry() = *entry;
        auto groups_job = [this, caller, req, name = entry->name()] {
          return state_.Membership(caller, req.cell(), name);
        };
        auto groups = co_await read(groups_job);
        if (groups.ok()) {
          for (auto& g : *groups) reply.add_groups(g);
        }
        FillHeader(&reply, node_);
        co_return reply;
      });
  registry.Register<ListEntriesRequest, ListEntriesReply>(
      "heka.db.Db.ListEntries", [=, this](CallContext& ctx, const ListEntriesRequest& req) -> awaitable<Result<ListEntriesReply>> {
        if (Status s = leader_check(req.options()); !s.ok()) co_return s;
        Caller caller = CallerOf(ctx.peer);
        auto entries_job = [this, caller, req] {
          return state_.ListEntries(caller, req.cell(), req.users(), req.groups());
        };
        auto entries = co_await read(entries_job);
        if (!entries.ok()) co_return entries.status();
        ListEntriesReply reply;
        for (auto& e : *entries) *reply.add_entries() = e;
        FillHeader(&reply, node_);
        co_return reply;
      });
  registry.Register<MembershipRequest, MembershipReply>(
      "heka.db.Db.Membership", [=, this](CallContext& ctx, const MembershipRequest& req) -> awaitable<Result<MembershipReply>> {
        if (Status s = leader_check(req.options()); !s.ok()) co_return s;
        Caller caller = CallerOf(ctx.peer);
        auto names_job = [this, caller, req] {
          return state_.Membership(caller, req.cell(), req.name());
        };
        auto names = co_await read(names_job);
        if (!names.ok()) co_return names.status();
        MembershipReply reply;
        for (auto& n : *names) reply.add_names(n);
        FillHeader(&reply, node_);
        co_return reply;
      });
  registry.Register<ListOwnedRequest, ListOwnedReply>(
      "heka.db.Db.ListOwned", [=, this](CallContext& ctx, const ListOwnedRequest& req) -> awaitable<Result<ListOwnedReply>> {
        if (Status s = leader_check(req.options()); !s.ok()) co_return s;
        Caller caller = CallerOf(ctx.peer);
        auto entries_job = [this, caller, req] {
          return state_.ListOwned(caller, req.cell(), req.owner());
        };
        auto entries = co_await read(entries_job);
        if (!entries.ok()) co_return entries.status();
        ListOwnedReply reply;
        for (auto& e : *entries) *reply.add_entries() = e;
        FillHeader(&reply, node_);
        co_return reply;
      });
  registry.Register<GetCpsRequest, GetCpsReply>(
      "heka.db.Db.GetCps", [=, this](CallContext& ctx, const GetCpsRequest& req) -> awaitable<Result<GetCpsReply>> {
        // A member cut off from its leader must not keep granting a revoked membership.
        if (node_.stale()) {
          co_return Error(Code::kStale, "this DB member has lost its leader; ask another member");
        }
        Caller caller = CallerOf(ctx.peer);
        auto cps_job = [this, caller, req] {
          return state_.GetCps(caller, req.cell(), req.principal());
        };
        auto cps = co_await read(cps_job);
        if (!cps.ok()) co_return cps.status();
        GetCpsReply reply;
        reply.set_user_id(cps->user_id);
        for (int64_t g : cps->group_ids) reply.add_group_ids(g);
        FillHeader(&reply, node_);
        co_return reply;
      });
  registry.Register<GetVolumeRequest, GetVolumeReply>(
      "heka.db.Db.GetVolume", [=, this](CallContext& ctx, const GetVolumeRequest& req) -> awaitable<Result<GetVolumeReply>> {
        if (Status s = leader_check(req.options()); !s.ok()) co_return s;
        Caller caller = CallerOf(ctx.peer);
        auto vol_job = [this, caller, req] {
          return state_.GetVolume(caller, req.cell(), req.name(), req.id());
        };
        auto vol = co_await read(vol_job);
        if (!vol.ok()) co_return vol.status();
        GetVolumeReply reply;
        *reply.mutable_volume() = *vol;
        FillHeader(&reply, node_);
        co_return reply;
      });
  registry.Register<ListVolumesRequest, ListVolumesReply>(
      "heka.db.Db.ListVolumes", [=, this](CallContext& ctx, const ListVolumesRequest& req) -> awaitable<Result<ListVolumesReply>> {
        if (Status s = leader_check(req.options()); !s.ok()) co_return s;
        Caller caller = CallerOf(ctx.peer);
        auto vols_job = [this, caller, req] {
          return state_.ListVolumes(caller, req.cell(), req.server_uuid());
        };
        auto vols = co_await read(vols_job);
        if (!vols.ok()) co_return vols.status();
        ListVolumesReply reply;
        for (auto& v : *vols) *reply.add_volumes() = v;
        FillHeader(&reply, node_);
        co_return reply;
      });
  registry.Register<ListServersRequest, ListServersReply>(
      "heka.db.Db.ListServers", [=, this](CallContext& ctx, const ListServersRequest& req) -> awaitable<Result<ListServersReply>> {
        if (Status s = leader_check(req.options()); !s.ok()) co_return s;
        Caller caller = CallerOf(ctx.peer);
        auto servers_job = [this, caller] { return state_.ListServers(caller); };
        auto servers = co_await read(servers_job);
        if (!servers.ok()) co_return servers.status();
        ListServersReply reply;
        for (auto& s : *servers) *reply.add_servers() = s;
        FillHeader(&reply, node_);
        co_return reply;
      });
  registry.Register<StatusRequest, StatusReply>(
      "heka.db.Db.Status", [this](CallContext&, const StatusRequest&) -> awaitable<Result<StatusReply>> {
        NodeStatus s = node_.status();
        StatusReply reply;
        MemberStatus* self = reply.mutable_self();
        self->set_id(config_.id);
        self->set_address(config_.address);
        self->set_role(s.role);
        self->set_term(s.term);
        uint64_t applied = state_.last_applied();  // live, not the last tick's
        self->set_applied(applied);
        self->set_pid(getpid());
        self->set_principal(config_.principal);
        self->set_lag(s.commit_index > applied ? s.commit_index - applied : 0);
        reply.set_commit_index(s.commit_index);
        reply.set_leader_address(s.leader_address);
        reply.set_leader_id(s.leader_id);
        for (auto& m : s.members) *reply.add_members() = m;
        co_return reply;
      });
  registry.Register<ChangeMemberRequest, ChangeMemberReply>(
      "heka.db.Db.ChangeMember", [this](CallContext& ctx, const ChangeMemberRequest& req) -> awaitable<Result<ChangeMemberReply>> {
        Caller caller = CallerOf(ctx.peer);
        if (!caller.provider_admin) {
          co_return Error(Code::kPermissionDenied, caller.principal + " is not a provider administrator");
        }
        if (node_.status().role != "leader") co_return NotLeader();
        if (req.op() == ChangeMemberRequest::ADD) {
          // A typo must not rewrite the identity of a member that is already there.
          for (const MemberStatus& m : node_.status().members) {
            if (m.id() == req.id()) {
              co_return Error(Code::kAlreadyExists,
                              "member " + std::to_string(req.id()) + " is already in the cluster");
            }
          }
          // The configured members first: once the list exists it alone admits peers.
          if (Status s = co_await SeedMembersIfEmpty(); !s.ok()) co_return s;
          // The replicated member list first, so the new member's principal is admitted.
          Command cmd = MemberCommand(caller.principal, req.id());
          cmd.mutable_set_member()->set_principal(req.principal());
          cmd.mutable_set_member()->set_address(req.address());
          auto r = co_await Propose(cmd);
          if (!r.ok()) co_return r.status();
          if (r->code() != 0) co_return Status(CodeFromWire(r->code()), r->message());
        }
        Status s = co_await asio::async_initiate<const asio::use_awaitable_t<>, void(Status)>(
            [](auto handler, RaftNode* node, ChangeMemberRequest req) {
              auto ex = asio::get_associated_executor(handler);
              auto shared = std::make_shared<decltype(handler)>(std::move(handler));
              node->ChangeMember(req.op(), req.id(), req.address(), [ex, shared](Status s) {
                asio::post(ex, [shared, s]() mutable { (*shared)(s); });
              });
            },
            asio::use_awaitable, &node_, req);
        if (s.ok() && req.op() == ChangeMemberRequest::REMOVE) {
          // Raft no longer talks to it; now the replicated member list forgets it too, so it
          // is no longer admitted as a peer.
          Command cmd = MemberCommand(caller.principal, req.id());
          cmd.mutable_set_member()->set_remove(true);
          auto r = co_await Propose(cmd);
          if (!r.ok()) s = r.status();
          else if (r->code() != 0) s = Status(CodeFromWire(r->code()), r->message());
        }
        spdlog::info("audit: {} member {} {} -> {}", caller.principal, req.id(),
                     ChangeMemberRequest::Op_Name(req.op()), s.ToString());
        if (!s.ok()) co_return s;
        co_return ChangeMemberReply();
      });
  registry.Register<BackupRequest, BackupReply>(
      "heka.db.Db.Backup", [this](CallContext& ctx, const BackupRequest& req) -> awaitable<Result<BackupReply>> {
        Caller caller = CallerOf(ctx.peer);
        if (!caller.provider_admin) {
          co_return Error(Code::kPermissionDenied, caller.principal + " is not a provider administrator");
        }
        std::shared_ptr<const PendingBackup> backup;
        if (req.token().empty()) {
          // Only the leader has applied every acknowledged write.
          if (node_.status().role != "leader") co_return NotLeader();
          auto image = co_await rpc::RunBlocking(runtime_.blocking_pool(), [this] {
            return std::make_pair(state_.last_applied(), state_.Snapshot());
          });
          if (!image.second.ok()) co_return image.second.status();
          auto fresh = std::make_shared<PendingBackup>();
          fresh->token = RandomId();
          fresh->applied = image.first;
          fresh->image = std::move(*image.second);
          backup = fresh;
          std::lock_guard lock(backup_mu_);
          backup_ = backup;
          spdlog::info("audit: {} backup at index {} ({} bytes) -> ok", caller.principal,
                       image.first, backup->image.size());
        } else {
          std::lock_guard lock(backup_mu_);
          if (!backup_ || backup_->token != req.token()) {
            co_return Error(Code::kNotFound, "that backup is no longer held here; start again");
          }
          backup = backup_;
        }
        if (req.offset() > backup->image.size()) {
          co_return Error(Code::kInvalidArgument, "offset beyond the end of the backup");
        }
        size_t n = std::min<size_t>(config_.backup_chunk_bytes, backup->image.size() - req.offset());
        BackupReply reply;
        reply.set_token(backup->token);
        reply.set_applied(backup->applied);
        reply.set_total(backup->image.size());
        reply.set_image(backup->image.data() + req.offset(), n);
        co_return reply;
      });
}

}  // namespace heka::db
