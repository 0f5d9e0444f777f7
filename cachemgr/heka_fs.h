// HekaFs: the file system the cache manager mounts, as plain C++ operations on inode numbers
// (the FUSE glue in fuse_main.cc only translates). Inode 1 is the dynamic root: it lists the
// configured cells, and any other cell name resolves on lookup to the root directory of that
// cell's root.cell volume.
//
// Who is asking: every operation gets the caller's uid/gid/pid; CredentialResolver turns that
// into the caller's Kerberos credentials (or none: anonymous, served over the machine's own
// connection with system:anyuser rights). Each identity has its own connections.
//
// Cache: file data (and symlink targets) in a ChunkCache (chunk_cache.h), by file, data
// version and chunk, within a size bound; statuses, rights and listings in this class's
// Node map, held while the kernel references the inode (lookup counts, ForgetInode).
// Statuses, directory entries and file chunks stay valid while the file server's callback
// promise does (one promise per cache manager, by its UUID). Rights are remembered per
// identity and an object is given to an identity only once the server has confirmed that
// identity's rights on it. A break marks the objects invalid at once (before the
// acknowledgement goes out) and queues the kernel invalidations for a separate thread.
//
// Writes go to the open file's dirty chunks and are stored, as one store transaction with the
// opener's credentials, by Flush (close) and Fsync; Release never stores for the first time.
// Thread-safe: FUSE calls these from many threads.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "cachemgr/chunk_cache.h"
#include "cachemgr/config.h"
#include "cachemgr/creds.h"
#include "cachemgr/crypto/crypto.h"
#include "dbserver/client/db_client.h"
#include "fileserver/client/file_client.h"
#include "rpc/runtime.h"

namespace heka::cm {

namespace pb = ::heka::fileserver;
class KeyStore;

struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
};

struct EntryOut {
  uint64_t ino = 0;
  pb::Fid fid;
  struct stat st {};
  double entry_timeout = 0;
  double attr_timeout = 0;
};

struct AttrOut {
  struct stat st {};
  double timeout = 0;
};

struct DirEntryOut {
  std::string name;
  uint64_t ino = 0;
  mode_t type = 0;  // S_IFDIR, S_IFREG, S_IFLNK
  // ReadDirPlus: the entry's attributes when known (not for mount points: the kernel looks
  // those up). Not yet referenced: see Reference().
  std::optional<EntryOut> entry;
};

// Changes SetAttr may make (a FUSE_SET_ATTR_* subset).
struct SetAttrIn {
  std::optional<mode_t> mode;
  std::optional<uint64_t> size;
  std::optional<int64_t> mtime_ns;
};

struct HekaFsOptions {
  const CacheManagerConfig* config = nullptr;
  rpc::Runtime* runtime = nullptr;
  db::DbClient* db = nullptr;              // as the machine
  CredentialResolver* resolver = nullptr;
  std::string client_uuid;                 // this cache manager's UUID
  // Where file data is cached; default: a MemoryChunkCache of config->cache_bytes.
  std::shared_ptr<ChunkCache> chunk_cache;
  // The cell keys of encrypted volumes (key_store.h); none: encrypted volumes give EACCES.
  KeyStore* keys = nullptr;
  // Crash tests: called before each StoreData of a store ("store", 1-based count) and before
  // its CommitStore ("commit", 1).
  std::function<void(const char* step, uint64_t n)> test_hook;
};

class HekaFs {
 public:
  static constexpr uint64_t kRootIno = 1;
  static constexpr uid_t kNobody = 65534;

  explicit HekaFs(HekaFsOptions options);
  ~HekaFs();

  // After a restart the chunk cache holds data of files whose promises died with the old
  // process: a background thread asks their file servers for their statuses in batches
  // (BulkStatus, as the machine) and drops the chunks of files that changed or went, logging
  // progress. (Nothing is served before its status was fetched anyway: chunks are looked up
  // by the data version a fresh status names.)
  void StartRevalidation();

