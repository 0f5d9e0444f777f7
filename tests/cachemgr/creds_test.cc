#include "cachemgr/creds.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <krb5.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

// These tests run as root: they chown caches to uids that need not exist.
namespace heka::cm {
namespace {

constexpr uid_t kUidA = 4710001;
constexpr uid_t kUidB = 4710002;
constexpr gid_t kGid = 4710001;
constexpr int64_t kTgtEnd = 2000000000;  // 2033-05-18
constexpr int64_t kServiceEnd = 2100000000;

// Creates a real FILE ccache for `principal` holding a TGT ending at `tgt_end` and a
// service ticket ending later, then gives it to `owner` with `mode`.
void MakeCcache(const std::string& path, const std::string& principal, uid_t owner,
                mode_t mode = 0600, int64_t tgt_end = kTgtEnd) {
  krb5_context ctx = nullptr;
  ASSERT_EQ(krb5_init_context(&ctx), 0);
  krb5_ccache cc = nullptr;
  krb5_principal client = nullptr, tgs = nullptr, service = nullptr;
  ASSERT_EQ(krb5_cc_resolve(ctx, ("FILE:" + path).c_str(), &cc), 0);
  ASSERT_EQ(krb5_parse_name(ctx, principal.c_str(), &client), 0);
  ASSERT_EQ(krb5_cc_initialize(ctx, cc, client), 0);
  std::string realm(client->realm.data, client->realm.length);
  ASSERT_EQ(krb5_build_principal(ctx, &tgs, realm.size(), realm.c_str(), "krbtgt", realm.c_str(),
                                 nullptr),
            0);
  ASSERT_EQ(krb5_build_principal(ctx, &service, realm.size(), realm.c_str(), "heka", "fs1.example",
                                 nullptr),
            0);
  krb5_creds tgt{};
  tgt.client = client;
  tgt.server = tgs;
  tgt.times.endtime = static_cast<krb5_timestamp>(tgt_end);
  ASSERT_EQ(krb5_cc_store_cred(ctx, cc, &tgt), 0);
  krb5_creds svc{};
  svc.client = client;
  svc.server = service;
  svc.times.endtime = static_cast<krb5_timestamp>(kServiceEnd);
  ASSERT_EQ(krb5_cc_store_cred(ctx, cc, &svc), 0);
  krb5_free_principal(ctx, service);
  krb5_free_principal(ctx, tgs);
  krb5_free_principal(ctx, client);
  krb5_cc_close(ctx, cc);
  krb5_free_context(ctx);
  ASSERT_EQ(::chown(path.c_str(), owner, kGid), 0);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

uid_t CurrentFsuid() { return static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))); }
gid_t CurrentFsgid() { return static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1))); }

// A real process whose environment holds KRB5CCNAME. The constructor returns once the child
// has exec'd (the close-on-exec pipe reaches EOF), so /proc/<pid>/environ is the new one.
class ChildWithEnv {
 public:
  explicit ChildWithEnv(const std::string& krb5ccname) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    std::string var = "KRB5CCNAME=" + krb5ccname;
    pid_ = ::fork();
    if (pid_ == 0) {
      char* argv[] = {const_cast<char*>("sleep"), const_cast<char*>("30"), nullptr};
      char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), var.data(), nullptr};
      ::execve("/bin/sleep", argv, envp);
      char failed = 1;
      (void)!::write(fds[1], &failed, 1);
      ::_exit(127);
    }
    ::close(fds[1]);
    char byte;
    ssize_t n;
    do {
      n = ::read(fds[0], &byte, 1);
    } while (n < 0 && errno == EINTR);
    ::close(fds[0]);
    EXPECT_EQ(n, 0) << "exec of /bin/sleep failed";
  }
  ~ChildWithEnv() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

class CredsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "these tests need root (chown to other uids, setfsuid)";
    char tmpl[] = "/tmp/heka-creds-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);  // the test uids must be able to traverse
    home_ = root_ + "/home";
    ASSERT_EQ(::mkdir(home_.c_str(), 0755), 0);
    private_dir_ = root_ + "/private";
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  void TearDown() override {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
    std::filesystem::remove(DefaultCache(kUidA), ec);
    std::filesystem::remove(DefaultCache(kUidB), ec);
  }

  static std::string DefaultCache(uid_t uid) { return "/tmp/krb5cc_" + std::to_string(uid); }

  CredentialResolverOptions Options(std::chrono::milliseconds recheck = {}) const {
    CredentialResolverOptions o;
    o.private_dir = private_dir_;
    o.recheck_interval = recheck;
    return o;
  }

  std::vector<std::string> PrivateFiles() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(private_dir_)) {
      names.push_back(e.path().filename().string());
    }
    return names;
  }

  int CountInLog(const std::string& needle) const {
    std::string text = log_.str();
    int n = 0;
    for (size_t pos = text.find(needle); pos != std::string::npos;
         pos = text.find(needle, pos + 1)) {
      ++n;
    }
    return n;
  }

  std::string root_, home_, private_dir_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

