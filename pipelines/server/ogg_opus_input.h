// A client's Ogg Opus stream (RFC 7845) decoded to mono float samples, as
// its bytes arrive. Takes any valid stream: the OpusHead's input sample
// rate is informational only (a browser writes its page's rate there, such
// as 44100), any channel count and mapping (downmixed), any packet duration
// from 2.5 to 120 ms, pages cut or joined anywhere. Honours the pre-skip and
// output gain; follows chained streams. A stream that is not Ogg Opus is
// named in the error: what was found instead.
#pragma once

#include <opus_multistream.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ogg_packet_reader.h"

namespace ppserver {

class OggOpusInput {
 public:
  // Decodes at `rate`: 48000, 24000, 16000, 12000 or 8000 (libopus's rates).
  explicit OggOpusInput(int rate);
  ~OggOpusInput();
  OggOpusInput(const OggOpusInput &) = delete;
  OggOpusInput &operator=(const OggOpusInput &) = delete;

  // Takes more bytes of the stream and appends what they decode to. False
  // once the stream is not Ogg Opus; error() then says why.
  bool push(const uint8_t *data, size_t size, std::vector<float> *pcm);

  const std::string &error() const { return error_; }
  int rate() const { return rate_; }
  // From the current OpusHead (0 before it).
  int channels() const { return channels_; }
  uint32_t input_rate() const { return input_rate_; }
  uint64_t packets() const { return packets_; }

 private:
  bool packet(const OggPacketReader::Packet &p, std::vector<float> *pcm);
  bool read_head(const std::string &head);
  bool decode(const std::string &packet, std::vector<float> *pcm);
  bool fail(const std::string &why);

  enum class Expect { kHead, kTags, kAudio };

  int rate_;
  OggPacketReader reader_;
  OpusMSDecoder *decoder_ = nullptr;
  Expect expect_ = Expect::kHead;
  int channels_ = 0;
  uint32_t input_rate_ = 0;
  int64_t skip_ = 0;        // pre-skip samples (at rate_) still to drop
  int last_frame_ = 0;      // samples per channel of the last packet (for a lost one)
  uint64_t packets_ = 0;    // audio packets decoded
  std::vector<float> frame_;
  std::string error_;
};

}  // namespace ppserver
