// HekaFs and encrypted volumes (docs/formats/encryption.md): names, symlink targets and file
// chunks are sealed before they leave this process and opened after they arrive; the chunk
// cache holds the server's (sealed) bytes. The rest of HekaFs sees plaintext sizes: PlainSizes
// turns the stored sizes of every reply from an encrypted volume into plaintext ones.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <spdlog/spdlog.h>

#include "cachemgr/internal/heka_fs_types.h"
#include "cachemgr/key_store.h"
#include "cachemgr/mount_point.h"

namespace heka::cm {

namespace {
constexpr size_t kMaxPlainName = 255;
}  // namespace

Result<bool> HekaFs::Encrypted(const std::string& cell, uint64_t volume) {
  auto server = ServerOf(cell, volume);
  if (!server.ok()) return server.status();
  return server->encrypted;
}

void HekaFs::LogKeyProblem(const std::string& line) {
  {
    std::lock_guard lock(mu_);
    if (!key_problems_logged_.insert(line).second) return;
  }
  spdlog::warn("{}", line);
}

Result<std::shared_ptr<const crypto::CellKey>> HekaFs::VolumeKey(const std::string& cell,
                                                                 uint64_t volume) {
  auto server = ServerOf(cell, volume);
  if (!server.ok()) return server.status();
  if (!server->encrypted) return Error(Code::kInternal, "volume is not encrypted");
  std::string what = "volume " + std::to_string(volume) + " of cell " + cell + " is encrypted";
  if (options_.keys == nullptr) {
    LogKeyProblem(what + ", and this cache manager has no key store: access denied");
    return Error(Code::kPermissionDenied, "no key for cell " + cell);
  }
  auto key = options_.keys->KeyFor(cell);
  if (!key.ok()) {
    LogKeyProblem(what + ": " + key.status().message() + " (access denied until then)");
    return Error(Code::kPermissionDenied, key.status().message());
  }
  if ((*key)->fingerprint() != server->fingerprint) {
    LogKeyProblem(what + " with key " + crypto::Hex(server->fingerprint) +
                  ", but this client's key for " + cell + " is " +
                  crypto::Hex((*key)->fingerprint()) +
                  ": wrong key (EKEYREJECTED), access denied; nothing is written with it. "
                  "Import the right one: heka key import -cell " + cell);
    return Error(Code::kPermissionDenied, "wrong key for cell " + cell);
  }
  return key;
}

Status HekaFs::DowngradeRefused(const pb::Fid& fid) {
  std::string line = "volume " + std::to_string(fid.volume()) + " of cell " + fid.cell() +
                     ": the VLDB says it is not encrypted, but it holds encrypted files (a "
                     "changed VLDB entry?): refused, nothing is written unencrypted there";
  LogKeyProblem(line);
  return Error(Code::kIoError, line);
}

Result<crypto::Id> HekaFs::DirId(const pb::FileStatus& dir) {
  auto attr = crypto::DecodeAttr(dir.client_attr());
  if (!attr.ok() || !*attr || (*attr)->kind != crypto::Kind::kDirectory) {
    std::string line = "directory " + std::to_string(dir.fid().volume()) + "." +
                       std::to_string(dir.fid().vnode()) + "." + std::to_string(dir.fid().uniq()) +
                       " of cell " + dir.fid().cell() +
                       ", in an encrypted volume, has no valid directory ID (its client "
                       "attribute is missing or damaged): EIO";
    LogKeyProblem(line);
    return Error(Code::kIoError, line);
  }
  return (*attr)->id;
}

Result<std::string> HekaFs::WireName(const Who& who, uint64_t dir, const std::string& name) {
  auto fid = FidOf(dir);
  if (!fid.ok()) return fid.status();
  auto encrypted = Encrypted(fid->cell(), fid->volume());
  if (!encrypted.ok()) return encrypted.status();
  if (!*encrypted) return name;
  if (name.size() > kMaxPlainName) return Error(Code::kNameTooLong, "name too long");
  auto st = StatusOf(who, dir);
  if (!st.ok()) return st.status();
  auto id = DirId(*st);
  if (!id.ok()) return id.status();
  auto key = VolumeKey(fid->cell(), fid->volume());
  if (!key.ok()) return key.status();
  return crypto::SealName(**key, *id, name);
}

Result<HekaFs::NewVnode> HekaFs::NewVnodeIn(const pb::Fid& dir, pb::FileType type,
                                            std::string* target, mode_t mode) {
  NewVnode out;
  auto encrypted = Encrypted(dir.cell(), dir.volume());
  if (!encrypted.ok()) return encrypted.status();
  if (!*encrypted) return out;
  if (type == pb::SYMLINK && (mode & 07777) == kMountPointMode && !target->empty() &&
      ((*target)[0] == '#' || (*target)[0] == '%')) {
    return out;  // a mount point: it names a volume, which the VLDB shows anyway
  }
  auto key = VolumeKey(dir.cell(), dir.volume());
  if (!key.ok()) return key.status();
  crypto::Id id = crypto::RandomId();
  switch (type) {
    case pb::DIRECTORY:
      out.client_attr = crypto::EncodeAttr(crypto::Kind::kDirectory, id);
      break;
    case pb::SYMLINK:
      out.client_attr = crypto::EncodeAttr(crypto::Kind::kSymlink, id);
      *target = crypto::SealTarget(**key, id, *target);
      break;
    default: {
      out.client_attr = crypto::EncodeAttr(crypto::Kind::kFile, id);
      crypto::FileCipher cipher(**key, id);
      out.data = cipher.SealChunk(0, chunk_size_, {}, 0);  // the header and one empty block
      break;
    }
  }
  return out;
}

void HekaFs::PlainSizes(google::protobuf::Message* m) {
  if (auto* st = dynamic_cast<pb::FileStatus*>(m)) {
    if (st->type() != pb::FILE) return;
    auto plain = crypto::PlainSize(st->size());
    if (!plain.ok()) {
      // Reads of it fail with EIO (its chunks do not have the sizes a plaintext size gives).
      spdlog::warn("file {}.{}.{} of cell {}: {}: damaged", st->fid().volume(), st->fid().vnode(),
                   st->fid().uniq(), st->fid().cell(), plain.status().message());
    }
    st->set_size(plain.ok() ? *plain : 0);
    return;
  }
  const google::protobuf::Descriptor* d = m->GetDescriptor();
  const google::protobuf::Reflection* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int k = 0; k < r->FieldSize(*m, f); ++k) PlainSizes(r->MutableRepeatedMessage(m, f, k));
    } else if (r->HasField(*m, f)) {
      PlainSizes(r->MutableMessage(m, f));
    }
  }
}

