// Volume dumps: the stream format is docs/formats/dump.md.
#include "fileserver/volume/volume_dump.h"

#include <google/protobuf/io/coded_stream.h>
#include <openssl/evp.h>

#include <algorithm>
#include <set>

namespace heka::fs {
namespace {

EVP_MD_CTX* NewSha() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx != nullptr) EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  return ctx;
}

void ShaUpdate(void* ctx, std::string_view bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx), bytes.data(), bytes.size());
}

std::string ShaFinal(void* ctx) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx), out, &n);
  return std::string(reinterpret_cast<char*>(out), n);
}

Status Damaged(const std::string& why) {
  return Error(Code::kInvalidArgument, "not a whole Heka volume dump: " + why);
}

// Parses one varint-length-prefixed record at the start of `bytes`. Returns the bytes it took,
// 0 when `bytes` does not hold the whole record yet.
Result<size_t> ParseRecord(std::string_view bytes, dump::DumpRecord* record) {
  constexpr uint64_t kMaxRecord = 256ull << 20;
  uint64_t length = 0;
  size_t used = 0;
  for (int shift = 0;; shift += 7) {
    if (used == bytes.size()) return size_t{0};
    if (shift > 63) return Damaged("a record length is malformed");
    uint8_t b = static_cast<uint8_t>(bytes[used++]);
    length |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) break;
  }
  if (length > kMaxRecord) return Damaged("a record claims " + std::to_string(length) + " bytes");
  if (bytes.size() - used < length) return size_t{0};
  if (!record->ParseFromArray(bytes.data() + used, static_cast<int>(length))) {
    return Damaged("a record does not parse");
  }
  return used + length;
}

}  // namespace

// ---- dumping --------------------------------------------------------------------------------

VolumeDumper::VolumeDumper(Volume& vol, dump::DumpHeader header, std::vector<uint64_t> vnodes)
    : vol_(vol), header_(std::move(header)), vnodes_(std::move(vnodes)), sha_(NewSha()) {
  progress_.vnodes_total = vnodes_.size();
}

VolumeDumper::~VolumeDumper() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(sha_)); }

Result<std::unique_ptr<VolumeDumper>> VolumeDumper::Start(Volume& vol, uint64_t from_serial,
                                                          dump::DumpHeader header) {
  std::lock_guard lock(vol.mu_);
  SqliteDb& db = *vol.db_;
  {
    SqliteQuery q(db,
                  "SELECT id, name, quota, serial, chunk_size, inline_limit, next_vnode, "
                  "next_uniq FROM header");
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) return Error(Code::kIoError, "volume header missing");
    header.set_format(1);
    header.set_volume_id(q.Uint(0));
    header.set_name(q.Str(1));
    header.set_quota_bytes(q.Uint(2));
    header.set_serial(q.Uint(3));
    header.set_chunk_size(q.Uint(4));
    header.set_inline_limit(q.Uint(5));
    header.set_next_vnode(q.Uint(6));
    header.set_next_uniq(q.Uint(7));
    header.set_from_serial(from_serial);
  }
  if (from_serial > header.serial()) {
    return Error(Code::kInvalidArgument,
                 "volume " + std::to_string(header.volume_id()) + " is at change serial " +
                     std::to_string(header.serial()) + ", so it has no changes since serial " +
                     std::to_string(from_serial));
  }
  std::vector<uint64_t> vnodes;
  SqliteQuery q(db, "SELECT vnode, uniq, serial FROM vnodes ORDER BY vnode");
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (q.Uint(2) > from_serial) vnodes.push_back(q.Uint(0));
    if (from_serial > 0) {
      header.add_live(q.Uint(0));
      header.add_live(q.Uint(1));
    }
  }
  return std::unique_ptr<VolumeDumper>(new VolumeDumper(vol, std::move(header), std::move(vnodes)));
}

void VolumeDumper::Append(const dump::DumpRecord& record, std::string* out) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.WriteVarint64(record.ByteSizeLong());
    record.SerializeToCodedStream(&coded);
  }
  if (!record.has_end()) ShaUpdate(sha_, bytes);
  progress_.bytes += bytes.size();
  ++records_;
  out->append(bytes);
}