  Result<EntryOut> Lookup(const Caller& c, uint64_t parent, const std::string& name);
  Result<AttrOut> GetAttr(const Caller& c, uint64_t ino);
  Result<AttrOut> SetAttr(const Caller& c, uint64_t ino, const SetAttrIn& in,
                          std::optional<uint64_t> fh);
  Result<std::vector<DirEntryOut>> ReadDir(const Caller& c, uint64_t ino);
  // ReadDir with each entry's attributes, asked for in batches (BulkStatus) as the caller.
  Result<std::vector<DirEntryOut>> ReadDirPlus(const Caller& c, uint64_t ino);

  // The kernel's references. Lookup, Create, MkDir, Symlink and Link count one for the inode
  // they return; an entry of ReadDirPlus counts once passed to Reference (its inode number may
  // change then, if the inode was forgotten meanwhile). ForgetInode drops `n` of them; at
  // zero, with no open file, what is cached about the inode goes, but not its file data
  // (the ChunkCache keeps that by file) and its number is not reused.
  EntryOut Reference(EntryOut e);
  void ForgetInode(uint64_t ino, uint64_t n);
  // `heka fs getcacheparms`.
  struct CacheStats {
    ChunkCacheUsage chunks;
    uint64_t kernel_inodes = 0;  // inodes the kernel holds references to
    uint64_t objects = 0;        // cached statuses (and listings)
  };
  CacheStats Stats();
  Result<std::string> ReadLink(const Caller& c, uint64_t ino);
  Result<struct statvfs> StatFs(const Caller& c, uint64_t ino);

  Result<uint64_t> Open(const Caller& c, uint64_t ino, int flags);  // returns a handle
  Result<std::pair<EntryOut, uint64_t>> Create(const Caller& c, uint64_t parent,
                                               const std::string& name, mode_t mode, int flags);
  // How the kernel's page cache serves this open of `fh`'s file: `keep` (FOPEN_KEEP_CACHE)
  // when the promise holds and its pages are of the version the handle reads; `direct`
  // (FOPEN_DIRECT_IO) while another open still reads an older version of the file.
  struct KernelCaching {
    bool keep = false;
    bool direct = false;
  };
  KernelCaching KernelCachingFor(uint64_t fh);
  Result<std::string> Read(uint64_t fh, uint64_t offset, size_t size);
  Result<size_t> Write(uint64_t fh, uint64_t offset, const char* data, size_t size);
  Status Flush(uint64_t fh);  // stores dirty data (close)
  Status Fsync(uint64_t fh);
  void Release(uint64_t fh);

  // Advisory locks on `fh`'s file, held on the file server by this cache manager for the
  // kernel's lock `owner` (flock and fcntl). `exclusive` false: shared; `unlock`: release
  // [start, start + length) (length 0: to the end). Taking a lock revalidates the cached file;
  // releasing one stores dirty data first, so lock-protected writers see each other. With
  // `wait`, retries until granted or `interrupted()`. kLockConflict when busy.
  Status SetLock(uint64_t fh, uint64_t owner, bool exclusive, bool unlock, uint64_t start,
                 uint64_t length, bool wait, const std::function<bool()>& interrupted);
  // Whether such a lock could be taken now (by taking and releasing it).
  Result<bool> LockFree(uint64_t fh, uint64_t owner, bool exclusive, uint64_t start,
                        uint64_t length);

  Result<EntryOut> MkDir(const Caller& c, uint64_t parent, const std::string& name, mode_t mode);
  Result<EntryOut> Symlink(const Caller& c, uint64_t parent, const std::string& name,
                           const std::string& target);
  Result<EntryOut> Link(const Caller& c, uint64_t ino, uint64_t parent, const std::string& name);
  Status Unlink(const Caller& c, uint64_t parent, const std::string& name);
  Status RmDir(const Caller& c, uint64_t parent, const std::string& name);
  Status Rename(const Caller& c, uint64_t parent, const std::string& name, uint64_t new_parent,
                const std::string& new_name);

  // ---- For the control socket (`heka fs`, control.cc); every call acts as `c`. ----