TEST_F(CredsTest, PrivateDirIsCreated0700) {
  CredentialResolver resolver(Options());
  ASSERT_TRUE(resolver.init_status().ok()) << resolver.init_status().ToString();
  struct stat st {};
  ASSERT_EQ(::lstat(private_dir_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(CredsTest, PrivateDirOwnedBySomeoneElseIsRefused) {
  ASSERT_EQ(::mkdir(private_dir_.c_str(), 0700), 0);
  ASSERT_EQ(::chown(private_dir_.c_str(), kUidA, kGid), 0);
  CredentialResolver resolver(Options());
  EXPECT_FALSE(resolver.init_status().ok());
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA);
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).ccache, "");
}

TEST_F(CredsTest, AcceptsOwned0600DefaultCacheAndParsesIt) {
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA);
  CredentialResolver resolver(Options());
  CallerCreds c = resolver.Resolve(kUidA, kGid, 0);
  EXPECT_EQ(c.uid, kUidA);
  EXPECT_EQ(c.principal, "alice@HEKA.TEST");
  EXPECT_EQ(c.source, DefaultCache(kUidA));
  EXPECT_EQ(c.expires_unix, kTgtEnd);  // the TGT's end, not the later service ticket's
  ASSERT_EQ(c.ccache.rfind("FILE:" + private_dir_ + "/", 0), 0u) << c.ccache;

  std::string copy = c.ccache.substr(5);
  struct stat st {};
  ASSERT_EQ(::lstat(copy.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  std::ifstream a(copy, std::ios::binary), b(DefaultCache(kUidA), std::ios::binary);
  std::string bytes_a((std::istreambuf_iterator<char>(a)), {});
  std::string bytes_b((std::istreambuf_iterator<char>(b)), {});
  EXPECT_EQ(bytes_a, bytes_b);
}

TEST_F(CredsTest, NoCacheAtAllIsAnonymousAndNotLogged) {
  CredentialResolver resolver(Options());
  CallerCreds c = resolver.Resolve(kUidA, kGid, 0);
  EXPECT_EQ(c.ccache, "");
  EXPECT_EQ(c.principal, "");
  EXPECT_EQ(c.source, DefaultCache(kUidA));
  EXPECT_EQ(CountInLog("refusing"), 0);
}

TEST_F(CredsTest, RefusesMode0644) {
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA, 0644);
  CredentialResolver resolver(Options());
  CallerCreds c = resolver.Resolve(kUidA, kGid, 0);
  EXPECT_EQ(c.ccache, "");
  EXPECT_EQ(c.principal, "");
  EXPECT_EQ(
      CountInLog("refusing credential cache " + DefaultCache(kUidA) + ": mode 0644, not 0600"), 1);
}

TEST_F(CredsTest, RefusesCacheOwnedByAnotherUid) {
  // B planted a world-readable cache at A's default path: A can open it, but does not own it.
  MakeCcache(DefaultCache(kUidA), "bob@HEKA.TEST", kUidB, 0644);
  CredentialResolver resolver(Options());
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).ccache, "");
  EXPECT_EQ(CountInLog("owned by uid " + std::to_string(kUidB) + ", not " + std::to_string(kUidA)),
            1);
}