Result<bool> VolumeDumper::Next(size_t max_bytes, std::string* out) {
  if (ended_) return true;
  const size_t start = out->size();
  auto room = [&] { return out->size() - start < max_bytes; };
  if (!header_sent_) {
    ShaUpdate(sha_, kDumpMagic);
    out->append(kDumpMagic);
    progress_.bytes += kDumpMagic.size();
    dump::DumpRecord r;
    *r.mutable_header() = header_;
    Append(r, out);
    header_sent_ = true;
  }
  std::lock_guard lock(vol_.mu_);
  SqliteDb& db = *vol_.db_;
  while (room()) {
    if (next_chunk_ < chunks_.size()) {  // the chunks of the vnode dumped last
      const dump::DumpChunkRef& ref = chunks_[next_chunk_];
      auto v = vol_.LoadVnode(chunk_vnode_);
      if (!v.ok()) return v.status();
      ChunkKey key{chunk_vnode_, v->uniq, ref.index(), ref.dv()};
      // The disk reads a few chunks ahead while this one is sent.
      constexpr size_t kReadAhead = 4;
      for (size_t i = next_chunk_ == 0 ? 1 : kReadAhead; i <= kReadAhead; ++i) {
        if (next_chunk_ + i >= chunks_.size()) break;
        const dump::DumpChunkRef& ahead = chunks_[next_chunk_ + i];
        vol_.chunks_.WillNeed({chunk_vnode_, v->uniq, ahead.index(), ahead.dv()});
      }
      auto data = vol_.chunks_.Read(key, 0, ref.length());
      if (!data.ok()) return data.status().WithContext("chunk " + vol_.chunks_.PathOf(key));
      if (data->size() != ref.length()) {
        return Error(Code::kIoError, "chunk " + vol_.chunks_.PathOf(key) + " is short");
      }
      dump::DumpRecord r;
      dump::DumpChunk* c = r.mutable_chunk();
      c->set_vnode(chunk_vnode_);
      c->set_index(ref.index());
      c->set_data(data->data(), data->size());
      Append(r, out);
      ++next_chunk_;
      continue;
    }
    if (next_vnode_ == vnodes_.size()) {
      dump::DumpRecord r;
      r.mutable_end()->set_records(records_);
      r.mutable_end()->set_sha256(ShaFinal(sha_));
      Append(r, out);
      ended_ = true;
      return true;
    }
    const uint64_t vnode = vnodes_[next_vnode_++];
    dump::DumpRecord r;
    dump::DumpVnode* d = r.mutable_vnode();
    {
      SqliteQuery q(db,
                    "SELECT vnode, uniq, type, mode, owner, grp, size, mtime_ns, ctime_ns, dv, "
                    "links, parent, serial, attr, target, target IS NOT NULL FROM vnodes "
                    "WHERE vnode = ?",
                    vnode);
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) return Error(Code::kIoError, "vnode " + std::to_string(vnode) + " vanished");
      d->set_vnode(q.Uint(0));
      d->set_uniq(q.Uint(1));
      d->set_type(static_cast<uint32_t>(q.Uint(2)));
      d->set_mode(static_cast<uint32_t>(q.Uint(3)));
      d->set_owner(q.Int(4));
      d->set_group(q.Int(5));
      d->set_size(q.Uint(6));
      d->set_mtime_ns(q.Int(7));
      d->set_ctime_ns(q.Int(8));
      d->set_data_version(q.Uint(9));
      d->set_links(static_cast<uint32_t>(q.Uint(10)));
      d->set_parent(q.Uint(11));
      d->set_serial(q.Uint(12));
      d->set_client_attr(q.Str(13));
      d->set_has_target(q.Int(15) != 0);
      if (d->has_target()) d->set_target(q.Str(14));
    }
    {
      SqliteQuery q(db, "SELECT name, child, child_uniq FROM dirents WHERE dir = ? ORDER BY name",
                    vnode);
      for (;;) {
        auto row = q.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        dump::DumpDirent* e = d->add_entries();
        e->set_name(q.Str(0));
        e->set_child(q.Uint(1));
        e->set_child_uniq(q.Uint(2));
      }
    }
    {
      SqliteQuery q(db, "SELECT principal, rights, negative FROM acls WHERE dir = ?", vnode);
      for (;;) {
        auto row = q.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        dump::DumpAcl* a = d->add_acl();
        a->set_principal(q.Int(0));
        a->set_rights(static_cast<uint32_t>(q.Uint(1)));
        a->set_negative(q.Int(2) != 0);
      }
    }
    {
      SqliteQuery q(db, "SELECT data FROM inline_data WHERE vnode = ?", vnode);
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (*row) {
        d->set_has_inline(true);
        d->set_inline_data(q.Str(0));
      }
    }
    chunks_.clear();
    next_chunk_ = 0;
    chunk_vnode_ = vnode;
    {
      SqliteQuery q(db, "SELECT idx, len, dv FROM chunks WHERE vnode = ? ORDER BY idx", vnode);
      for (;;) {
        auto row = q.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        dump::DumpChunkRef* c = d->add_chunks();
        c->set_index(q.Uint(0));
        c->set_length(q.Uint(1));
        c->set_dv(q.Uint(2));
        chunks_.push_back(*c);
      }
    }
    Append(r, out);
    ++progress_.vnodes_done;
  }
  return false;
}

