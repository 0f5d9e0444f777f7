#include "rpc/registry.h"

#include <google/protobuf/descriptor.h>

#include <cstdio>
#include <cstdlib>

namespace heka::rpc {

void CheckMethod(std::string_view method, const google::protobuf::Descriptor* request,
                 const google::protobuf::Descriptor* reply) {
  const auto* m =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(std::string(method));
  const char* problem = nullptr;
  if (m == nullptr) {
    problem = "is not declared in proto/";
  } else if (m->input_type() != request) {
    problem = "takes a different request type";
  } else if (reply != nullptr && m->output_type() != reply) {
    problem = "returns a different reply type";
  }
  if (problem) {
    std::fprintf(stderr, "heka: RPC method '%.*s' %s\n", static_cast<int>(method.size()),
                 method.data(), problem);
    std::abort();
  }
}

}  // namespace heka::rpc
