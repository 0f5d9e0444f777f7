#include "dbserver/raft/node.h"

#include <spdlog/spdlog.h>

#include <future>
#include <optional>

namespace heka::db {
namespace {

std::string RoleName(int state) {
  switch (state) {
    case RAFT_LEADER: return "leader";
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    default: return "unavailable";
  }
}

struct ChangeRequest {
  raft_change req{};
  std::function<void(Status)> done;
};

Status RaftError(int rv, const char* what, raft* r) {
  std::string msg = std::string(what) + ": " + raft_strerror(rv);
  if (r && raft_errmsg(r) && *raft_errmsg(r)) msg += std::string(" (") + raft_errmsg(r) + ")";
  switch (rv) {
    case RAFT_NOTLEADER: return Error(Code::kNotLeader, msg);
    case RAFT_LEADERSHIPLOST: return Error(Code::kNoQuorum, msg);
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS: return Error(Code::kAlreadyExists, msg);
    case RAFT_NOTFOUND: return Error(Code::kNotFound, msg);
    case RAFT_BADID:
    case RAFT_BADROLE:
    case RAFT_INVALID: return Error(Code::kInvalidArgument, msg);
    case RAFT_CANTCHANGE:
      return Error(Code::kLocked, msg + " — another membership change is still in progress");
    default: return Error(Code::kUnavailable, msg);
  }
}

}  // namespace

struct RaftNode::PendingWrite {
  struct raft_apply req{};
  RaftNode* node = nullptr;
  WriteDone done;
};

RaftNode::RaftNode(RaftNodeOptions options, StateMachine& state, RaftTransport& transport,
                   UvLoop& loop)
    : options_(std::move(options)),
      state_(state),
      transport_(transport),
      loop_(loop),
      fsm_(state, &raft_) {
  last_leader_seen_ = std::chrono::steady_clock::now();
}

RaftNode::~RaftNode() { Stop(); }

Status RaftNode::Start() {
  std::promise<Status> started;
  auto f = started.get_future();
  loop_.Post([this, &started] { StartOnLoop(&started); });
  Status s = f.get();
  started_ = s.ok();
  return s;
}

void RaftNode::StartOnLoop(std::promise<Status>* started) {
  int rv = raft_uv_init(&io_, loop_.loop(), options_.raft_dir.c_str(), transport_.raw());
  if (rv != 0) {
    started->set_value(Error(Code::kIoError, std::string("raft_uv_init in ") + options_.raft_dir +
                                                 ": " + io_.errmsg));
    return;
  }
  raft_uv_set_auto_recovery(&io_, false);  // trap 2: never silently drop log entries
  raft_uv_set_connect_retry_delay(&io_, 100);
  rv = raft_init(&raft_, &io_, fsm_.fsm(), options_.id, options_.address.c_str());
  if (rv != 0) {
    started->set_value(RaftError(rv, "raft_init", &raft_));
    return;
  }
  raft_set_pre_vote(&raft_, true);
  raft_set_election_timeout(&raft_, options_.election_timeout_ms);
  raft_set_heartbeat_timeout(&raft_, options_.heartbeat_timeout_ms);
  raft_set_snapshot_threshold(&raft_, options_.snapshot_threshold);
  raft_set_snapshot_trailing(&raft_, options_.snapshot_trailing);
  if (!options_.bootstrap.empty()) {
    raft_configuration conf;
    raft_configuration_init(&conf);
    for (const auto& p : options_.bootstrap) {
      raft_configuration_add(&conf, p.id, p.address.c_str(), RAFT_VOTER);
    }
    rv = raft_bootstrap(&raft_, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
      started->set_value(RaftError(rv, "raft_bootstrap", &raft_));
      return;
    }
    if (rv == 0) spdlog::info("raft: bootstrapped a new cluster of {} members", options_.bootstrap.size());
  }
  rv = raft_start(&raft_);
  if (rv != 0) {
    started->set_value(RaftError(rv, "raft_start", &raft_));
    return;
  }
  uv_timer_init(loop_.loop(), &tick_);
  tick_.data = this;
  uv_timer_start(&tick_, &RaftNode::OnTick, 0, 100);
  spdlog::info("raft: member {} started at {} (applied {})", options_.id, options_.address,
               state_.last_applied());
  started->set_value(Status::Ok());
}

void RaftNode::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  loop_.Stop([this](std::function<void()> done) {
    uv_timer_stop(&tick_);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    struct Closing {
      RaftNode* self;
      std::function<void()> done;
    };
    raft_.data = new Closing{this, std::move(done)};
    raft_close(&raft_, [](raft* r) {
      auto* closing = static_cast<Closing*>(r->data);
      RaftNode* self = closing->self;
      raft_uv_close(&self->io_);
      for (auto& [index, p] : self->pending_by_index_) {
        p->done(Error(Code::kUnavailable, "the database server is shutting down"));
      }
      self->pending_by_index_.clear();
      self->fsm_.ForgetResults();
      closing->done();
      delete closing;
    });
  });
}

// --- Writes and membership (any thread -> loop thread). --------------------------------------