  // The inode of `path`, absolute and under the mount point ("/heka/acme/dir"), looked up one
  // component at a time as `c`; mount points are crossed. "." and empty components are
  // skipped; ".." and symlinks in the middle are refused (the CLI resolves those first).
  Result<uint64_t> ResolvePath(const Caller& c, const std::string& path);
  // The directory inode holding the last component of `path`, and that component.
  Result<std::pair<uint64_t, std::string>> ResolveParent(const Caller& c, const std::string& path);
  Result<pb::Fid> FidOf(uint64_t ino);
  Result<pb::FetchAclReply> FetchAcl(const Caller& c, uint64_t ino);
  // Replaces the directory's ACL; what was cached under it must be asked again.
  Status StoreAcl(const Caller& c, uint64_t ino, const std::vector<pb::AclEntry>& entries);
  Result<pb::VolumeStatus> VolumeStatusOf(const Caller& c, uint64_t ino);
  // The address of the file server holding `ino`'s volume (from the VLDB).
  Result<std::string> ServerAddressOf(uint64_t ino);
  // `heka fs flush`: drops the cached object and the kernel's copy of it.
  void FlushCached(uint64_t ino);
  // Tells the kernel to forget `name` in `parent` (after a change it did not make itself).
  void ForgetName(uint64_t parent, const std::string& name);
  // The caller's principal; "" when anonymous.
  std::string PrincipalOf(const Caller& c);
  // `heka fs unlog`: forgets the caller's credentials (CredentialResolver::Forget), closes the
  // connections made with them and drops the rights remembered for them.
  void Unlog(const Caller& c);
  // Mount points (AFS style): a symlink with mode 0644 whose target is "#vol." or
  // "#cell:vol." ('%' for read-write) is shown as the root directory of that volume.
  // The target of the mount point `name` in directory `parent`; kInvalidArgument when
  // `name` is not a mount point.
  Result<std::string> MountTarget(const Caller& c, uint64_t parent, const std::string& name);
  // Creates the mount point `name` in `parent` leading to `volume` of `cell` ("" = the
  // directory's own cell), after checking the VLDB knows that volume.
  Result<std::string> MakeMountPoint(const Caller& c, uint64_t parent, const std::string& name,
                                     const std::string& cell, const std::string& volume, bool rw);
  // `heka fs setquota`: sets the quota of `ino`'s volume (0 = no limit) through its file
  // server as `c`, who must administer the cell. Returns the volume's new status.
  Result<pb::VolumeStatus> SetQuotaOf(const Caller& c, uint64_t ino, uint64_t quota_bytes);
  // `heka fs flushvolume`: what FlushCached does, for every object cached of `ino`'s volume,
  // in batches (progress in the log for large volumes). Returns how many objects that was.
  Result<uint64_t> FlushVolume(uint64_t ino);
  // `heka fs checkvolumes`: forgets what the VLDB said of volumes (ids by name, sites, which
  // have released RO sites), so the next crossing of a mount point asks again.
  void CheckVolumes();
  // `heka fs setcachesize`: a new bound on cached file data (evicting at once); 0 = back to
  // the configured cache_size_mb. Returns the bound now in force.
  uint64_t SetCacheSize(uint64_t bytes);
  // `heka fs checkservers`: pings (Diag.Ping as the machine, 5 s deadline) the file servers
  // holding volumes of `cells` (empty: the configured ones), or every registered server with
  // `all`. Fails only if the VLDB cannot say which servers those are.
  struct ServerProbe {
    std::string address;
    std::string principal;
    std::string uuid;
    Status status;  // of the ping
  };
  Result<std::vector<ServerProbe>> CheckServers(const std::vector<std::string>& cells, bool all);
  // `heka fs listcells`: the configured cells (listed in the root), then those looked up
  // since start, each with its root.cell volume id (0: not looked up yet).
  struct KnownCell {
    std::string name;
    bool configured = false;
    uint64_t root_volume = 0;
  };
  std::vector<KnownCell> Cells();
  // `heka fs getcellstatus`: one cell, looked up in the VLDB if need be; kNotFound when it
  // has no such cell.
  Result<KnownCell> CellStatus(const std::string& cell);