Result<dump::DumpHeader> ReadDumpHeader(std::string_view bytes) {
  if (bytes.substr(0, kDumpMagic.size()) != kDumpMagic) {
    return Damaged("it does not start with " + std::string(kDumpMagic));
  }
  dump::DumpRecord r;
  auto used = ParseRecord(bytes.substr(kDumpMagic.size()), &r);
  if (!used.ok()) return used.status();
  if (*used == 0 || !r.has_header()) return Damaged("no header record");
  return r.header();
}

// ---- restoring ------------------------------------------------------------------------------

VolumeRestorer::VolumeRestorer(Volume& vol) : vol_(vol), sha_(NewSha()) {}

VolumeRestorer::~VolumeRestorer() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(sha_)); }

Status VolumeRestorer::Feed(std::string_view bytes) {
  if (ended_ && !bytes.empty()) return Damaged("bytes after the end record");
  buffer_.append(bytes);
  size_t pos = 0;
  if (!magic_seen_) {
    if (buffer_.size() < kDumpMagic.size()) return Status::Ok();
    if (std::string_view(buffer_).substr(0, kDumpMagic.size()) != kDumpMagic) {
      return Damaged("it does not start with " + std::string(kDumpMagic));
    }
    ShaUpdate(sha_, kDumpMagic);
    pos = kDumpMagic.size();
    magic_seen_ = true;
  }
  std::lock_guard lock(vol_.mu_);
  if (Status s = vol_.MarkDirty(); !s.ok()) return s;
  // One SQLite transaction per Feed: the staging volume is thrown away on any failure.
  if (Status s = vol_.db_->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  std::vector<ChunkKey> dead;
  Status s;
  while (s.ok() && !ended_) {
    dump::DumpRecord record;
    std::string_view rest = std::string_view(buffer_).substr(pos);
    auto used = ParseRecord(rest, &record);
    if (!used.ok()) {
      s = used.status();
      break;
    }
    if (*used == 0) break;
    if (!record.has_end()) ShaUpdate(sha_, rest.substr(0, *used));
    progress_.bytes += *used;
    pos += *used;
    if (record.has_vnode()) {  // the previous vnode's chunks must all have come
      if (!expected_.empty()) {
        s = Damaged("chunks of vnode " + std::to_string(chunk_vnode_) + " are missing");
        break;
      }
      // The chunk files the record replaces go after the commit, except those it names
      // again (same vnode, uniq, index and data version: the same bytes, written again
      // below, before the removal would run).
      const dump::DumpVnode& v = record.vnode();
      std::vector<ChunkKey> old;
      s = OldChunks(v.vnode(), &old);
      if (!s.ok()) break;
      for (const ChunkKey& k : old) {
        const bool kept = k.uniq == v.uniq() && std::any_of(v.chunks().begin(), v.chunks().end(),
                                                            [&](const dump::DumpChunkRef& c) {
                                                              return c.index() == k.index &&
                                                                     c.dv() == k.dv;
                                                            });
        if (!kept) dead.push_back(k);
      }
    }
    s = Apply(record);
    ++records_;
  }
  buffer_.erase(0, pos);
  if (s.ok()) s = vol_.db_->Exec("COMMIT");
  if (!s.ok()) {
    (void)vol_.db_->Exec("ROLLBACK");
    return s;
  }
  // Replaced chunk files go after the commit (the ones named again were kept out of `dead`).
  vol_.DropChunks(dead);
  return Status::Ok();
}

Status VolumeRestorer::OldChunks(uint64_t vnode, std::vector<ChunkKey>* dead) {
  SqliteQuery q(*vol_.db_, "SELECT c.idx, c.dv, v.uniq FROM chunks c JOIN vnodes v "
                           "ON v.vnode = c.vnode WHERE c.vnode = ?",
                vnode);
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Ok();
    dead->push_back({vnode, q.Uint(2), q.Uint(0), q.Uint(1)});
  }
}