TEST_F(CredsTest, UidANamingBsCacheIsAnonymousAndLoggedOnce) {
  std::string b_cache = home_ + "/b_cc";           // 0600: A cannot even open it
  std::string b_readable = home_ + "/b_readable";  // 0644: A can open it, but B owns it
  MakeCcache(b_cache, "bob@HEKA.TEST", kUidB);
  MakeCcache(b_readable, "bob@HEKA.TEST", kUidB, 0644);
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA);  // no fallback to this one
  ChildWithEnv child("FILE:" + b_cache);
  ChildWithEnv child_readable("FILE:" + b_readable);
  CredentialResolver resolver(Options());
  for (int i = 0; i < 3; ++i) {
    for (const ChildWithEnv* c : {&child, &child_readable}) {
      CallerCreds creds = resolver.Resolve(kUidA, kGid, c->pid());
      EXPECT_EQ(creds.ccache, "");
      EXPECT_EQ(creds.principal, "");
    }
  }
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, child.pid()).source, "KRB5CCNAME=FILE:" + b_cache);
  std::string prefix = "uid " + std::to_string(kUidA) + " (pid ";
  EXPECT_EQ(
      CountInLog(prefix + std::to_string(child.pid()) + "): refusing credential cache " + b_cache +
                 ": cannot open as uid " + std::to_string(kUidA) + ": Permission denied"),
      1)
      << log_.str();
  EXPECT_EQ(CountInLog(prefix + std::to_string(child_readable.pid()) +
                       "): refusing credential cache " + b_readable + ": owned by uid " +
                       std::to_string(kUidB) + ", not " + std::to_string(kUidA)),
            1)
      << log_.str();
  EXPECT_TRUE(PrivateFiles().empty());
  // B itself, from the same process environment, gets its cache.
  EXPECT_EQ(resolver.Resolve(kUidB, kGid, child.pid()).principal, "bob@HEKA.TEST");
}

TEST_F(CredsTest, RefusesSymlinkEvenToAValidOwnCache) {
  std::string real = home_ + "/a_cc";
  std::string link = home_ + "/a_link";
  MakeCcache(real, "alice@HEKA.TEST", kUidA);
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  ASSERT_EQ(::lchown(link.c_str(), kUidA, kGid), 0);
  ChildWithEnv child("FILE:" + link);
  CredentialResolver resolver(Options());
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, child.pid()).ccache, "");
  EXPECT_EQ(CountInLog("refusing credential cache " + link + ": is a symbolic link"), 1);
}

TEST_F(CredsTest, RefusesSymlinkToAnotherUsersCache) {
  std::string b_cache = home_ + "/b_cc";
  std::string link = home_ + "/a_link_to_b";
  MakeCcache(b_cache, "bob@HEKA.TEST", kUidB);
  ASSERT_EQ(::symlink(b_cache.c_str(), link.c_str()), 0);
  ASSERT_EQ(::lchown(link.c_str(), kUidA, kGid), 0);
  ChildWithEnv child(link);  // a bare path means FILE:
  CredentialResolver resolver(Options());
  CallerCreds c = resolver.Resolve(kUidA, kGid, child.pid());
  EXPECT_EQ(c.ccache, "");
  EXPECT_EQ(c.source, "KRB5CCNAME=" + link);
  EXPECT_EQ(CountInLog("is a symbolic link"), 1);
}

TEST_F(CredsTest, RefusesKeyringAndOtherCacheTypes) {
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA);
  CredentialResolver resolver(Options());
  for (std::string name : {"KEYRING:persistent:4710001", "KCM:4710001", "MEMORY:x"}) {
    ChildWithEnv child(name);
    CallerCreds c = resolver.Resolve(kUidA, kGid, child.pid());
    EXPECT_EQ(c.ccache, "") << name;
    EXPECT_EQ(c.source, "KRB5CCNAME=" + name);
  }
  EXPECT_EQ(CountInLog("refusing credential cache KEYRING:persistent:4710001: type KEYRING "
                       "is not supported"),
            1)
      << log_.str();
  EXPECT_EQ(CountInLog("type KCM is not supported"), 1);
  EXPECT_EQ(CountInLog("type MEMORY is not supported"), 1);
}

TEST_F(CredsTest, RefusesRelativePath) {
  ChildWithEnv child("FILE:krb5cc");
  CredentialResolver resolver(Options());
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, child.pid()).ccache, "");
  EXPECT_EQ(CountInLog("not an absolute path"), 1);
}

TEST_F(CredsTest, RefusesCachesInsideTheMount) {
  CredentialResolverOptions o = Options();
  o.mount_point = home_ + "/heka/";
  ChildWithEnv child("FILE:" + home_ + "/other/../heka/cell/cc");
  CredentialResolver resolver(o);
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, child.pid()).ccache, "");
  EXPECT_EQ(CountInLog("inside the Heka mount"), 1);
}

