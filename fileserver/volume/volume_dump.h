// Volume dumps (docs/formats/dump.md): VolumeDumper writes a volume as a stream, full or
// incremental from a change serial; VolumeRestorer applies such a stream to a volume. Both
// work on a volume that nobody else changes meanwhile: the file server dumps a clone and
// restores into a staging volume that it swaps in only when the whole stream was applied.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fileserver/volume/volume.h"
#include "proto/dump.pb.h"

namespace heka::fs {

inline constexpr std::string_view kDumpMagic = "HEKADMP1";

// Progress of a dump or a restore, for progress lines.
struct DumpProgress {
  uint64_t vnodes_total = 0;  // vnodes the stream holds (known to the dumper from the start)
  uint64_t vnodes_done = 0;
  uint64_t bytes = 0;         // stream bytes so far
};

class VolumeDumper {
 public:
  // Dumps `vol` whole (from_serial 0) or the changes after `from_serial`. `header` carries
  // what the volume does not know (cell, encrypted, key fingerprint); the rest is filled in.
  // REQUIRES: `vol` outlives the dumper and does not change meanwhile.
  static Result<std::unique_ptr<VolumeDumper>> Start(Volume& vol, uint64_t from_serial,
                                                     dump::DumpHeader header);
  ~VolumeDumper();
  // Appends the next part of the stream (about max_bytes, at least one record) to `out`.
  // Returns true once the end record has been appended.
  Result<bool> Next(size_t max_bytes, std::string* out);
  const DumpProgress& progress() const { return progress_; }
  const dump::DumpHeader& header() const { return header_; }

 private:
  VolumeDumper(Volume& vol, dump::DumpHeader header, std::vector<uint64_t> vnodes);
  void Append(const dump::DumpRecord& record, std::string* out);

  Volume& vol_;
  dump::DumpHeader header_;
  std::vector<uint64_t> vnodes_;  // to dump, in order
  size_t next_vnode_ = 0;
  // The chunks of the vnode dumped last, still to send.
  uint64_t chunk_vnode_ = 0;
  std::vector<dump::DumpChunkRef> chunks_;
  size_t next_chunk_ = 0;
  bool header_sent_ = false;
  bool ended_ = false;
  uint64_t records_ = 0;
  void* sha_ = nullptr;  // EVP_MD_CTX, over every byte before the end record
  DumpProgress progress_;
};

// Reads the header record at the start of a dump stream (for `vos restore`, which needs the
// name, quota and key facts before it sends the stream). kInvalidArgument if `bytes` does not
// start with a dump header.
Result<dump::DumpHeader> ReadDumpHeader(std::string_view bytes);

class VolumeRestorer {
 public:
  // Applies a stream to `vol`: a new, empty volume for a full dump, or a copy of the volume
  // an incremental dump applies to (refused unless that volume holds the changes up to the
  // dump's from_serial). REQUIRES: `vol` outlives the restorer, nobody else changes it.
  explicit VolumeRestorer(Volume& vol);
  ~VolumeRestorer();
  // Any split of the stream, in order.
  Status Feed(std::string_view bytes);
  // After the last byte: checks that the stream was whole, deletes what an incremental dump
  // no longer lists and sets the volume header (serial, quota, counters).
  Status Finish();
  const dump::DumpHeader& header() const { return header_; }
  const DumpProgress& progress() const { return progress_; }

 private:
  // The chunk files of `vnode` as the volume has it now (to go once the change commits).
  Status OldChunks(uint64_t vnode, std::vector<ChunkKey>* dead);
  Status Apply(const dump::DumpRecord& record);
  Status ApplyHeader(const dump::DumpHeader& h);
  Status ApplyVnode(const dump::DumpVnode& v);
  Status ApplyChunk(const dump::DumpChunk& c);
  Status ApplyEnd(const dump::DumpEnd& e);

  Volume& vol_;
  std::string buffer_;  // bytes fed but not yet parsed
  bool magic_seen_ = false;
  bool header_seen_ = false;
  bool ended_ = false;
  uint64_t records_ = 0;
  dump::DumpHeader header_;
  // The file vnode whose chunks come next: its uniq and chunk dvs by index.
  uint64_t chunk_vnode_ = 0, chunk_uniq_ = 0;
  std::unordered_map<uint64_t, dump::DumpChunkRef> expected_;
  std::vector<ChunkKey> written_;  // chunks written unsynced, made durable by Finish
  void* sha_ = nullptr;  // EVP_MD_CTX
  DumpProgress progress_;
};

}  // namespace heka::fs
