// heka-cachemgr: the Heka client. Mounts HekaFs with the libfuse3 low-level API.
//   heka-cachemgr --config FILE [--log FILE]   (stays in the foreground)
// Stops (and unmounts) on SIGTERM/SIGINT or `fusermount3 -u <mountpoint>`.
#define FUSE_USE_VERSION 35
#include <fuse3/fuse_lowlevel.h>
#include <getopt.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <openssl/rand.h>
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>

#include "cachemgr/control.h"
#include "cachemgr/control_server.h"
#include "cachemgr/disk_chunk_cache.h"
#include "cachemgr/errno_map.h"
#include "cachemgr/heka_fs.h"
#include "cachemgr/key_store.h"
#include "util/log.h"

namespace {

using namespace heka;
using namespace heka::cm;

HekaFs* g_fs = nullptr;
// A private mount serves this uid only (-1: a shared mount).
int64_t g_private_uid = -1;
// flock owners live apart from fcntl owners.
constexpr uint64_t kFlockOwnerBit = 1ull << 63;
fuse_session* g_session = nullptr;

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return Caller{ctx->uid, ctx->gid, ctx->pid};
}

// Errors that are not the caller's doing (EIO: a server or the network) get a log line, at
// most one per distinct message every 10 s, so the operator can see why users get EIO.
void LogSystemError(const Status& s) {
  static std::mutex mu;
  static std::map<std::string, std::chrono::steady_clock::time_point> last;
  auto now = std::chrono::steady_clock::now();
  std::string text = s.ToString();
  {
    std::lock_guard lock(mu);
    if (last.size() > 1000) last.clear();
    auto [it, fresh] = last.try_emplace(text, now);
    if (!fresh && now - it->second < std::chrono::seconds(10)) return;
    it->second = now;
  }
  spdlog::warn("answering EIO: {}", text);
}

// Answers with `s` (OK: success).
void ReplyError(fuse_req_t req, const Status& s) {
  int err = ErrnoOf(s);
  if (err == EIO) LogSystemError(s);
  fuse_reply_err(req, err);
}

// True (and the request answered with EACCES) when a private mount is asked by anyone else.
bool Refused(fuse_req_t req) {
  if (g_private_uid < 0 || fuse_req_ctx(req)->uid == static_cast<uid_t>(g_private_uid)) {
    return false;
  }
  fuse_reply_err(req, EACCES);
  return true;
}

fuse_entry_param EntryParam(const EntryOut& e) {
  fuse_entry_param p{};
  p.ino = e.ino;
  p.generation = 1;
  p.attr = e.st;
  p.attr_timeout = e.attr_timeout;
  p.entry_timeout = e.entry_timeout;
  return p;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (Refused(req)) return;
  auto r = g_fs->Lookup(CallerOf(req), parent, name);
  if (!r.ok()) {
    if (r.status().code() == Code::kNotFound) {
      // A negative entry with timeout 0: the kernel asks again next time.
      fuse_entry_param p{};
      fuse_reply_entry(req, &p);
      return;
    }
    return ReplyError(req, r.status());
  }
  fuse_entry_param p = EntryParam(*r);
  fuse_reply_entry(req, &p);
}

void OpGetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  if (Refused(req)) return;
  auto r = g_fs->GetAttr(CallerOf(req), ino);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_attr(req, &r->st, r->timeout);
}

void OpSetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  if (Refused(req)) return;
  SetAttrIn in;
  if (to_set & FUSE_SET_ATTR_MODE) in.mode = attr->st_mode;
  if (to_set & FUSE_SET_ATTR_SIZE) in.size = static_cast<uint64_t>(attr->st_size);
  if (to_set & FUSE_SET_ATTR_MTIME) {
    in.mtime_ns = int64_t{attr->st_mtim.tv_sec} * 1000000000 + attr->st_mtim.tv_nsec;
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    in.mtime_ns = int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
  }
  if (!in.mode && !in.size && !in.mtime_ns) {  // uid/gid/atime: accepted, not stored
    return OpGetAttr(req, ino, fi);
  }
  std::optional<uint64_t> fh;
  if (fi) fh = fi->fh;
  auto r = g_fs->SetAttr(CallerOf(req), ino, in, fh);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_attr(req, &r->st, r->timeout);
}

void OpReadLink(fuse_req_t req, fuse_ino_t ino) {
  if (Refused(req)) return;
  auto r = g_fs->ReadLink(CallerOf(req), ino);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_readlink(req, r->c_str());
}