  // Kernel invalidation: set right after construction, before the FUSE loop starts (nothing
  // is queued before a request is served); run on the invalidation thread only.
  std::function<void(uint64_t ino)> inval_inode;
  std::function<void(uint64_t parent, const std::string& name)> inval_entry;

 private:
  // An identity: the credentials one request runs with.
  struct Who {
    std::string ccache;     // "" = the machine's connection (anonymous)
    std::string principal;  // "" = anonymous
    bool expired = false;   // its ticket has expired: EACCES, from the cache too
    uid_t uid = 0;          // the local user asking
    std::string source;     // where its ccache came from, for logs
    int64_t ticket_end = 0; // the TGT's end: a new kinit changes it
    // Connections are made for one kinit: a new one (maybe of another principal) in the
    // same cache gets new connections.
    std::string Kinit() const { return principal + "@" + std::to_string(ticket_end); }
  };
  static Status Expired(const Who& who);
  struct Node;
  struct Handle;
  struct Server {
    std::string address;
    std::string principal;
    // From the VLDB: the volume is encrypted (docs/formats/encryption.md) with the cell key
    // of this fingerprint.
    bool encrypted = false;
    crypto::KeyId fingerprint{};
    bool read_only = false;  // a backup (or read-only) instance: no changes
    bool replica = false;    // a read-only instance: another RO site may serve it instead
    std::string uuid;        // the file server's
  };

  Who WhoIs(const Caller& c);