Status VolumeRestorer::Apply(const dump::DumpRecord& record) {
  if (!header_seen_ && !record.has_header()) return Damaged("the first record is not the header");
  if (record.has_header()) return ApplyHeader(record.header());
  if (record.has_vnode()) return ApplyVnode(record.vnode());
  if (record.has_chunk()) return ApplyChunk(record.chunk());
  if (record.has_end()) return ApplyEnd(record.end());
  return Damaged("a record of an unknown kind (a newer format?)");
}

Status VolumeRestorer::ApplyHeader(const dump::DumpHeader& h) {
  if (header_seen_) return Damaged("a second header");
  if (h.format() != 1) {
    return Error(Code::kInvalidArgument,
                 "dump format " + std::to_string(h.format()) + " is newer than this server's (1)");
  }
  if (h.chunk_size() != vol_.chunk_size()) {
    return Error(Code::kInvalidArgument, "the dump's chunk size " + std::to_string(h.chunk_size()) +
                                             " is not the volume's " +
                                             std::to_string(vol_.chunk_size()));
  }
  if (h.from_serial() > 0) {
    SqliteQuery q(*vol_.db_, "SELECT serial FROM header");
    auto row = q.Step();
    if (!row.ok()) return row.status();
    const uint64_t have = *row ? q.Uint(0) : 0;
    if (have < h.from_serial()) {
      return Error(Code::kInvalidArgument,
                   "this incremental dump holds the changes after serial " +
                       std::to_string(h.from_serial()) + ", but volume " +
                       std::to_string(vol_.id()) + " holds changes up to serial " +
                       std::to_string(have) + " only: restore the dump before it first");
    }
  }
  header_ = h;
  header_seen_ = true;
  progress_.vnodes_total = 0;  // not known from the header
  return Status::Ok();
}

Status VolumeRestorer::ApplyVnode(const dump::DumpVnode& v) {
  SqliteDb& db = *vol_.db_;
  if (v.vnode() == 0 || v.type() < 1 || v.type() > 3) return Damaged("a vnode record is malformed");
  for (const char* sql : {"DELETE FROM chunks WHERE vnode = ?", "DELETE FROM inline_data WHERE vnode = ?",
                          "DELETE FROM dirents WHERE dir = ?", "DELETE FROM acls WHERE dir = ?"}) {
    if (Status s = SqliteQuery(db, sql, v.vnode()).Run(); !s.ok()) return s;
  }
  {
    SqliteQuery q(db, "INSERT OR REPLACE INTO vnodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  v.vnode(), v.uniq(), v.type(), v.mode(), v.owner(), v.group(), v.size(),
                  v.mtime_ns(), v.ctime_ns(), v.data_version(), v.links(), v.parent(), v.serial(),
                  std::string_view(v.client_attr()));
    if (v.has_target()) {
      q.Bind(std::string_view(v.target()));
    }  // else NULL: the unbound last parameter
    if (Status s = q.Run(); !s.ok()) return s;
  }
  for (const dump::DumpDirent& e : v.entries()) {
    Status s = SqliteQuery(db, "INSERT INTO dirents VALUES (?, ?, ?, ?)", v.vnode(),
                           std::string_view(e.name()), e.child(), e.child_uniq())
                   .Run();
    if (!s.ok()) return s;
  }
  for (const dump::DumpAcl& a : v.acl()) {
    Status s = SqliteQuery(db, "INSERT INTO acls VALUES (?, ?, ?, ?)", v.vnode(), a.principal(),
                           a.negative() ? 1 : 0, a.rights())
                   .Run();
    if (!s.ok()) return s;
  }
  if (v.has_inline()) {
    Status s = SqliteQuery(db, "INSERT INTO inline_data VALUES (?, ?)", v.vnode(),
                           std::string_view(v.inline_data()))
                   .Run();
    if (!s.ok()) return s;
  }
  chunk_vnode_ = v.vnode();
  chunk_uniq_ = v.uniq();
  for (const dump::DumpChunkRef& c : v.chunks()) {
    if (c.length() > vol_.chunk_size()) return Damaged("a chunk is larger than the chunk size");
    Status s = SqliteQuery(db, "INSERT INTO chunks VALUES (?, ?, ?, ?)", v.vnode(), c.index(),
                           c.dv(), c.length())
                   .Run();
    if (!s.ok()) return s;
    expected_[c.index()] = c;
  }
  ++progress_.vnodes_done;
  return Status::Ok();
}

