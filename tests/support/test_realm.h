// TestRealm: a real MIT Kerberos KDC (krb5kdc) on a free loopback port with a throw-away
// realm, for tests. Every integration test in Heka gets its Kerberos from here.
// Not thread-safe: create and drive it from the test's main thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "util/status.h"

namespace heka::testing {

struct TestRealmOptions {
  std::string realm = "HEKA.TEST";
  // Directory for the KDC database, configs, keytabs and ccaches. Default: a fresh
  // mkdtemp() under $TMPDIR (or /tmp), removed by the destructor.
  std::string dir;
  bool keep_dir = false;  // keep `dir` after the destructor (for debugging). Default: false.
};

class TestRealm {
 public:
  // Creates the realm database and starts krb5kdc (-n, foreground child, killed with the test
  // process via PR_SET_PDEATHSIG). Waits, with a deadline, until the KDC accepts connections.
  static Result<std::unique_ptr<TestRealm>> Start(const TestRealmOptions& options = {});
  // Stops the KDC by PID (SIGTERM, then SIGKILL after a deadline) and removes the directory.
  ~TestRealm();

  const std::string& realm() const { return realm_; }
  const std::string& dir() const { return dir_; }
  int port() const { return port_; }
  pid_t kdc_pid() const { return kdc_pid_; }
  std::string krb5_config() const { return dir_ + "/krb5.conf"; }

  // Points this process's Kerberos library at the realm (KRB5_CONFIG, KRB5_KDC_PROFILE) and
  // makes KRB5CCNAME a private, empty ccache inside dir(). Call before any GSS-API use.
  void SetEnv() const;

  // "alice" -> "alice@HEKA.TEST"; names that already carry a realm are returned unchanged.
  std::string Principal(const std::string& name) const;

  // Adds a user principal with a password. Optional max ticket life such as "10s".
  Status AddUser(const std::string& name, const std::string& password,
                 const std::string& max_life = "");
  // Adds a service principal with a random key and writes it to a new keytab file in dir().
  // Returns the keytab path (without "FILE:").
  Result<std::string> AddService(const std::string& name);
  // Re-keys an existing principal (randkey) and writes the new key into a new keytab file, so
  // earlier keytabs of that principal become wrong. Returns the new keytab path.
  Result<std::string> Rekey(const std::string& name);
  // Deletes a principal from the KDC database.
  Status DeletePrincipal(const std::string& name);

  // kinit with a password into `ccache` (a path; "FILE:" prefix optional). `lifetime` is
  // kinit's -l argument ("10s"); empty means the default.
  Status Kinit(const std::string& name, const std::string& password, const std::string& ccache,
               const std::string& lifetime = "");
  // kinit -k -t keytab into `ccache`.
  Status KinitKeytab(const std::string& name, const std::string& keytab,
                     const std::string& ccache);
  // Returns a fresh ccache path inside dir() (the file does not exist yet).
  std::string NewCcachePath(const std::string& tag);

  // Runs kadmin.local with one query, e.g. "modprinc -maxlife 10s alice". For tests only.
  Status Kadmin(const std::string& query);

 private:
  TestRealm() = default;
  std::string realm_;
  std::string dir_;
  bool keep_dir_ = false;
  int port_ = 0;
  pid_t kdc_pid_ = -1;
  int next_file_ = 0;
};

// One realm shared by all tests of a test binary, started on first use and stopped at process
// exit (a function-local static: a GoogleTest Environment cannot be added once the tests run).
// SetEnv() has already been called on it. Aborts with a message on stderr if the KDC cannot
// start.
TestRealm& SharedRealm();

}  // namespace heka::testing