  // ---- Encrypted volumes (heka_fs_crypto.cc) ----
  // Whether `cell`'s `volume` is encrypted (the VLDB says so).
  Result<bool> Encrypted(const std::string& cell, uint64_t volume);
  // The cell key for `cell`'s encrypted `volume`: EACCES (and one log line) when this client
  // has none, or one with another fingerprint than the VLDB names.
  Result<std::shared_ptr<const crypto::CellKey>> VolumeKey(const std::string& cell,
                                                           uint64_t volume);
  // The name `name` in directory `dir` as the server stores it: itself, or sealed with the
  // directory's name key in an encrypted volume.
  Result<std::string> WireName(const Who& who, uint64_t dir, const std::string& name);
  // The directory's ID in an encrypted volume (from its status's client attribute).
  Result<crypto::Id> DirId(const pb::FileStatus& dir);
  // What a new vnode of `type` in `dir`'s volume carries: its client attribute, and for a
  // symlink its sealed target (`target` in, sealed out); for a file, its first content.
  struct NewVnode {
    std::string client_attr;
    std::string data;
  };
  Result<NewVnode> NewVnodeIn(const pb::Fid& dir, pb::FileType type, std::string* target,
                              mode_t mode);
  // Statuses in a reply from an encrypted volume: stored sizes become plaintext sizes.
  static void PlainSizes(google::protobuf::Message* reply);
  // Readies `h` (of an encrypted file) for a store: every chunk whose sealed bytes change
  // (a new last block, blocks past the old end) is put among its dirty chunks.
  Status AddResealedChunks(Handle& h);
  // The handle's cipher, made at open (encrypted volumes only).
  Status SetUpCipher(Handle& h, const pb::FileStatus& st);
  // FetchData of chunk `index`: plaintext offsets, or where its sealed bytes are.
  void SetChunkRange(bool encrypted, uint64_t index, pb::FetchDataRequest* req) const;
  // The plaintext of chunk `index` of h's file from its sealed bytes (EIO and a log line
  // when they do not authenticate). REQUIRES: h.mu held.
  Result<std::string> OpenChunk(Handle& h, uint64_t index, const std::string& sealed,
                                uint64_t plain_size);
  // Bytes [within, within + n) of chunk `index` of h's (encrypted) file, clipped at its end,
  // opening only the blocks they lie in, if the sealed chunk is at hand (the last one read,
  // or in the cache); nullopt if it must be fetched. REQUIRES: h.mu held.
  Result<std::optional<std::string>> SealedPart(Handle& h, uint64_t index, uint64_t within,
                                                uint64_t n);
  // Truncates an encrypted file to `size` (a store transaction); returns its new status.
  Result<pb::FileStatus> TruncateEncrypted(const Who& who, uint64_t ino, uint64_t size);
  // One log line per distinct problem with keys (mu_ not held).
  void LogKeyProblem(const std::string& line);
  std::set<std::string> key_problems_logged_;  // mu_
  // File-server calls for `who` on `cell`'s volume `volume`.
  template <typename Rep, typename Req>
  Result<Rep> Call(const Who& who, const std::string& cell, uint64_t volume,
                   const std::string& method, const Req& req);
  Result<Server> ServerOf(const std::string& cell, uint64_t volume);
  void ForgetServer(const std::string& cell, uint64_t volume);  // it moved: ask the VLDB again
  // A file server holding an RO instance did not answer: other RO sites are tried first for a
  // while (kSiteDownFor), without the user noticing.
  void SiteDown(const std::string& cell, uint64_t volume, const Server& server);
  static constexpr std::chrono::seconds kSiteDownFor{60};
  // `id` + 1, its RO instance, if the volume `id` of `cell` has released RO sites (as the VLDB
  // said when this client looked it up); else `id`. The AFS rule: a path reached through a
  // read-only volume prefers read-only instances.
  uint64_t ReadOnlyIfReplicated(const std::string& cell, uint64_t id);
  // Remembers whether a VLDB entry has released RO sites.
  void NoteReplicated(const db::Volume& v);
  // How long calls wait through a volume's move (busy, moved) before they fail.
  static constexpr std::chrono::seconds kMoveWait{120};
  // One call's way through a move of its volume, for ThroughMove.
  struct MoveWait {
    std::chrono::steady_clock::time_point give_up = std::chrono::steady_clock::now() + kMoveWait;
    std::chrono::milliseconds pause{5};
  };
  // Whether a call that got `code` should be sent again: the volume is frozen by a move (busy:
  // this waits a little, longer each time) or has moved (this forgets its server, so the next
  // ServerOf asks the VLDB), and kMoveWait has not passed since `w` was made.
  bool ThroughMove(MoveWait& w, Code code, const std::string& cell, uint64_t volume);
  std::shared_ptr<fs::FileClient> ClientFor(const Who& who, const Server& server);
  // Locks whose volume moved (the old server said so at a renewal): its new server renews them.
  void AdoptMovedLocks(const Who& who, const std::vector<pb::SetLockRequest>& locks,
                       int64_t lease_ms);
  Result<uint64_t> RootVolume(const std::string& cell);

