// Every `heka` subcommand, one function (and one file) each. Each returns the process exit
// code: 0 on success, 1 with one line on stderr when the operation failed, 2 on bad usage.
#pragma once

#include "cmd/cli.h"

namespace heka::cli {

int RpcPing(int argc, char** argv);
int RpcStats(int argc, char** argv);

// pts: the PTDB (pts.cc, pts_show.cc).
int PtsCreateUser(int argc, char** argv);
int PtsCreateGroup(int argc, char** argv);
int PtsDelete(int argc, char** argv);
int PtsAddUser(int argc, char** argv);
int PtsRemoveUser(int argc, char** argv);
int PtsRename(int argc, char** argv);
int PtsMembership(int argc, char** argv);
int PtsExamine(int argc, char** argv);
int PtsListOwned(int argc, char** argv);
int PtsListEntries(int argc, char** argv);

// cell: tenants' cells (cell.cc).
int CellCreate(int argc, char** argv);
int CellList(int argc, char** argv);
int CellShow(int argc, char** argv);
int CellDelete(int argc, char** argv);
int CellAddRealm(int argc, char** argv);

// vos: volumes, in the VLDB and on the file servers (vos_*.cc).
int VosCreate(int argc, char** argv);
int VosRemove(int argc, char** argv);
int VosBackup(int argc, char** argv);
int VosDump(int argc, char** argv);
int VosRestore(int argc, char** argv);
int VosMove(int argc, char** argv);
int VosLock(int argc, char** argv);
int VosUnlock(int argc, char** argv);
int VosZap(int argc, char** argv);
int VosAddSite(int argc, char** argv);
int VosRemSite(int argc, char** argv);
int VosRelease(int argc, char** argv);
int VosSyncVldb(int argc, char** argv);
int VosSyncServ(int argc, char** argv);
int VosExamine(int argc, char** argv);
int VosListVol(int argc, char** argv);
int VosListVldb(int argc, char** argv);

// db: the replicated database itself (db.cc).
int DbStatus(int argc, char** argv);
int DbBackup(int argc, char** argv);
int DbAddMember(int argc, char** argv);
int DbRemoveMember(int argc, char** argv);
int DbRestore(int argc, char** argv);

// fs: the local cache manager, over its control socket (fs_*.cc).
int FsListAcl(int argc, char** argv);
int FsSetAcl(int argc, char** argv);
int FsExamine(int argc, char** argv);
int FsWhereIs(int argc, char** argv);
int FsFlush(int argc, char** argv);
int FsWhoami(int argc, char** argv);
int FsUnlog(int argc, char** argv);
int FsGetCacheParms(int argc, char** argv);
int FsCheckVolumes(int argc, char** argv);
int FsSetCacheSize(int argc, char** argv);
int FsListQuota(int argc, char** argv);
int FsSetQuota(int argc, char** argv);
int FsFlushVolume(int argc, char** argv);
int FsCheckServers(int argc, char** argv);
int FsListCells(int argc, char** argv);
int FsGetCellStatus(int argc, char** argv);
int FsMkMount(int argc, char** argv);
int FsLsMount(int argc, char** argv);
int FsRmMount(int argc, char** argv);

// key: cell keys of encrypted volumes, in key files and in the cache manager (key.cc).
int KeyInit(int argc, char** argv);
int KeyWrap(int argc, char** argv);
int KeyUnlock(int argc, char** argv);
int KeyFingerprint(int argc, char** argv);
int KeyEscrowExport(int argc, char** argv);
int KeyImport(int argc, char** argv);
int KeyStatus(int argc, char** argv);

// bos: the supervisor of one machine's servers (bos.cc).
int BosStatus(int argc, char** argv);
int BosStart(int argc, char** argv);
int BosStop(int argc, char** argv);
int BosRestart(int argc, char** argv);
int BosCreate(int argc, char** argv);
int BosDelete(int argc, char** argv);
int BosGetLog(int argc, char** argv);
int BosSalvage(int argc, char** argv);
int BosListUsers(int argc, char** argv);
int BosAddUser(int argc, char** argv);
int BosRemoveUser(int argc, char** argv);

}  // namespace heka::cli
