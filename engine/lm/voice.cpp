#include "lm/voice.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/torch_save.h"

namespace personaplex::lm {
namespace {

// The released format holds these two tensors and nothing else.
at::Tensor take_tensor(std::vector<std::pair<std::string, at::Tensor>> &entries, const std::string &key,
                       const std::string &name) {
  for (auto &kv : entries)
    if (kv.first == key) return kv.second;
  throw Error(name + ": no '" + key + "' in the voice file");
}

}  // namespace

VoiceEmbeddings read_voice(const std::string &path, std::string_view bytes, const LmConfig &config) {
  auto entries = read_torch_save(path, bytes);
  VoiceEmbeddings v;
  v.embeddings = take_tensor(entries, "embeddings", path);
  v.cache = take_tensor(entries, "cache", path);
  for (const auto &kv : entries)
    if (kv.first != "embeddings" && kv.first != "cache")
      throw Error(path + ": '" + kv.first + "' is not part of a voice file (only 'embeddings' and 'cache')");
  const auto e = v.embeddings.sizes();
  if (e.size() != 4 || e[1] != 1 || e[2] != 1 || e[3] != config.dim || e[0] < 1)
    throw Error(path + ": 'embeddings' has shape " + shape_string(e) + ", expected [N, 1, 1, " +
                std::to_string(config.dim) + "] (a voice made for another model?)");
  if (!at::isFloatingType(v.embeddings.scalar_type()))
    throw Error(path + ": 'embeddings' is not a floating-point tensor");
  const std::vector<int64_t> want = {1, config.num_streams(), config.ring_size()};
  if (v.cache.sizes().vec() != want)
    throw Error(path + ": 'cache' has shape " + shape_string(v.cache.sizes()) + ", expected " +
                shape_string(want) + " (a voice made for another model?)");
  if (v.cache.scalar_type() != at::kLong) throw Error(path + ": 'cache' is not int64");
  // Ring cells: ids up to the initial token, or -1/-2 (empty / never written).
  at::Tensor text = v.cache.select(1, 0), audio = v.cache.narrow(1, 1, config.n_q);
  if ((text < -2).any().item<bool>() || (text > config.text_card).any().item<bool>() ||
      (audio < -2).any().item<bool>() || (audio > config.card).any().item<bool>())
    throw Error(path + ": 'cache' holds token ids outside the model's vocabularies");
  if (!at::isfinite(v.embeddings.to(at::kFloat)).all().item<bool>())
    throw Error(path + ": 'embeddings' holds non-finite values");
  return v;
}

VoiceEmbeddings load_voice_file(const std::string &path, const LmConfig &config) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the voice file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path + ": cannot read the voice file");
  return read_voice(path, bytes, config);
}

// torch.save's zip layout: data.pkl plus one record per tensor storage. The
// pickle carries no TorchScript type tags, which Python's torch.load
// (weights_only, the default since torch 2.6) refuses.
std::vector<char> torch_save_bytes(const at::IValue &value) {
  std::vector<char> pickle;
  torch::jit::Pickler pickler([&](const char *p, size_t n) { pickle.insert(pickle.end(), p, p + n); },
                              nullptr, nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::vector<char> zip;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void *p, size_t n) {
    zip.insert(zip.end(), static_cast<const char *>(p), static_cast<const char *>(p) + n);
    return n;
  });
  writer.writeRecord("byteorder", "little", 6);
  const auto &tensors = pickler.tensorData();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor &t = tensors[i];  // contiguous CPU tensors owning their storage
    writer.writeRecord("data/" + std::to_string(i), t.data_ptr(), t.storage().nbytes());
  }
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  writer.writeEndOfFile();
  return zip;
}

void save_voice_file(const std::string &path, const VoiceEmbeddings &voice) {
  c10::Dict<std::string, at::Tensor> dict;
  dict.insert("embeddings", voice.embeddings.detach().to(at::kCPU).contiguous().clone());
  dict.insert("cache", voice.cache.detach().to(at::kCPU, at::kLong).contiguous().clone());
  std::vector<char> bytes = torch_save_bytes(at::IValue(dict));
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    if (!out) throw Error(path + ": cannot write the voice file");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(path + ": cannot write the voice file");
}

}  // namespace personaplex::lm
