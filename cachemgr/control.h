// ControlHandler: carries out one `heka fs` request from the control socket (ControlServer)
// as the caller: path lookups, ACLs, volume status, mount points go through HekaFs with the
// caller's credentials; ACL names are mapped to PTDB ids (and back) with a DB connection
// made with the caller's credentials (the machine is no user of the cells it serves).
// Cell keys (KEY_UNLOCK, KEY_STATUS) go to and come from the KeyStore.
// Thread-safe: requests from several connections run concurrently.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cachemgr/creds.h"
#include "cachemgr/heka_fs.h"
#include "cachemgr/key_store.h"
#include "dbserver/client/db_client.h"
#include "proto/cachemgr.pb.h"
#include "rpc/runtime.h"

namespace heka::cm {

struct ControlHandlerOptions {
  HekaFs* fs = nullptr;
  CredentialResolver* resolver = nullptr;
  rpc::Runtime* runtime = nullptr;
  std::vector<db::DbMember> db_members;  // the DB servers, for PTDB names as the caller
  db::DbClient* machine_db = nullptr;    // PTDB names for anonymous callers
  KeyStore* keys = nullptr;              // cell keys; nullptr: KEY_* are unimplemented
  // A private mount's user, who may unlock keys besides root; -1 = a shared mount.
  int64_t private_uid = -1;
};

class ControlHandler {
 public:
  explicit ControlHandler(ControlHandlerOptions options) : options_(std::move(options)) {}

  ::heka::cachemgr::ControlReply Handle(const Caller& c, const ::heka::cachemgr::ControlRequest& req);

 private:
  using Request = ::heka::cachemgr::ControlRequest;
  using Reply = ::heka::cachemgr::ControlReply;
  struct Names;

  Status ListAcl(const Caller& c, const Request& req, Reply* rep);
  Status SetAcl(const Caller& c, const Request& req, Reply* rep);
  Status Examine(const Caller& c, const Request& req, Reply* rep);
  Status WhereIs(const Caller& c, const Request& req, Reply* rep);
  Status MakeMount(const Caller& c, const Request& req, Reply* rep);
  Status ListMount(const Caller& c, const Request& req, Reply* rep);
  Status RemoveMount(const Caller& c, const Request& req, Reply* rep);
  Status SetQuota(const Caller& c, const Request& req, Reply* rep);
  Status FlushVolume(const Caller& c, const Request& req, Reply* rep);
  Status CheckServers(const Request& req, Reply* rep);
  Status SetCacheSize(const Caller& c, const Request& req, Reply* rep);
  Status CellStatus(const Request& req, Reply* rep);
  Status KeyUnlock(const Caller& c, const Request& req, Reply* rep);
  Status KeyStatus(Reply* rep);
  void ListCells(Reply* rep);
  void FillCell(const HekaFs::KnownCell& cell, ::heka::cachemgr::CellInfo* out) const;

  ControlHandlerOptions options_;
  std::mutex mu_;
  // mu_: the servers the last probes found down, by address (`checkservers -fast`).
  std::map<std::string, ::heka::cachemgr::ServerCheck> down_;
};

}  // namespace heka::cm
