// heka vos dump / heka vos restore — a volume to a file (or standard output) and back, as
// OpenAFS's. A dump is full or incremental from a change serial the volume keeps (the dump's
// last line says which serial to pass to -fromserial next time); it carries deletes and
// renames, so an incremental restore brings a restored volume to the dumped state. The format
// is docs/formats/dump.md. An encrypted volume's dump holds its sealed bytes only, and its
// restore is readable with the same cell key.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "cachemgr/crypto/crypto.h"
#include "cmd/commands.h"
#include "cmd/vos_common.h"
#include "fileserver/volume/volume_dump.h"

namespace heka::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A progress line on stderr at most once a second (and always for the last one).
class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)) {}
  void Show(uint64_t done, uint64_t total, uint64_t bytes, bool last) {
    if (!last && Since(shown_) < 1.0) return;
    shown_ = Clock::now();
    double seconds = std::max(Since(start_), 1e-3);
    std::string count = total > 0 ? std::to_string(done) + "/" + std::to_string(total)
                                  : std::to_string(done);
    std::fprintf(stderr, "%s: %s vnodes, %.1f MB, %.1f MB/s\n", what_.c_str(), count.c_str(),
                 static_cast<double>(bytes) / 1e6, static_cast<double>(bytes) / 1e6 / seconds);
  }

 private:
  std::string what_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point shown_ = Clock::now();
};

Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error(Code::kIoError, "writing " + path + ": " + std::strerror(errno));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Up to `want` more bytes of `fd` appended to `out`; false at the end of the file.
Result<bool> ReadSome(int fd, size_t want, std::string* out, const std::string& path) {
  size_t old = out->size();
  out->resize(old + want);
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::read(fd, out->data() + old + got, want - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error(Code::kIoError, "reading " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out->resize(old + got);
  return got == want;
}

constexpr size_t kPiece = 4 << 20;

}  // namespace

// heka vos dump -id NAME_OR_ID -cell C [-file F] [-fromserial N] [-time 0]
int VosDump(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "vos dump", argc, argv,
      {{"id", true, "volume name or id; NAME.backup dumps the backup (required)"},
       {"cell", true, "the cell (required)"},
       {"file", true, "where the dump goes (default: standard output)"},
       {"fromserial", true,
        "incremental: only the changes after this change serial (printed by the dump before)"},
       {"time", true, "as OpenAFS: only 0 (a full dump); use -fromserial for increments"}},
      {"id", "cell"});
  if (c.exit) return *c.exit;
  uint64_t from_serial = 0;
  if (c.Has("fromserial")) {
    const std::string text = c.Get("fromserial");
    char* end = nullptr;
    from_serial = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') {
      return UsageError(c.name, Error(Code::kInvalidArgument, "-fromserial wants a number"));
    }
  }
  if (c.Has("time") && c.Get("time") != "0") {
    return UsageError(c.name, Error(Code::kInvalidArgument,
                                    "-time takes only 0 here; for an incremental dump pass "
                                    "-fromserial with the serial the last dump printed"));
  }
  std::string name = c.Get("id");
  bool backup = false;
  if (name.size() > 7 && name.ends_with(".backup")) {
    backup = true;
    name.resize(name.size() - 7);
  }
  auto entry = c.db->Run(c.db->client->GetVolume(VolumeRequest(c.Get("cell"), name)));
  if (!entry.ok()) return c.Fail(entry.status());
  const db::Volume& v = entry->volume();
  const db::VolumeSite* site = nullptr;
  for (const db::VolumeSite& s : v.sites()) {
    if (s.type() == (backup ? db::VolumeSite::BK : db::VolumeSite::RW)) site = &s;
  }
  if (site == nullptr) {
    return c.Fail(Error(Code::kNotFound, "volume " + v.name() + " has no " +
                                             (backup ? "backup (run heka vos backup)" : "RW site")));
  }
  auto server = ServerByUuid(*c.db, site->server_uuid());
  if (!server.ok()) return c.Fail(server.status());
  const std::string path = c.Has("file") ? c.Get("file") : "standard output";
  int fd = STDOUT_FILENO;
  if (c.Has("file")) {
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return c.Fail(Error(Code::kIoError, "creating " + path + ": " + std::strerror(errno)));
  }
  const uint64_t id = v.id() + (backup ? 2 : 0);
  auto start = Clock::now();
  Progress progress("Dumping volume " + std::to_string(id));
  VolumeServerClient fs(*c.db, *server);
  fs::pb::DumpVolumeRequest req;
  req.set_cell(v.cell());
  req.set_id(id);
  req.set_from_serial(from_serial);
  req.set_encrypted(v.encrypted());
  req.set_key_fingerprint(v.key_fingerprint());
  uint64_t bytes = 0;
  fs::pb::DumpVolumeReply last;
  Status s;
  for (;;) {
    auto r = fs.Dump(req);
    if (!r.ok()) {
      s = r.status().WithContext("file server " + server->address);
      break;
    }
    s = WriteAll(fd, r->data(), path);
    if (!s.ok()) break;
    bytes += r->data().size();
    progress.Show(r->vnodes_done(), r->vnodes_total(), bytes, r->done());
    req.set_session(r->session());
    if (r->done()) {
      last = std::move(*r);
      break;
    }
  }
  if (s.ok() && fd != STDOUT_FILENO && ::fsync(fd) != 0) {
    s = Error(Code::kIoError, "writing " + path + ": " + std::strerror(errno));
  }
  if (fd != STDOUT_FILENO) ::close(fd);
  if (!s.ok()) {
    if (c.Has("file")) ::unlink(path.c_str());  // a partial dump is no dump
    return c.Fail(s);
  }
  std::fprintf(stderr,
               "Dumped volume %s (id %llu, %s) to %s: %llu vnodes, %llu bytes in %.2f s; it is at "
               "serial %llu (next incremental: -fromserial %llu)\n",
               v.name().c_str(), static_cast<unsigned long long>(id),
               from_serial == 0 ? "full" : ("changes after serial " + std::to_string(from_serial)).c_str(),
               path.c_str(), static_cast<unsigned long long>(last.vnodes_done()),
               static_cast<unsigned long long>(bytes), Since(start),
               static_cast<unsigned long long>(last.serial()),
               static_cast<unsigned long long>(last.serial()));
  return kExitOk;
}

