#include "opus_packet_joiner.h"

namespace ppserver {
namespace {

constexpr int kMaxPacketBytes = 1275 * 6 + 16;  // 120 ms of the largest frames

int64_t duration_48k(const std::string &packet) {
  const int n = opus_packet_get_nb_samples(reinterpret_cast<const unsigned char *>(packet.data()),
                                           static_cast<opus_int32>(packet.size()), 48000);
  return n > 0 ? n : 0;
}

}  // namespace

OpusPacketJoiner::OpusPacketJoiner(int packets_per_output)
    : per_output_(packets_per_output), repacketizer_(opus_repacketizer_create()) {}

OpusPacketJoiner::~OpusPacketJoiner() { opus_repacketizer_destroy(repacketizer_); }

bool OpusPacketJoiner::push(const uint8_t *data, size_t size, std::vector<std::string> *out,
                            int64_t *samples_48k) {
  pending_.emplace_back(reinterpret_cast<const char *>(data), size);
  if (static_cast<int>(pending_.size()) < per_output_) return false;
  opus_repacketizer_init(repacketizer_);
  bool joined = true;
  for (const std::string &p : pending_)
    joined = joined && opus_repacketizer_cat(repacketizer_, reinterpret_cast<const unsigned char *>(p.data()),
                                             static_cast<opus_int32>(p.size())) == OPUS_OK;
  std::string packet(kMaxPacketBytes, '\0');
  const opus_int32 n =
      joined ? opus_repacketizer_out(repacketizer_, reinterpret_cast<unsigned char *>(&packet[0]), kMaxPacketBytes)
             : -1;
  if (n > 0) {
    packet.resize(static_cast<size_t>(n));
    pending_.assign(1, packet);
  }
  return flush(out, samples_48k);
}

bool OpusPacketJoiner::flush(std::vector<std::string> *out, int64_t *samples_48k) {
  if (pending_.empty()) return false;
  *samples_48k = 0;
  for (const std::string &p : pending_) *samples_48k += duration_48k(p);
  out->swap(pending_);
  pending_.clear();
  return true;
}

}  // namespace ppserver