  uint64_t InoOf(const pb::Fid& fid);
  // The id of volume `name` of `cell` (VLDB, as the machine; remembered for kVolumeNameTtl
  // if `remember`).
  Result<uint64_t> VolumeByName(const std::string& cell, const std::string& name, bool remember = true);
  Result<std::string> ReadLinkAs(const Who& who, uint64_t ino);
  // The target as the server stores it (sealed in encrypted volumes).
  Result<std::string> RawLinkTarget(const Who& who, uint64_t ino, const pb::FileStatus& st);
  // An unencrypted volume holding an encrypted vnode: the VLDB entry was changed (EIO).
  Status DowngradeRefused(const pb::Fid& fid);
  // If `st` is a mount point: the fid of the root directory of the volume it leads to.
  std::optional<pb::Fid> MountRootOf(const Who& who, uint64_t ino, const pb::FileStatus& st);
  Result<EntryOut> MakeSymlink(const Who& who, uint64_t parent, const std::string& name,
                               const std::string& target, mode_t mode);
  // The node's status, valid for `who`: from the cache when the promise holds and `who`'s
  // rights were confirmed, else fetched as `who`.
  Result<pb::FileStatus> StatusOf(const Who& who, uint64_t ino);
  // Records `st` as `who`'s view, valid while its promise (`callback_expires`) holds, unless
  // a break arrived since `breaks_before` (breaks_ read before the call that returned it).
  static constexpr uint64_t kNoBreakCheck = ~0ull;
  void Remember(const Who& who, const pb::FileStatus& st, int64_t callback_expires,
                uint64_t breaks_before);
  std::atomic<uint64_t> breaks_{0};  // breaks and revalidations received so far
  uint32_t RightsOf(const Who& who, uint64_t ino);
  EntryOut EntryFor(const Who& who, const pb::FileStatus& st);
  struct stat StatOf(const Who& who, const pb::FileStatus& st, uint64_t ino);
  // The local uid of a vnode's owner (a PTDB id of `cell`): the user its principal maps to
  // with krb5_aname_to_localname, else nobody. Looked up once with `who`'s ticket.
  // Files the caller owns show as the caller's.
  uid_t LocalUid(const Who& who, const std::string& cell, int64_t owner);
  int64_t SelfId(const Who& who, const std::string& cell);  // the caller's PTDB id (0: none)
  std::shared_ptr<db::DbClient> DbFor(const Who& who);
  // A call made with `who`'s ticket was refused (`s`): the resolver looks at the user's cache
  // again next time, and a stale ticket becomes EACCES with one log line.
  Status CredentialsRefused(const Who& who, const std::string& server, Status s);
  double Timeout(const pb::FileStatus& st) const;
  void Forget(const pb::Fid& fid);
  // After this cache manager's own change of a directory (no break comes for it): its new
  // status, and `name` now naming `fid` (or nothing).
  void OwnChange(uint64_t dir_ino, const pb::FileStatus* dir_status, const std::string& name,
                 const pb::Fid* fid);
  Result<EntryOut> Created(const Who& who, uint64_t parent, const std::string& name,
                           const pb::CreateReply& reply);
  Status RemoveEntry(const Caller& c, uint64_t parent, const std::string& name,
                     const std::string& method);
  Result<pb::Fid> LookupFid(const Who& who, uint64_t parent, const std::string& name);
  // Lookup without counting a kernel reference (ResolvePath).
  Result<EntryOut> LookupAs(const Who& who, uint64_t parent, const std::string& name);
  // The names and fids of directory `ino`, as `who` (who has `l` on it).
  Result<std::map<std::string, pb::Fid>> ListAs(const Who& who, uint64_t ino);
  // Unstored writes of open handles show in the size, and so does a store that committed
  // after `st` (of `data_version`) was found.
  void ApplyPendingSize(uint64_t ino, struct stat& st, uint64_t data_version);

  Status StoreDirty(Handle& h);      // StoreDirtyOnce, again through a volume move
  Status StoreDirtyOnce(Handle& h);
  // kLockLost if a lock taken through `h` was lost: its I/O then fails with EIO.
  Status LockState(const Handle& h);
  // The open handles of `ino` (lock order: a handle's mutex before mu_, never the reverse).
  std::vector<std::shared_ptr<Handle>> HandlesOf(uint64_t ino);
  // Moves a readable handle without unstored writes to the file's current data version.
  // REQUIRES: h.mu held.
  void Repin(Handle& h);
  // Puts the chunks of h's file at h.version that the cache lacks into it, several fetches
  // at a time. False when the file changed meanwhile (a chunk came back of another version).
  Result<bool> Prefetch(Handle& h);
  // Chunk `index` of `h`'s file as `who` may see it: h's memo, the cache, else fetched.
  // REQUIRES: h.mu held.
  Result<std::shared_ptr<const std::string>> ChunkFor(const Who& who, Handle& h, uint64_t index);

  // Hands (ino, "") / (parent, name) invalidations to the invalidation thread.
  void QueueInvalidations(std::vector<std::pair<uint64_t, std::string>> inval);
  void OnBreak(const pb::BreakRequest& req);
  void OnRevalidate();
  void InvalidationLoop();

  HekaFsOptions options_;
  const uint64_t chunk_size_;  // config->chunk_bytes
  std::shared_ptr<ChunkCache> chunk_cache_;  // file data and symlink targets

