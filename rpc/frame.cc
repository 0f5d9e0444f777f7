#include "rpc/frame.h"

#include <google/protobuf/io/coded_stream.h>

namespace heka::rpc {

void EncodeLength(uint32_t length, uint8_t out[kLengthPrefixSize]) {
  out[0] = static_cast<uint8_t>(length >> 24);
  out[1] = static_cast<uint8_t>(length >> 16);
  out[2] = static_cast<uint8_t>(length >> 8);
  out[3] = static_cast<uint8_t>(length);
}

Result<uint32_t> DecodeLength(const uint8_t in[kLengthPrefixSize], uint32_t max_frame) {
  uint32_t length = (uint32_t{in[0]} << 24) | (uint32_t{in[1]} << 16) | (uint32_t{in[2]} << 8) |
                    uint32_t{in[3]};
  if (length == 0) return Error(Code::kProtocolError, "empty frame");
  if (length > max_frame) {
    return Error(Code::kFrameTooLarge, "frame of " + std::to_string(length) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(max_frame));
  }
  return length;
}

void EncodeMessageHeader(const FrameHeader& header, Bytes* out) {
  size_t header_size = header.ByteSizeLong();
  out->clear();
  out->resize(google::protobuf::io::CodedOutputStream::VarintSize32(
                  static_cast<uint32_t>(header_size)) +
              header_size);
  uint8_t* p = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
      static_cast<uint32_t>(header_size), out->data());
  header.SerializeWithCachedSizesToArray(p);
}

Result<MessageView> DecodeMessage(ByteView plaintext) {
  google::protobuf::io::CodedInputStream in(plaintext.data(), static_cast<int>(plaintext.size()));
  uint32_t header_size = 0;
  if (!in.ReadVarint32(&header_size)) {
    return Error(Code::kProtocolError, "truncated message header length");
  }
  size_t prefix = static_cast<size_t>(in.CurrentPosition());
  if (header_size > plaintext.size() - prefix) {
    return Error(Code::kProtocolError, "message header longer than its frame");
  }
  MessageView view;
  if (!view.header.ParseFromArray(plaintext.data() + prefix, static_cast<int>(header_size))) {
    return Error(Code::kProtocolError, "malformed message header");
  }
  if (!FrameHeader::Kind_IsValid(view.header.kind())) {
    return Error(Code::kProtocolError, "unknown message kind");
  }
  view.body = plaintext.subspan(prefix + header_size);
  return view;
}

}  // namespace heka::rpc