TEST_F(CredsTest, EnvironmentOverridesDefaultCache) {
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA);
  std::string other = home_ + "/a_other";
  MakeCcache(other, "alice/admin@HEKA.TEST", kUidA);
  CredentialResolver resolver(Options());
  ChildWithEnv file_child("FILE:" + other);
  ChildWithEnv bare_child(other);
  CallerCreds c = resolver.Resolve(kUidA, kGid, file_child.pid());
  EXPECT_EQ(c.principal, "alice/admin@HEKA.TEST");
  EXPECT_EQ(c.source, "KRB5CCNAME=FILE:" + other);
  EXPECT_NE(c.ccache, "");
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, bare_child.pid()).principal, "alice/admin@HEKA.TEST");
  // Without the variable (kernel-made request), the default cache.
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).principal, "alice@HEKA.TEST");
  // Two sources, two private copies.
  EXPECT_EQ(PrivateFiles().size(), 3u);  // FILE:other, bare other, default
}

TEST_F(CredsTest, DirCollectionUsesItsPrimaryCache) {
  std::string dir = home_ + "/a_dir";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chown(dir.c_str(), kUidA, kGid), 0);
  MakeCcache(dir + "/tkt", "alice@HEKA.TEST", kUidA);
  MakeCcache(dir + "/tktXYZ123", "alice/admin@HEKA.TEST", kUidA);
  CredentialResolver resolver(Options());
  ChildWithEnv child("DIR:" + dir);
  // No primary file: "tkt".
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, child.pid()).principal, "alice@HEKA.TEST");
  { std::ofstream(dir + "/primary") << "tktXYZ123\n"; }
  ASSERT_EQ(::chown((dir + "/primary").c_str(), kUidA, kGid), 0);
  ASSERT_EQ(::chmod((dir + "/primary").c_str(), 0600), 0);
  CallerCreds c = resolver.Resolve(kUidA, kGid, child.pid());
  EXPECT_EQ(c.principal, "alice/admin@HEKA.TEST");
  EXPECT_EQ(c.source, "KRB5CCNAME=DIR:" + dir);
  // A primary that escapes the directory is refused.
  { std::ofstream(dir + "/primary") << "../../b_cc\n"; }
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, child.pid()).ccache, "");
  EXPECT_EQ(CountInLog("not a tkt* file"), 1);
}

TEST_F(CredsTest, OpensAsTheCallerAndRestoresFsIds) {
  // A's own valid cache in a directory only root may enter: root could read it, A cannot.
  std::string locked = home_ + "/locked";
  ASSERT_EQ(::mkdir(locked.c_str(), 0700), 0);
  MakeCcache(locked + "/cc", "alice@HEKA.TEST", kUidA);
  MakeCcache(DefaultCache(kUidB), "bob@HEKA.TEST", kUidB);
  CredentialResolver resolver(Options());
  ChildWithEnv child("FILE:" + locked + "/cc");
  ASSERT_EQ(CurrentFsuid(), 0u);
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, child.pid()).ccache, "");
  EXPECT_EQ(CurrentFsuid(), 0u);
  EXPECT_EQ(CurrentFsgid(), 0u);
  EXPECT_EQ(CountInLog("cannot open as uid " + std::to_string(kUidA) + ": Permission denied"), 1)
      << log_.str();
  EXPECT_EQ(resolver.Resolve(kUidB, kGid, 0).principal, "bob@HEKA.TEST");  // accepted path
  EXPECT_EQ(CurrentFsuid(), 0u);
  EXPECT_EQ(CurrentFsgid(), 0u);
}

TEST_F(CredsTest, NewKinitIsPickedUpAtTheNextCheck) {
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA, 0600, kTgtEnd);
  CredentialResolver resolver(Options());
  CallerCreds first = resolver.Resolve(kUidA, kGid, 0);
  ASSERT_EQ(first.principal, "alice@HEKA.TEST");
  // kinit as another principal, in place (same inode), with a later TGT.
  MakeCcache(DefaultCache(kUidA), "alice/admin@HEKA.TEST", kUidA, 0600, kTgtEnd + 3600);
  CallerCreds second = resolver.Resolve(kUidA, kGid, 0);
  EXPECT_EQ(second.principal, "alice/admin@HEKA.TEST");
  EXPECT_EQ(second.expires_unix, kTgtEnd + 3600);
  EXPECT_EQ(second.ccache, first.ccache);  // same private copy, rewritten
  // kdestroy: anonymous again, and the private copy is gone.
  ASSERT_EQ(::unlink(DefaultCache(kUidA).c_str()), 0);
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).ccache, "");
  EXPECT_TRUE(PrivateFiles().empty());
}

