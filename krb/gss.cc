#include "krb/gss.h"

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>
#include <profile.h>

#include <vector>

namespace heka::krb {
namespace {

std::string DisplayStatus(uint32_t code, int type) {
  std::string out;
  OM_uint32 ctx = 0;
  do {
    OM_uint32 minor = 0;
    gss_buffer_desc buf = GSS_C_EMPTY_BUFFER;
    gss_OID mech = type == GSS_C_MECH_CODE ? const_cast<gss_OID>(gss_mech_krb5) : GSS_C_NO_OID;
    if (gss_display_status(&minor, code, type, mech, &ctx, &buf) != GSS_S_COMPLETE) break;
    if (!out.empty()) out += "; ";
    out.append(static_cast<const char*>(buf.value), buf.length);
    gss_release_buffer(&minor, &buf);
  } while (ctx != 0);
  return out;
}

gss_buffer_desc Buffer(ByteView b) {
  return gss_buffer_desc{b.size(), const_cast<uint8_t*>(b.data())};
}

Bytes TakeBuffer(gss_buffer_desc* buf) {
  Bytes out(static_cast<const uint8_t*>(buf->value),
            static_cast<const uint8_t*>(buf->value) + buf->length);
  OM_uint32 minor = 0;
  gss_release_buffer(&minor, buf);
  return out;
}

Result<std::string> DisplayName(gss_name_t name) {
  OM_uint32 minor = 0;
  gss_buffer_desc buf = GSS_C_EMPTY_BUFFER;
  OM_uint32 major = gss_display_name(&minor, name, &buf, nullptr);
  if (GSS_ERROR(major)) return GssError("gss_display_name", major, minor);
  Bytes b = TakeBuffer(&buf);
  return std::string(b.begin(), b.end());
}

Result<gss_name_t> ImportPrincipal(const std::string& principal) {
  OM_uint32 minor = 0;
  gss_buffer_desc buf{principal.size(), const_cast<char*>(principal.data())};
  gss_name_t name = GSS_C_NO_NAME;
  OM_uint32 major =
      gss_import_name(&minor, &buf, const_cast<gss_OID>(GSS_KRB5_NT_PRINCIPAL_NAME), &name);
  if (GSS_ERROR(major)) return GssError(("importing name " + principal).c_str(), major, minor);
  return name;
}

// gss_acquire_cred_from for `principal` (empty: any) from the given credential store.
Status AcquireCred(const std::string& principal,
                   std::vector<gss_key_value_element_desc>& elems, gss_cred_usage_t usage,
                   gss_cred_id_t* cred) {
  gss_key_value_set_desc store{static_cast<OM_uint32>(elems.size()), elems.data()};
  gss_name_t desired = GSS_C_NO_NAME;
  if (!principal.empty()) {
    auto n = ImportPrincipal(principal);
    if (!n.ok()) return n.status();
    desired = *n;
  }
  OM_uint32 minor = 0;
  OM_uint32 major = gss_acquire_cred_from(&minor, desired, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
                                          usage, elems.empty() ? nullptr : &store, cred, nullptr,
                                          nullptr);
  if (desired != GSS_C_NO_NAME) {
    OM_uint32 ignored = 0;
    gss_release_name(&ignored, &desired);
  }
  if (GSS_ERROR(major)) return GssError("gss_acquire_cred", major, minor);
  return Status::Ok();
}

// The realm's allowed clock skew ([libdefaults] clockskew, default 300 s). MIT adds it to an
// acceptor's context lifetime; Heka takes it off again so a server closes a connection when
// the client's ticket ends, not five minutes later.
std::chrono::seconds ClockSkew() {
  krb5_context ctx = nullptr;
  if (krb5_init_context(&ctx) != 0) return std::chrono::seconds(300);
  long skew = 300;
  profile_t profile = nullptr;
  if (krb5_get_profile(ctx, &profile) == 0) {
    char* text = nullptr;
    if (profile_get_string(profile, "libdefaults", "clockskew", nullptr, "300", &text) == 0 && text) {
      krb5_deltat delta = 0;
      if (krb5_string_to_deltat(text, &delta) == 0) skew = delta;
      profile_release_string(text);
    }
    profile_release(profile);
  }
  krb5_free_context(ctx);
  return std::chrono::seconds(skew);
}

}  // namespace

Status GssError(const char* what, uint32_t major, uint32_t minor) {
  auto routine = GSS_ROUTINE_ERROR(major);
  // "Unspecified GSS failure. Minor code may provide more information" says nothing: then
  // the mechanism's (krb5's) own message is the whole story.
  std::string text = routine == GSS_S_FAILURE && minor != 0
                         ? DisplayStatus(minor, GSS_C_MECH_CODE)
                         : DisplayStatus(major, GSS_C_GSS_CODE) +
                               (minor != 0 ? " (" + DisplayStatus(minor, GSS_C_MECH_CODE) + ")" : "");
  std::string msg = std::string(what) + ": " + text;
  switch (static_cast<krb5_error_code>(minor)) {
    case KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN:
      return Error(Code::kUnknownServer, msg + " — the KDC has no such server principal");
    case KRB5KRB_AP_ERR_SKEW:
      return Error(Code::kClockSkew, msg + " — synchronise the clocks (e.g. with NTP)");
    case KRB5KRB_AP_ERR_TKT_EXPIRED:
    case KRB5KDC_ERR_TGT_REVOKED:
      return Error(Code::kCredentialsExpired, msg + " — run kinit again");
    case KRB5_FCC_NOFILE:
    case KRB5_CC_NOTFOUND:
    case KRB5_CC_NOSUPP:
    case KRB5_KT_NOTFOUND:
      if (routine == GSS_S_NO_CRED || routine == GSS_S_FAILURE) {
        return Error(Code::kNoCredentials, msg + " — run kinit (or check the keytab)");
      }
      break;
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
    case KRB5KRB_AP_ERR_MODIFIED:
    case KRB5KRB_AP_ERR_NOKEY:
    case KRB5KRB_AP_ERR_BADKEYVER:
    case KRB5KRB_AP_WRONG_PRINC:
    case KRB5_KT_KVNONOTFOUND:
      return Error(Code::kBadServerKey,
                   msg + " — the server's keytab does not match the KDC's key for it");
    default:
      break;
  }
  if (routine == GSS_S_CREDENTIALS_EXPIRED || routine == GSS_S_CONTEXT_EXPIRED) {
    return Error(Code::kCredentialsExpired, msg + " — run kinit again");
  }
  if (routine == GSS_S_NO_CRED) {
    return Error(Code::kNoCredentials, msg + " — run kinit (or check the keytab)");
  }
  return Error(Code::kAuthFailed, msg);
}

struct Handles {
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  gss_name_t target = GSS_C_NO_NAME;
  ~Handles() {
    OM_uint32 minor = 0;
    if (ctx != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
    if (cred != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &cred);
    if (target != GSS_C_NO_NAME) gss_release_name(&minor, &target);
  }
};

class GssContext final : public SecurityContext {
 public:
  explicit GssContext(bool initiator)
      : initiator_(initiator), acceptor_skew_(initiator ? std::chrono::seconds(0) : ClockSkew()) {}
  StepResult Step(ByteView in) override;
  bool established() const override { return established_; }
  const Identity& peer() const override { return peer_; }
  const Identity& self() const override { return self_; }
  std::chrono::seconds remaining() const override;
  Result<Bytes> PseudoRandom(ByteView input, size_t length) const override;