Status HekaFs::SetUpCipher(Handle& h, const pb::FileStatus& st) {
  auto encrypted = Encrypted(st.fid().cell(), st.fid().volume());
  if (!encrypted.ok()) return encrypted.status();
  auto attr = crypto::DecodeAttr(st.client_attr());
  if (!*encrypted) {
    if (attr.ok() && *attr) return DowngradeRefused(st.fid());
    return Status::Ok();
  }
  if (!attr.ok() || !*attr || (*attr)->kind != crypto::Kind::kFile) {
    spdlog::warn("file {}.{}.{} of cell {}, in an encrypted volume, has no valid file ID (its "
                 "client attribute is missing or damaged): EIO",
                 st.fid().volume(), st.fid().vnode(), st.fid().uniq(), st.fid().cell());
    return Error(Code::kIoError, "file without a valid file ID in an encrypted volume");
  }
  auto key = VolumeKey(st.fid().cell(), st.fid().volume());
  if (!key.ok()) return key.status();
  h.key = *key;
  h.file_id = (*attr)->id;
  h.cipher = std::make_unique<crypto::FileCipher>(**key, h.file_id);
  return Status::Ok();
}

void HekaFs::SetChunkRange(bool encrypted, uint64_t index, pb::FetchDataRequest* req) const {
  if (!encrypted) {
    req->set_offset(index * chunk_size_);
    req->set_length(chunk_size_);
    return;
  }
  uint64_t begin = crypto::FileCipher::ChunkBegin(index, chunk_size_);
  req->set_offset(begin);
  req->set_length(crypto::FileCipher::ChunkEnd(index, chunk_size_) - begin);
}