void RaftNode::Propose(const Command& command, WriteDone done) {
  loop_.Post([this, command, done = std::move(done)]() mutable {
    if (stopped_ || raft_state(&raft_) != RAFT_LEADER) {
      raft_id id = 0;
      const char* address = nullptr;
      raft_leader(&raft_, &id, &address);
      if (id != 0) {
        done(Error(Code::kNotLeader, std::string("leader=") + address));
      } else {
        done(Error(Code::kNoQuorum, "no leader: fewer than a majority of DB members are reachable"));
      }
      return;
    }
    raft_buffer buf = EncodeEntry(command);
    auto* p = new PendingWrite();
    p->req.data = p;
    p->node = this;
    p->done = std::move(done);
    int rv = raft_apply(&raft_, &p->req, &buf, 1, &RaftNode::OnApplied);
    if (rv != 0) {
      raft_free(buf.base);
      p->done(RaftError(rv, "raft_apply", &raft_));
      delete p;
      return;
    }
    pending_by_index_[p->req.index] = p;
    fsm_.ExpectResult(p->req.index);
  });
}

void RaftNode::OnApplied(struct raft_apply* req, int status, void*) {
  auto* p = static_cast<PendingWrite*>(req->data);
  p->node->pending_by_index_.erase(req->index);
  std::optional<CommandResult> result = p->node->fsm_.TakeResult(req->index);
  if (status == 0 && result) {
    p->done(std::move(*result));
  } else if (status == RAFT_LEADERSHIPLOST) {
    p->done(Error(Code::kNoQuorum,
                  "leadership was lost before the write committed (outcome unknown; a retry "
                  "with the same request id is safe)"));
  } else if (status == RAFT_NOTLEADER) {
    p->done(Error(Code::kNotLeader, "this member stopped being the leader"));
  } else {
    p->done(Error(Code::kUnavailable, std::string("write failed: ") + raft_strerror(status)));
  }
  delete p;
}

void RaftNode::ChangeMember(ChangeMemberRequest::Op op, uint64_t id, const std::string& address,
                            std::function<void(Status)> done) {
  loop_.Post([this, op, id, address, done = std::move(done)]() mutable {
    auto* c = new ChangeRequest();
    c->req.data = c;
    c->done = std::move(done);
    auto cb = [](raft_change* req, int status) {
      auto* c = static_cast<ChangeRequest*>(req->data);
      // Not kUnavailable: the leader answered; the change itself failed (typically the new
      // member cannot be reached or authenticated), and retrying elsewhere will not help.
      c->done(status == 0 ? Status::Ok()
                          : Error(Code::kInternal,
                                  std::string("membership change failed: ") + raft_strerror(status) +
                                      " (is the member running, reachable, and using the key "
                                      "the member list names?)"));
      delete c;
    };
    int rv = 0;
    switch (op) {
      case ChangeMemberRequest::ADD: rv = raft_add(&raft_, &c->req, id, address.c_str(), cb); break;
      case ChangeMemberRequest::PROMOTE: rv = raft_assign(&raft_, &c->req, id, RAFT_VOTER, cb); break;
      case ChangeMemberRequest::REMOVE: rv = raft_remove(&raft_, &c->req, id, cb); break;
      default: rv = RAFT_INVALID;
    }
    if (rv != 0) {
      c->done(RaftError(rv, "membership change", &raft_));
      delete c;
    }
  });
}

// --- Status (published every tick). ----------------------------------------------------------

void RaftNode::OnTick(uv_timer_t* timer) { static_cast<RaftNode*>(timer->data)->UpdateStatus(); }

void RaftNode::UpdateStatus() {
  NodeStatus s;
  int state = raft_state(&raft_);
  s.role = RoleName(state);
  s.term = raft_.current_term;
  s.commit_index = raft_.commit_index;
  s.applied = state_.last_applied();
  raft_id leader = 0;
  const char* address = nullptr;
  raft_leader(&raft_, &leader, &address);
  s.leader_id = leader;
  s.leader_address = address ? address : "";
  for (unsigned i = 0; i < raft_.configuration.n; ++i) {
    const raft_server& srv = raft_.configuration.servers[i];
    MemberStatus m;
    m.set_id(srv.id);
    m.set_address(srv.address);
    m.set_role(srv.role == RAFT_VOTER ? "voter" : srv.role == RAFT_STANDBY ? "standby" : "spare");
    s.members.push_back(m);
  }
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(status_mu_);
  if (leader != 0) last_leader_seen_ = now;
  s.stale = now - last_leader_seen_ > options_.stale_after;
  status_ = std::move(s);
}

NodeStatus RaftNode::status() const {
  std::lock_guard lock(status_mu_);
  NodeStatus s = status_;
  s.stale = std::chrono::steady_clock::now() - last_leader_seen_ > options_.stale_after;
  return s;
}

bool RaftNode::stale() const {
  std::lock_guard lock(status_mu_);
  return std::chrono::steady_clock::now() - last_leader_seen_ > options_.stale_after;
}

}  // namespace heka::db