  Handles h;

 private:
  Status FinishEstablished();
  bool initiator_;
  std::chrono::seconds acceptor_skew_;
  bool established_ = false;
  Identity peer_;
  Identity self_;
};

Result<std::unique_ptr<SecurityContext>> SecurityContext::Initiator(
    const ClientCredentials& creds, const std::string& target_principal) {
  auto sc = std::make_unique<GssContext>(true);
  auto target = ImportPrincipal(target_principal);
  if (!target.ok()) return target.status();
  sc->h.target = *target;

  std::vector<gss_key_value_element_desc> elems;
  if (!creds.ccache.empty()) elems.push_back({"ccache", creds.ccache.c_str()});
  if (!creds.keytab.empty()) elems.push_back({"client_keytab", creds.keytab.c_str()});
  if (Status s = AcquireCred(creds.principal, elems, GSS_C_INITIATE, &sc->h.cred); !s.ok()) {
    return s.WithContext("acquiring client credentials");
  }
  return std::unique_ptr<SecurityContext>(std::move(sc));
}

Result<std::unique_ptr<SecurityContext>> SecurityContext::Acceptor(const ServerCredentials& creds) {
  auto sc = std::make_unique<GssContext>(false);
  if (creds.keytab.empty()) return Error(Code::kInvalidArgument, "server keytab not configured");
  std::vector<gss_key_value_element_desc> elems = {{"keytab", creds.keytab.c_str()}};
  if (Status s = AcquireCred(creds.principal, elems, GSS_C_ACCEPT, &sc->h.cred); !s.ok()) {
    return s.WithContext("acquiring server key from " + creds.keytab);
  }
  return std::unique_ptr<SecurityContext>(std::move(sc));
}

SecurityContext::StepResult GssContext::Step(ByteView in) {
  StepResult r;
  if (established_) {
    r.status = Error(Code::kProtocolError, "GSS-API context already established");
    return r;
  }
  OM_uint32 minor = 0;
  OM_uint32 major = 0;
  OM_uint32 flags = 0;
  gss_buffer_desc in_buf = Buffer(in);
  gss_buffer_desc out_buf = GSS_C_EMPTY_BUFFER;
  if (initiator_) {
    major = gss_init_sec_context(
        &minor, h.cred, &h.ctx, h.target, const_cast<gss_OID>(gss_mech_krb5),
        GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG, GSS_C_INDEFINITE,
        GSS_C_NO_CHANNEL_BINDINGS, in.empty() ? GSS_C_NO_BUFFER : &in_buf, nullptr, &out_buf,
        &flags, nullptr);
  } else {
    gss_name_t src = GSS_C_NO_NAME;
    major = gss_accept_sec_context(&minor, &h.ctx, h.cred, &in_buf,
                                   GSS_C_NO_CHANNEL_BINDINGS, &src, nullptr, &out_buf, &flags,
                                   nullptr, nullptr);
    if (src != GSS_C_NO_NAME) {
      OM_uint32 m2 = 0;
      gss_release_name(&m2, &src);
    }
  }
  if (out_buf.length > 0) r.token = TakeBuffer(&out_buf);
  if (GSS_ERROR(major)) {
    r.status = GssError(initiator_ ? "authenticating to the server" : "accepting a client",
                        major, minor);
    return r;
  }
  if (major & GSS_S_CONTINUE_NEEDED) return r;
  if (!(flags & GSS_C_MUTUAL_FLAG)) {
    r.status = Error(Code::kAuthFailed, "mutual authentication was not performed");
    return r;
  }
  r.status = FinishEstablished();
  return r;
}

Status GssContext::FinishEstablished() {
  OM_uint32 minor = 0;
  // MIT's gss_inquire_context leaks the names it made when the context has already expired,
  // so ask for the time left first.
  OM_uint32 secs = 0;
  OM_uint32 time_major = gss_context_time(&minor, h.ctx, &secs);
  if (GSS_ERROR(time_major)) return GssError("checking the ticket's lifetime", time_major, minor);
  gss_name_t src = GSS_C_NO_NAME, targ = GSS_C_NO_NAME;
  OM_uint32 major = gss_inquire_context(&minor, h.ctx, &src, &targ, nullptr, nullptr, nullptr,
                                        nullptr, nullptr);
  if (GSS_ERROR(major)) {
    // MIT may hand out the names even when it fails (e.g. the context already expired).
    OM_uint32 ignored = 0;
    if (src != GSS_C_NO_NAME) gss_release_name(&ignored, &src);
    if (targ != GSS_C_NO_NAME) gss_release_name(&ignored, &targ);
    return GssError("gss_inquire_context", major, minor);
  }
  auto src_name = DisplayName(src);
  auto targ_name = DisplayName(targ);
  gss_release_name(&minor, &src);
  gss_release_name(&minor, &targ);
  if (!src_name.ok()) return src_name.status();
  if (!targ_name.ok()) return targ_name.status();
  auto src_id = Identity::Parse(*src_name);
  auto targ_id = Identity::Parse(*targ_name);
  if (!src_id.ok()) return src_id.status();
  if (!targ_id.ok()) return targ_id.status();
  peer_ = initiator_ ? *targ_id : *src_id;
  self_ = initiator_ ? *src_id : *targ_id;
  established_ = true;
  return Status::Ok();
}

std::chrono::seconds GssContext::remaining() const {
  if (!established_) return std::chrono::seconds(0);
  OM_uint32 minor = 0, secs = 0;
  OM_uint32 major = gss_context_time(&minor, h.ctx, &secs);
  if (GSS_ERROR(major)) return std::chrono::seconds(0);
  std::chrono::seconds left(secs);
  if (!initiator_) left -= acceptor_skew_;
  return left.count() > 0 ? left : std::chrono::seconds(0);
}

Result<Bytes> GssContext::PseudoRandom(ByteView input, size_t length) const {
  if (!established_) return Error(Code::kInternal, "PRF on a context that is not established");
  OM_uint32 minor = 0;
  gss_buffer_desc in = Buffer(input);
  gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
  OM_uint32 major = gss_pseudo_random(&minor, h.ctx, GSS_C_PRF_KEY_FULL, &in,
                                      static_cast<ssize_t>(length), &out);
  if (GSS_ERROR(major)) return GssError("gss_pseudo_random", major, minor);
  Bytes b = TakeBuffer(&out);
  if (b.size() != length) return Error(Code::kInternal, "gss_pseudo_random returned short output");
  return b;
}

Result<std::string> DefaultRealm() {
  krb5_context ctx = nullptr;
  if (krb5_error_code err = krb5_init_context(&ctx); err != 0) {
    return Error(Code::kAuthFailed, "cannot read the Kerberos configuration (krb5_init_context " +
                                        std::to_string(err) + ")");
  }
  char* realm = nullptr;
  krb5_error_code err = krb5_get_default_realm(ctx, &realm);
  if (err != 0) {
    const char* msg = krb5_get_error_message(ctx, err);
    Status s(Code::kAuthFailed, std::string("no default realm in krb5.conf: ") + msg);
    krb5_free_error_message(ctx, msg);
    krb5_free_context(ctx);
    return s;
  }
  std::string out(realm);
  krb5_free_default_realm(ctx, realm);
  krb5_free_context(ctx);
  return out;
}

}  // namespace heka::krb