Status VolumeRestorer::ApplyChunk(const dump::DumpChunk& c) {
  auto it = expected_.find(c.index());
  if (c.vnode() != chunk_vnode_ || it == expected_.end()) {
    return Damaged("an unexpected chunk " + std::to_string(c.index()) + " of vnode " +
                   std::to_string(c.vnode()));
  }
  if (c.data().size() != it->second.length()) return Damaged("a chunk has the wrong length");
  ChunkKey key{chunk_vnode_, chunk_uniq_, c.index(), it->second.dv()};
  expected_.erase(it);
  // Durable at Finish, all at once: a restore that does not finish is thrown away whole.
  written_.push_back(key);
  return vol_.chunks_.WriteUnsynced(
      key, ByteView(reinterpret_cast<const uint8_t*>(c.data().data()), c.data().size()));
}

Status VolumeRestorer::ApplyEnd(const dump::DumpEnd& e) {
  if (!expected_.empty()) {
    return Damaged("chunks of vnode " + std::to_string(chunk_vnode_) + " are missing");
  }
  if (e.records() != records_ || e.sha256() != ShaFinal(sha_)) {
    return Damaged("its checksum does not match: the file was changed or cut");
  }
  ended_ = true;
  return Status::Ok();
}

Status VolumeRestorer::Finish() {
  if (!ended_) return Damaged("it stops before its end record");
  if (Status s = vol_.chunks_.SyncWritten(written_); !s.ok()) return s;
  written_.clear();
  std::lock_guard lock(vol_.mu_);
  std::vector<ChunkKey> dead;
  return vol_.RunTxn(
      [&]() -> Status {
        SqliteDb& db = *vol_.db_;
        if (header_.from_serial() > 0) {  // what the volume no longer holds goes
          std::set<std::pair<uint64_t, uint64_t>> live;
          for (int i = 0; i + 1 < header_.live_size(); i += 2) {
            live.emplace(header_.live(i), header_.live(i + 1));
          }
          std::vector<uint64_t> gone;
          {
            SqliteQuery q(db, "SELECT vnode, uniq FROM vnodes");
            for (;;) {
              auto row = q.Step();
              if (!row.ok()) return row.status();
              if (!*row) break;
              if (!live.contains({q.Uint(0), q.Uint(1)})) gone.push_back(q.Uint(0));
            }
          }
          for (uint64_t vnode : gone) {
            if (Status s = OldChunks(vnode, &dead); !s.ok()) return s;
            for (const char* sql :
                 {"DELETE FROM chunks WHERE vnode = ?", "DELETE FROM inline_data WHERE vnode = ?",
                  "DELETE FROM dirents WHERE dir = ?", "DELETE FROM acls WHERE dir = ?",
                  "DELETE FROM vnodes WHERE vnode = ?"}) {
              if (Status s = SqliteQuery(db, sql, vnode).Run(); !s.ok()) return s;
            }
          }
        }
        return SqliteQuery(
                   db,
                   "UPDATE header SET quota = ?, serial = MAX(serial, ?), "
                   "next_vnode = MAX(next_vnode, ?, (SELECT COALESCE(MAX(vnode), 0) + 1 FROM vnodes)), "
                   "next_uniq = MAX(next_uniq, ?, (SELECT COALESCE(MAX(uniq), 0) + 1 FROM vnodes)), "
                   "usage = (SELECT COALESCE(SUM(size), 0) FROM vnodes WHERE type != ?)",
                   header_.quota_bytes(), header_.serial(), header_.next_vnode(),
                   header_.next_uniq(), static_cast<int>(VnodeType::kDir))
            .Run();
      },
      &dead);
}

}  // namespace heka::fs