// heka vos restore -server S -partition P -name N -cell C [-file F]
//                  [-overwrite full|incremental]
int VosRestore(int argc, char** argv) {
  DbCommand c = StartDbCommand(
      "vos restore", argc, argv,
      {{"server", true, "file server: UUID, host:port or host (required)"},
       {"partition", true, "partition on that server, e.g. /vicepa (required)"},
       {"name", true, "volume name (required)"},
       {"cell", true, "the cell (required)"},
       {"file", true, "the dump (default: standard input)"},
       {"overwrite", true,
        "when the volume exists: full (replace it) or incremental (apply on top)"}},
      {"server", "partition", "name", "cell"});
  if (c.exit) return *c.exit;
  const std::string overwrite = c.Get("overwrite");
  if (c.Has("overwrite") && overwrite != "full" && overwrite != "incremental" && overwrite != "f" &&
      overwrite != "i") {
    return UsageError(c.name, Error(Code::kInvalidArgument, "-overwrite is full or incremental"));
  }
  const std::string path = c.Has("file") ? c.Get("file") : "standard input";
  int fd = STDIN_FILENO;
  if (c.Has("file")) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return c.Fail(Error(Code::kIoError, "opening " + path + ": " + std::strerror(errno)));
  }
  struct Closer {
    int fd;
    ~Closer() {
      if (fd != STDIN_FILENO) ::close(fd);
    }
  } closer{fd};
  // The first piece holds at least the header (which lists every vnode of an incremental).
  std::string piece;
  bool more = true;
  Result<dump::DumpHeader> header = Error(Code::kInvalidArgument, "empty");
  while (true) {
    auto r = ReadSome(fd, kPiece, &piece, path);
    if (!r.ok()) return c.Fail(r.status());
    more = *r;
    header = fs::ReadDumpHeader(piece);
    if (header.ok() || !more || piece.size() > (256u << 20)) break;
  }
  if (!header.ok()) return c.Fail(header.status().WithContext(path));
  const bool incremental = header->from_serial() > 0;

  auto server = ResolveServer(*c.db, c.Get("server"));
  if (!server.ok()) return c.Fail(server.status());
  if (Status s = CheckPartition(*server, c.Get("partition")); !s.ok()) return c.Fail(s);
  auto existing = c.db->Run(c.db->client->GetVolume(VolumeRequest(c.Get("cell"), c.Get("name"), true)));
  if (!existing.ok() && existing.status().code() != Code::kNotFound) return c.Fail(existing.status());
  uint64_t id = 0;
  bool created = false;
  if (existing.ok()) {
    const db::Volume& v = existing->volume();
    if (!c.Has("overwrite")) {
      return c.Fail(Error(Code::kAlreadyExists,
                          "volume " + v.name() + " exists: add -overwrite full to replace it or "
                          "-overwrite incremental to apply this dump on top"));
    }
    if (incremental != (overwrite[0] == 'i')) {
      return c.Fail(Error(Code::kInvalidArgument,
                          std::string(path) + " is a " + (incremental ? "n incremental" : " full") +
                              " dump; use -overwrite " + (incremental ? "incremental" : "full")));
    }
    bool here = false;
    for (const db::VolumeSite& s : v.sites()) {
      if (s.type() == db::VolumeSite::RW && s.server_uuid() == server->server.uuid() &&
          s.partition() == c.Get("partition"))
        here = true;
    }
    if (!here) {
      return c.Fail(Error(Code::kInvalidArgument,
                          "volume " + v.name() + " lives elsewhere: restore it on its RW site "
                          "(heka vos examine -id " + v.name() + ")"));
    }
    if (v.encrypted() != header->encrypted() ||
        (v.encrypted() && v.key_fingerprint() != header->key_fingerprint())) {
      return c.Fail(Error(Code::kInvalidArgument,
                          "the dump's encryption (key) is not the volume's: restore it under a new name"));
    }
    id = v.id();
  } else {
    if (incremental) {
      return c.Fail(Error(Code::kNotFound, "no volume " + c.Get("name") +
                                               " to apply this incremental dump to: restore the "
                                               "full dump first"));
    }
    std::optional<std::string> fingerprint;
    if (header->encrypted()) fingerprint = header->key_fingerprint();
    auto made = CreateEntry(c, *server, header->quota_bytes(), fingerprint);
    if (!made.ok()) return c.Fail(made.status());
    id = *made;
    created = true;
  }

  auto start = Clock::now();
  Progress progress("Restoring volume " + std::to_string(id));
  VolumeServerClient fs(*c.db, *server);
  fs::pb::RestoreVolumeRequest req;
  req.set_cell(c.Get("cell"));
  req.set_id(id);
  req.set_name(c.Get("name"));
  uint64_t bytes = 0;
  Status s;
  fs::pb::RestoreVolumeReply rep;
  while (true) {
    bytes += piece.size();
    req.set_data(std::move(piece));
    piece.clear();
    if (more) {
      auto r = ReadSome(fd, kPiece, &piece, path);
      if (!r.ok()) {
        s = r.status();
        break;
      }
      more = *r;
    }
    req.set_last(!more && piece.empty());
    auto r = fs.Restore(req);
    if (!r.ok()) {
      s = r.status().WithContext("file server " + server->address);
      break;
    }
    req.set_session(r->session());
    progress.Show(r->vnodes_done(), 0, bytes, req.last());
    if (req.last()) {
      rep = std::move(*r);
      break;
    }
  }
  if (!s.ok()) return c.Fail(created ? Undo(c, fs, id, s) : s);
  std::fprintf(stderr,
               "Restored volume %s (id %llu, %s dump of volume %llu at serial %llu) on partition "
               "%s of %s: %llu files in %.2f s\n",
               c.Get("name").c_str(), static_cast<unsigned long long>(id),
               incremental ? "incremental" : "full",
               static_cast<unsigned long long>(header->volume_id()),
               static_cast<unsigned long long>(header->serial()), c.Get("partition").c_str(),
               server->address.c_str(), static_cast<unsigned long long>(rep.status().files()),
               Since(start));
  if (header->encrypted()) {
    std::fprintf(stderr, "    encrypted, key fingerprint %s\n",
                 cm::crypto::Hex(reinterpret_cast<const uint8_t*>(header->key_fingerprint().data()),
                                 header->key_fingerprint().size())
                     .c_str());
  }
  return kExitOk;
}

}  // namespace heka::cli