  std::mutex mu_;
  std::map<uint64_t, pb::Fid> fids_;                       // mu_: ino -> fid
  std::map<std::tuple<std::string, uint64_t, uint64_t, uint64_t>, uint64_t> inos_;  // mu_
  uint64_t next_ino_ = 2;                                  // mu_
  std::map<uint64_t, uint64_t> lookups_;                   // mu_: ino -> kernel references
  std::map<uint64_t, std::unique_ptr<Node>> nodes_;        // mu_: by ino
  std::map<std::string, uint64_t> root_volumes_;           // mu_: cell -> root.cell volume id
  // mu_: (cell, name) -> volume id, and when the VLDB said so: asked again after
  // kVolumeNameTtl, so that clients notice a volume's first release (its RO sites).
  std::map<std::pair<std::string, std::string>, std::pair<uint64_t, std::chrono::steady_clock::time_point>>
      named_volumes_;
  static constexpr std::chrono::seconds kVolumeNameTtl{60};
  // Whether this HekaFs still lives, for the file clients' callbacks (which may run later).
  struct Life {
    std::shared_mutex mu;
    bool alive = true;
  };
  std::shared_ptr<Life> life_ = std::make_shared<Life>();
  std::map<std::pair<std::string, uint64_t>, Server> servers_;  // mu_
  // Volumes that moved: their next lookup asks the VLDB's leader, which has the switch for sure.
  std::set<std::pair<std::string, uint64_t>> moved_;  // mu_
  std::set<std::pair<std::string, uint64_t>> replicated_;  // mu_: (cell, RW id) with RO sites
  std::map<std::string, std::chrono::steady_clock::time_point> down_sites_;  // mu_: uuid -> until
  // mu_: (address, ccache, Who::Kinit) -> the connection made for one kinit of that cache.
  // A new kinit gets new connections; the old ones stay for the files opened (and locks
  // taken) with it, until `heka fs unlog`.
  std::map<std::tuple<std::string, std::string, std::string>, std::shared_ptr<fs::FileClient>>
      clients_;
  std::map<uint64_t, std::shared_ptr<Handle>> handles_;    // mu_
  uint64_t next_fh_ = 1;                                   // mu_
  std::set<std::pair<uint64_t, uint64_t>> lockers_;       // mu_: (ino, owner) holding locks
  std::set<std::pair<uid_t, int64_t>> expired_logged_;    // mu_: (uid, ticket end) logged
  std::map<std::pair<std::string, int64_t>, uid_t> owners_;  // mu_: (cell, PTDB id) -> uid
  std::map<std::pair<std::string, std::string>, int64_t> self_ids_;  // mu_: (cell, principal)
  struct KinitDb {
    std::string kinit;
    std::shared_ptr<db::DbClient> client;
  };
  std::map<std::string, KinitDb> user_dbs_;  // mu_: by ccache

  // Kernel invalidations, done by inval_thread_ (never from a FUSE request).
  std::mutex inval_mu_;
  std::condition_variable inval_cv_;
  std::deque<std::pair<uint64_t, std::string>> inval_queue_;  // (ino, "") or (parent, name)
  bool stopping_ = false;
  std::thread inval_thread_;
  std::thread revalidate_thread_;
  void RevalidateCache();

  // What a store wrote goes into the chunk cache on this thread, not on the close path.
  struct PendingPut {
    FileKey file;
    uint64_t version = 0;
    uint64_t index = 0;
    std::string bytes;
  };
  static constexpr uint64_t kMaxQueuedPutBytes = 256ull << 20;
  void QueuePuts(std::vector<PendingPut> puts);
  void CacheWriterLoop();
  // Waits (at most 30 s) until what is queued is in the cache: a flush then drops it all.
  void DrainPuts();
  std::mutex put_mu_;
  std::condition_variable put_cv_;
  std::deque<PendingPut> put_queue_;  // put_mu_
  uint64_t put_bytes_ = 0;            // put_mu_
  bool put_stop_ = false;             // put_mu_
  bool put_busy_ = false;             // put_mu_: a Put is running
  std::thread put_thread_;
};

}  // namespace heka::cm