void OpMkDir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  if (Refused(req)) return;
  auto r = g_fs->MkDir(CallerOf(req), parent, name, mode);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_entry_param p = EntryParam(*r);
  fuse_reply_entry(req, &p);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (Refused(req)) return;
  ReplyError(req, g_fs->Unlink(CallerOf(req), parent, name));
}

void OpRmDir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (Refused(req)) return;
  ReplyError(req, g_fs->RmDir(CallerOf(req), parent, name));
}

void OpSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  if (Refused(req)) return;
  auto r = g_fs->Symlink(CallerOf(req), parent, name, target);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_entry_param p = EntryParam(*r);
  fuse_reply_entry(req, &p);
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  if (Refused(req)) return;
  if (flags != 0) {  // RENAME_NOREPLACE / RENAME_EXCHANGE: not yet
    fuse_reply_err(req, EINVAL);
    return;
  }
  ReplyError(req, g_fs->Rename(CallerOf(req), parent, name, newparent, newname));
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  if (Refused(req)) return;
  auto r = g_fs->Link(CallerOf(req), ino, newparent, newname);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_entry_param p = EntryParam(*r);
  fuse_reply_entry(req, &p);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (Refused(req)) return;
  auto r = g_fs->Open(CallerOf(req), ino, fi->flags);
  if (!r.ok()) return ReplyError(req, r.status());
  fi->fh = *r;
  HekaFs::KernelCaching caching = g_fs->KernelCachingFor(*r);
  fi->keep_cache = caching.keep ? 1 : 0;
  fi->direct_io = caching.direct ? 1 : 0;
  fuse_reply_open(req, fi);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  if (Refused(req)) return;
  auto r = g_fs->Create(CallerOf(req), parent, name, mode, fi->flags);
  if (!r.ok()) return ReplyError(req, r.status());
  fi->fh = r->second;
  fuse_entry_param p = EntryParam(r->first);
  fuse_reply_create(req, &p, fi);
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  auto r = g_fs->Read(fi->fh, static_cast<uint64_t>(off), size);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_buf(req, r->data(), r->size());
}

void OpWrite(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off,
             fuse_file_info* fi) {
  auto r = g_fs->Write(fi->fh, static_cast<uint64_t>(off), buf, size);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_write(req, *r);
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Status s = g_fs->Flush(fi->fh);
  // close(2) drops the closing process's fcntl locks on this file (FUSE leaves it to us).
  Status unlocked = g_fs->SetLock(fi->fh, fi->lock_owner, false, true, 0, 0, false, {});
  if (s.ok()) s = unlocked;
  ReplyError(req, s);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  ReplyError(req, g_fs->Fsync(fi->fh));
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  if (fi->flock_release) {
    (void)g_fs->SetLock(fi->fh, fi->lock_owner | kFlockOwnerBit, false, true, 0, 0, false, {});
  }
  g_fs->Release(fi->fh);
  fuse_reply_err(req, 0);
}

void OpReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  if (Refused(req)) return;
  auto r = g_fs->ReadDir(CallerOf(req), ino);
  if (!r.ok()) return ReplyError(req, r.status());
  std::vector<DirEntryOut> all = {{".", ino, S_IFDIR, {}}, {"..", HekaFs::kRootIno, S_IFDIR, {}}};
  all.insert(all.end(), r->begin(), r->end());
  std::string buf(size, '\0');
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < all.size(); ++i) {
    struct stat st {};
    st.st_ino = all[i].ino;
    st.st_mode = all[i].type;
    size_t need = fuse_add_direntry(req, buf.data() + used, size - used, all[i].name.c_str(), &st,
                                    static_cast<off_t>(i + 1));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

// Like readdir, with each entry's attributes where known (the kernel then need not look each
// name up); every entry passed with attributes is a kernel reference (HekaFs::Reference).
void OpReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  if (Refused(req)) return;
  auto r = g_fs->ReadDirPlus(CallerOf(req), ino);
  if (!r.ok()) return ReplyError(req, r.status());
  std::vector<DirEntryOut> all = {{".", ino, S_IFDIR, {}}, {"..", HekaFs::kRootIno, S_IFDIR, {}}};
  all.insert(all.end(), std::make_move_iterator(r->begin()), std::make_move_iterator(r->end()));
  std::string buf(size, '\0');
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < all.size(); ++i) {
    fuse_entry_param p{};
    if (all[i].entry) {
      p = EntryParam(g_fs->Reference(*all[i].entry));
    } else {  // no attributes: the kernel looks it up when it needs it
      p.attr.st_ino = all[i].ino;
      p.attr.st_mode = all[i].type;
    }
    size_t need = fuse_add_direntry_plus(req, buf.data() + used, size - used,
                                         all[i].name.c_str(), &p, static_cast<off_t>(i + 1));
    if (need > size - used) {
      if (p.ino != 0) g_fs->ForgetInode(p.ino, 1);  // not passed after all
      break;
    }
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  g_fs->ForgetInode(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) g_fs->ForgetInode(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpStatFs(fuse_req_t req, fuse_ino_t ino) {
  if (Refused(req)) return;
  auto r = g_fs->StatFs(CallerOf(req), ino);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_statfs(req, &*r);
}

void OpInit(void*, fuse_conn_info* conn) {
  // O_TRUNC arrives with open, not as a separate truncation: a store refused at close then
  // leaves the old content on the server.
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  // flock and fcntl locks come to us, to be held on the file server for every client.
  if (conn->capable & FUSE_CAP_POSIX_LOCKS) conn->want |= FUSE_CAP_POSIX_LOCKS;
  if (conn->capable & FUSE_CAP_FLOCK_LOCKS) conn->want |= FUSE_CAP_FLOCK_LOCKS;
  // Listings always come with attributes (one BulkStatus per 1,024 names instead of a
  // lookup per name), not only when the kernel guesses they will be wanted.
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  // Requests of up to 1 MiB (a chunk) rather than 128 KiB: a quarter of the round trips.
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
}

uint64_t LengthOf(const struct flock* lock) {
  return lock->l_len <= 0 ? 0 : static_cast<uint64_t>(lock->l_len);
}

void OpGetLk(fuse_req_t req, fuse_ino_t, fuse_file_info* fi, struct flock* lock) {
  if (Refused(req)) return;
  auto r = g_fs->LockFree(fi->fh, fi->lock_owner, lock->l_type == F_WRLCK,
                          static_cast<uint64_t>(lock->l_start), LengthOf(lock));
  if (!r.ok()) return ReplyError(req, r.status());
  if (*r) lock->l_type = F_UNLCK;
  lock->l_pid = 0;  // held elsewhere: another client machine perhaps
  fuse_reply_lock(req, lock);
}

void OpSetLk(fuse_req_t req, fuse_ino_t, fuse_file_info* fi, struct flock* lock, int sleep) {
  if (Refused(req)) return;
  Status s = g_fs->SetLock(fi->fh, fi->lock_owner, lock->l_type == F_WRLCK,
                           lock->l_type == F_UNLCK, static_cast<uint64_t>(lock->l_start),
                           LengthOf(lock), sleep != 0,
                           [req] { return fuse_req_interrupted(req) != 0; });
  ReplyError(req, s);
}

void OpFlock(fuse_req_t req, fuse_ino_t, fuse_file_info* fi, int op) {
  if (Refused(req)) return;
  uint64_t owner = fi->lock_owner | kFlockOwnerBit;
  bool unlock = (op & LOCK_UN) != 0;
  Status s = g_fs->SetLock(fi->fh, owner, (op & LOCK_EX) != 0, unlock, 0, 0,
                           !unlock && !(op & LOCK_NB),
                           [req] { return fuse_req_interrupted(req) != 0; });
  fuse_reply_err(req, s.code() == Code::kLockConflict ? EWOULDBLOCK : ErrnoOf(s));
}

fuse_lowlevel_ops Ops() {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.getattr = OpGetAttr;
  ops.setattr = OpSetAttr;
  ops.readlink = OpReadLink;
  ops.mkdir = OpMkDir;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmDir;
  ops.symlink = OpSymlink;
  ops.rename = OpRename;
  ops.link = OpLink;
  ops.open = OpOpen;
  ops.create = OpCreate;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.fsync = OpFsync;
  ops.release = OpRelease;
  ops.readdir = OpReadDir;
  ops.readdirplus = OpReadDirPlus;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.statfs = OpStatFs;
  ops.getlk = OpGetLk;
  ops.setlk = OpSetLk;
  ops.flock = OpFlock;
  return ops;
}

// This cache manager's identity towards file servers (callback promises): made once.
// Crash tests: HEKA_TEST_CACHE_CRASH="STEP:N" kills this process (SIGKILL) at step STEP of
// the Nth chunk: "write" (the cache, half way through writing a chunk file), "rename" (the
// cache, file in place, before its index row), "store" (before a store's Nth StoreData),
// "commit" (N = 1: before a store's CommitStore).
std::function<void(const char*, uint64_t)> CrashHook() {
  const char* spec = std::getenv("HEKA_TEST_CACHE_CRASH");
  if (spec == nullptr) return nullptr;
  std::string s = spec;
  auto colon = s.find(':');
  if (colon == std::string::npos) return nullptr;
  std::string step = s.substr(0, colon);
  uint64_t at = std::strtoull(s.c_str() + colon + 1, nullptr, 10);
  spdlog::warn("test crash armed: {} of chunk {}", step, at);
  return [step, at](const char* now, uint64_t n) {
    if (step == now && n == at) ::raise(SIGKILL);
  };
}

std::string ClientUuid(const std::string& state_dir) {
  std::string path = state_dir + "/cachemgr.uuid";
  std::ifstream in(path);
  std::string uuid;
  if (std::getline(in, uuid) && !uuid.empty()) return uuid;
  uint8_t b[16];
  RAND_bytes(b, sizeof b);
  static const char* hex = "0123456789abcdef";
  for (uint8_t c : b) {
    uuid.push_back(hex[c >> 4]);
    uuid.push_back(hex[c & 15]);
  }
  std::ofstream(path) << uuid << "\n";
  return uuid;
}

int Run(const std::string& config_path, const std::string& mountpoint, bool daemonize) {
  auto config = CacheManagerConfig::Load(config_path);
  if (!config.ok()) {
    spdlog::critical("{}", config.status().ToString());
    return 1;
  }
  if (!mountpoint.empty()) config->mountpoint = mountpoint;
  std::error_code ec;
  std::filesystem::create_directories(config->state_dir, ec);
  std::filesystem::permissions(config->state_dir, std::filesystem::perms::owner_all, ec);
  auto members = db::ParseMembers(config->dbservers);
  if (!members.ok()) {
    spdlog::critical("{}: dbservers: {}", config_path, members.status().ToString());
    return 1;
  }
  std::vector<std::string> argv_strings = {"heka-cachemgr", "-o", "fsname=heka",
                                           "-o", "subtype=heka"};
  // A shared mount serves every local user, each with their own credentials. A private one
  // serves only private_uid (default: the owner of the mount point), which lets the kernel
  // cache for long; the kernel lets everybody in (allow_other) and the daemon refuses others.
  argv_strings.push_back("-o");
  argv_strings.push_back("allow_other");
  if (config->private_mount) {
    struct stat mp {};
    g_private_uid = config->private_uid >= 0 ? config->private_uid
                    : stat(config->mountpoint.c_str(), &mp) == 0 ? mp.st_uid
                                                                : 0;
  }
  // The cache first: a cache that cannot be opened is reported before anything is mounted.
  std::shared_ptr<ChunkCache> chunk_cache;
  if (!config->cache_dir.empty()) {
    auto disk = DiskChunkCache::Open(config->cache_dir, config->cache_bytes, config->chunk_bytes);
    if (!disk.ok()) {
      spdlog::critical("cache {}: {}", config->cache_dir, disk.status().ToString());
      return 1;
    }
    (*disk)->test_hook = CrashHook();
    chunk_cache = std::move(*disk);
  }
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_lowlevel_ops ops = Ops();
  g_session = fuse_session_new(&args, &ops, sizeof ops, nullptr);
  fuse_opt_free_args(&args);  // what fuse_session_new added to them
  if (!g_session) {
    spdlog::critical("cannot create the FUSE session");
    return 1;
  }
  if (fuse_set_signal_handlers(g_session) != 0) {
    spdlog::critical("cannot set signal handlers");
    return 1;
  }
  if (fuse_session_mount(g_session, config->mountpoint.c_str()) != 0) {
    spdlog::critical("cannot mount {}: is it an existing empty directory, and is /dev/fuse "
                     "usable?", config->mountpoint);
    fuse_remove_signal_handlers(g_session);
    fuse_session_destroy(g_session);
    return 1;
  }
  // mount(8) (fstab): background only once the mount is there, and before any thread starts.
  if (daemonize && fuse_daemonize(0) != 0) {
    spdlog::critical("cannot go to the background");
    return 1;
  }
  rpc::Runtime runtime({2, 4});
  db::DbClientOptions dbo;
  dbo.members = *members;
  dbo.credentials.keytab = "FILE:" + config->keytab;
  dbo.credentials.principal = config->principal;
  dbo.credentials.ccache = "MEMORY:heka-cachemgr-db";
  db::DbClient db(runtime, dbo);
  CredentialResolverOptions ro;
  ro.private_dir = config->state_dir + "/ccache";
  ro.mount_point = config->mountpoint;
  CredentialResolver resolver(ro);
  if (!resolver.init_status().ok()) {
    spdlog::critical("{}", resolver.init_status().ToString());
    return 1;
  }

  // Cell keys: raw key files are read when first needed; protected ones wait for
  // `heka key unlock`. Never written to disk by this process.
  KeyStoreOptions ko;
  ko.key_dir = config->key_dir;
  ko.key_files = config->key_files;
  KeyStore key_store(ko);

  HekaFsOptions fo;
  fo.config = &*config;
  fo.runtime = &runtime;
  fo.db = &db;
  fo.resolver = &resolver;
  fo.client_uuid = ClientUuid(config->state_dir);
  fo.chunk_cache = chunk_cache;
  fo.test_hook = CrashHook();
  fo.keys = &key_store;  // HekaFsOptions::keys
  auto fs = std::make_unique<HekaFs>(fo);
  g_fs = fs.get();
  fs->StartRevalidation();

  fs->inval_inode = [](uint64_t ino) {
    int rc = fuse_lowlevel_notify_inval_inode(g_session, ino, 0, 0);
    if (rc != 0 && rc != -ENOENT) spdlog::debug("inval inode {}: {}", ino, std::strerror(-rc));
  };
  fs->inval_entry = [](uint64_t parent, const std::string& name) {
    fuse_lowlevel_notify_inval_entry(g_session, parent, name.c_str(), name.size());
  };
  spdlog::info("heka-cachemgr {} serving {} ({} mount{})", fo.client_uuid, config->mountpoint,
               config->private_mount ? "private" : "shared",
               config->private_mount ? " of uid " + std::to_string(g_private_uid) : "");
  ControlHandlerOptions co;
  co.fs = fs.get();
  co.resolver = &resolver;
  co.runtime = &runtime;
  co.db_members = *members;
  co.machine_db = &db;
  co.keys = &key_store;
  co.private_uid = g_private_uid;
  ControlHandler handler(co);
  ControlServer control(config->control_socket,
                        [&handler](const Caller& c, const ::heka::cachemgr::ControlRequest& req) {
                          return handler.Handle(c, req);
                        });
  if (!config->control_socket.empty()) {
    // Without it the mount still works; only `heka fs` cannot reach this daemon.
    if (Status s = control.Start(); !s.ok()) spdlog::warn("no control socket: {}", s.ToString());
  }
  fuse_loop_config loop{};
  loop.clone_fd = 0;
  loop.max_idle_threads = 16;
  int rc = fuse_session_loop_mt(g_session, &loop);
  spdlog::info("heka-cachemgr unmounting {}", config->mountpoint);
  control.Stop();
  fuse_session_unmount(g_session);
  fuse_remove_signal_handlers(g_session);
  fs.reset();  // its threads may be in calls: the runtime runs until they are done
  runtime.Stop();
  fuse_session_destroy(g_session);
  return rc == 0 ? 0 : 1;
}

}  // namespace

// Two ways to start it:
//   heka-cachemgr --config FILE [--log FILE]          (systemd, heka-local: stays in front)
//   heka-cachemgr CONFIG MOUNTPOINT [-o OPTIONS]      (mount -t fuse.heka-cachemgr CONFIG DIR,
//                                                      from /etc/fstab; goes to the background)
// -o takes mount(8)'s options; log=FILE is ours, the rest (rw, nosuid, ...) are ignored.
int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  // Chunks (1 MiB and more) come and go all the time: keep them on the heap for reuse rather
  // than mapping and faulting in fresh pages for each one.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  std::string config, log, mountpoint;
  static option opts[] = {{"config", required_argument, nullptr, 'c'},
                          {"log", required_argument, nullptr, 'l'},
                          {nullptr, 0, nullptr, 0}};
  auto usage = [] {
    std::fprintf(stderr,
                 "usage: heka-cachemgr --config FILE [--log FILE]\n"
                 "       heka-cachemgr CONFIG MOUNTPOINT [-o log=FILE,...]   (mount -t "
                 "fuse.heka-cachemgr)\n");
    return 2;
  };
  for (int c; (c = getopt_long_only(argc, argv, "o:", opts, nullptr)) != -1;) {
    switch (c) {
      case 'c': config = optarg; break;
      case 'l': log = optarg; break;
      case 'o': {
        std::string list = optarg;
        for (size_t pos = 0; pos <= list.size();) {
          size_t comma = std::min(list.find(',', pos), list.size());
          std::string item = list.substr(pos, comma - pos);
          if (item.rfind("log=", 0) == 0) log = item.substr(4);
          pos = comma + 1;
        }
        break;
      }
      default: return usage();
    }
  }
  bool fstab = false;
  if (config.empty() && argc - optind == 2) {
    config = argv[optind];
    mountpoint = argv[optind + 1];
    fstab = true;
  } else if (config.empty() || optind != argc) {
    return usage();
  }
  heka::InitLogging({"heka-cachemgr", "", log});
  return Run(config, mountpoint, fstab);
}