TEST_F(CredsTest, ResultsAreCachedWithinTheRecheckInterval) {
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA);
  CredentialResolver resolver(Options(std::chrono::hours(1)));
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).principal, "alice@HEKA.TEST");
  MakeCcache(DefaultCache(kUidA), "alice/admin@HEKA.TEST", kUidA);
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).principal, "alice@HEKA.TEST");
  resolver.Forget(kUidA);  // unlog also drops the cached answer
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).principal, "alice/admin@HEKA.TEST");
}

// A caller who had no ticket and then runs kinit is not kept anonymous for the recheck
// interval: the first request after the kinit uses it.
TEST_F(CredsTest, AKinitAfterNoTicketIsUsedAtOnce) {
  CredentialResolver resolver(Options(std::chrono::hours(1)));
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).ccache, "");
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA);
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).principal, "alice@HEKA.TEST");
}

// And a server's refusal of a ticket makes the next request look again (Recheck).
TEST_F(CredsTest, RecheckLooksAtTheCacheAgainAtOnce) {
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA);
  CredentialResolver resolver(Options(std::chrono::hours(1)));
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).principal, "alice@HEKA.TEST");
  MakeCcache(DefaultCache(kUidA), "alice/admin@HEKA.TEST", kUidA);
  resolver.Recheck(kUidA);
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).principal, "alice/admin@HEKA.TEST");
}

TEST_F(CredsTest, ForgetRemovesOnlyThatUsersPrivateCopies) {
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA);
  MakeCcache(DefaultCache(kUidB), "bob@HEKA.TEST", kUidB);
  std::string other = home_ + "/a_other";
  MakeCcache(other, "alice/admin@HEKA.TEST", kUidA);
  ChildWithEnv child(other);
  CredentialResolver resolver(Options());
  CallerCreds a1 = resolver.Resolve(kUidA, kGid, 0);
  CallerCreds a2 = resolver.Resolve(kUidA, kGid, child.pid());
  CallerCreds b = resolver.Resolve(kUidB, kGid, 0);
  ASSERT_NE(a1.ccache, "");
  ASSERT_NE(a2.ccache, "");
  ASSERT_NE(b.ccache, "");
  ASSERT_EQ(PrivateFiles().size(), 3u);
  resolver.Forget(kUidA);
  EXPECT_FALSE(std::filesystem::exists(a1.ccache.substr(5)));
  EXPECT_FALSE(std::filesystem::exists(a2.ccache.substr(5)));
  EXPECT_TRUE(std::filesystem::exists(b.ccache.substr(5)));
  // The next request copies again.
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).ccache, a1.ccache);
  EXPECT_TRUE(std::filesystem::exists(a1.ccache.substr(5)));
}

TEST_F(CredsTest, GarbageFileIsAnonymous) {
  { std::ofstream(DefaultCache(kUidA)) << "not a ccache"; }
  ASSERT_EQ(::chown(DefaultCache(kUidA).c_str(), kUidA, kGid), 0);
  ASSERT_EQ(::chmod(DefaultCache(kUidA).c_str(), 0600), 0);
  CredentialResolver resolver(Options());
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).ccache, "");
  EXPECT_EQ(resolver.Resolve(kUidA, kGid, 0).ccache, "");
  EXPECT_EQ(CountInLog("not a credential cache"), 1);
  EXPECT_TRUE(PrivateFiles().empty());
}

TEST_F(CredsTest, ConcurrentResolvesAreConsistent) {
  MakeCcache(DefaultCache(kUidA), "alice@HEKA.TEST", kUidA);
  MakeCcache(DefaultCache(kUidB), "bob@HEKA.TEST", kUidB, 0644);  // refused
  CredentialResolver resolver(Options());
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        bool a = (i + t) % 2 == 0;
        CallerCreds c = resolver.Resolve(a ? kUidA : kUidB, kGid, 0);
        if (a ? c.principal != "alice@HEKA.TEST" : !c.ccache.empty()) ++wrong;
        if (CurrentFsuid() != 0 || CurrentFsgid() != 0) ++wrong;
        if (i % 50 == 0) resolver.Forget(kUidA);  // races with the other threads' refreshes
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace heka::cm