Result<std::string> HekaFs::OpenChunk(Handle& h, uint64_t index, const std::string& sealed,
                                      uint64_t plain_size) {
  auto plain = h.cipher->OpenChunk(index, chunk_size_, sealed, plain_size);
  if (!plain.ok()) {
    spdlog::warn("file {}.{}.{} of cell {}, chunk {}: {}: the read fails ({})", h.fid.volume(),
                 h.fid.vnode(), h.fid.uniq(), h.fid.cell(), index, plain.status().message(),
                 plain.status().code() == Code::kPermissionDenied
                     ? "EACCES: written with another key"
                     : "EIO: damaged or tampered on its server");
  }
  return plain;
}

Result<std::optional<std::string>> HekaFs::SealedPart(Handle& h, uint64_t index,
                                                      uint64_t within, uint64_t n) {
  std::shared_ptr<const std::string> sealed;
  if (h.sealed_memo && h.sealed_memo_index == index && h.sealed_memo_version == h.version) {
    sealed = h.sealed_memo;
  } else if (auto chunk = chunk_cache_->Get(FileKeyOf(h.fid), h.version, index)) {
    sealed = std::make_shared<const std::string>(std::move(*chunk));
    h.sealed_memo = sealed;
    h.sealed_memo_index = index;
    h.sealed_memo_version = h.version;
    h.served = true;
  } else {
    return std::optional<std::string>();
  }
  uint64_t first = within / crypto::kBlockBytes;
  uint64_t last = (within + std::max<uint64_t>(n, 1) - 1) / crypto::kBlockBytes;
  auto plain = h.cipher->OpenBlocks(index, chunk_size_, *sealed, h.base_size, first, last);
  if (!plain.ok()) {
    h.sealed_memo.reset();
    return OpenChunk(h, index, *sealed, h.base_size).status();  // logs why, and fails
  }
  uint64_t skip = within - first * crypto::kBlockBytes;
  if (plain->size() <= skip) return std::optional<std::string>(std::string());
  return std::optional<std::string>(plain->substr(skip, n));
}

Status HekaFs::AddResealedChunks(Handle& h) {
  auto last_of = [&](uint64_t size) { return size == 0 ? 0 : (size - 1) / chunk_size_; };
  uint64_t last = last_of(h.size);
  std::set<uint64_t> need;
  if (h.truncated) {
    // Nothing of the old content shows through: every chunk up to the end is written.
    for (uint64_t i = 0; i <= last; ++i) need.insert(i);
  } else if (h.size != h.base_size) {
    need.insert(last);  // its last block is sealed as the final one
    // Growing: the old last block loses its final flag, and what lies between is zeros.
    if (h.size > h.base_size) {
      for (uint64_t i = last_of(h.base_size); i <= last; ++i) need.insert(i);
    }
  }
  for (uint64_t i : need) {
    if (h.dirty.count(i)) continue;
    std::string base;
    if (!h.truncated && i * chunk_size_ < h.base_size) {
      uint64_t size = h.size;  // ChunkFor takes the server's size for a handle not yet dirty
      auto chunk = ChunkFor(h.who, h, i);
      h.size = size;
      if (!chunk.ok()) return chunk.status();
      base = **chunk;
    }
    h.dirty.emplace(i, std::move(base));
  }
  return Status::Ok();
}

Result<pb::FileStatus> HekaFs::TruncateEncrypted(const Who& who, uint64_t ino, uint64_t size) {
  auto st = StatusOf(who, ino);
  if (!st.ok()) return st.status();
  if (st->type() == pb::DIRECTORY) return Error(Code::kIsDirectory, "is a directory");
  if (st->size() == size) return *st;
  Handle h;
  std::lock_guard hl(h.mu);
  h.ino = ino;
  h.fid = st->fid();
  h.who = who;
  h.readable = true;  // the new last block is the old one, cut and sealed again
  h.writable = true;
  h.version = st->data_version();
  h.base_size = st->size();
  h.size = size;
  h.truncated = size == 0;
  if (Status s = SetUpCipher(h, *st); !s.ok()) return s;
  if (Status s = AddResealedChunks(h); !s.ok()) return s;
  if (Status s = StoreDirty(h); !s.ok()) return s;
  Forget(h.fid);  // its status changed with the store
  return StatusOf(who, ino);
}

}  // namespace heka::cm
