#include "cachemgr/config.h"

#include <toml++/toml.h>

namespace heka::cm {

Result<CacheManagerConfig> CacheManagerConfig::Load(const std::string& path) {
  auto bad = [&](const std::string& what) { return Error(Code::kInvalidArgument, path + ": " + what); };
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return bad(std::string("not valid TOML: ") + std::string(e.description()));
  }
  auto c = t["cachemgr"];
  CacheManagerConfig out;
  out.mountpoint = c["mountpoint"].value_or<std::string>("/heka");
  out.dbservers = c["dbservers"].value_or<std::string>("");
  out.keytab = c["keytab"].value_or<std::string>("");
  out.principal = c["principal"].value_or<std::string>("");
  out.state_dir = c["state_dir"].value_or<std::string>("");
  out.private_mount = c["private"].value_or<bool>(false);
  out.private_uid = c["private_uid"].value_or<int64_t>(-1);
  out.control_socket = c["control_socket"].value_or<std::string>(std::string(out.control_socket));
  int64_t cache_mb = c["cache_size_mb"].value_or<int64_t>(1024);
  if (cache_mb < 1) return bad("[cachemgr] cache_size_mb must be at least 1");
  out.cache_bytes = static_cast<uint64_t>(cache_mb) << 20;
  out.cache_dir = c["cache_dir"].value_or<std::string>(out.state_dir.empty() ? std::string()
                                                                              : out.state_dir + "/cache");
  int64_t chunk_kb = c["chunk_size_kb"].value_or<int64_t>(1024);
  if (chunk_kb < 64 || chunk_kb > 16384 || (chunk_kb & (chunk_kb - 1)) != 0) {
    return bad("[cachemgr] chunk_size_kb must be a power of two from 64 to 16384");
  }
  out.chunk_bytes = static_cast<uint64_t>(chunk_kb) << 10;
  if (auto* cells = c["cells"].as_array()) {
    for (auto& v : *cells) out.cells.push_back(v.value_or<std::string>(""));
  }
  out.key_dir = c["key_dir"].value_or<std::string>(std::string(out.key_dir));
  if (out.key_dir.empty()) return bad("[cachemgr] key_dir must not be empty");
  if (auto* keys = c["keys"].as_table()) {
    for (auto& [cell, file] : *keys) {
      auto path = file.value<std::string>();
      if (!path || path->empty()) {
        return bad("[cachemgr.keys] " + std::string(cell.str()) + " must be a key file path");
      }
      out.key_files[std::string(cell.str())] = *path;
    }
  } else if (c["keys"]) {
    return bad("[cachemgr] keys must be a table: [cachemgr.keys] cell = \"path\"");
  }
  if (out.dbservers.empty()) return bad("[cachemgr] dbservers is required");
  if (out.keytab.empty()) return bad("[cachemgr] keytab is required (the machine's host key)");
  if (out.state_dir.empty()) return bad("[cachemgr] state_dir is required");
  return out;
}

}  // namespace heka::cm
