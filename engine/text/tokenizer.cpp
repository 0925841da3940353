#include "text/tokenizer.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <mutex>

#include "core/error.h"
#include "text/spm_abi.h"
#include "text/spm_paths.h"

#if defined(__SANITIZE_ADDRESS__)
#define PERSONAPLEX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PERSONAPLEX_ASAN 1
#endif
#endif

namespace personaplex::text {
namespace {

const char *kModuleName = "personaplex-spm.so";

bool is_file(const std::string &p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string dirname_of(const std::string &p) {
  auto slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

std::vector<std::string> candidates() {
  std::vector<std::string> c;
  if (const char *env = std::getenv("PERSONAPLEX_SPM_MODULE")) c.push_back(env);
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&candidates), &info) && info.dli_fname) {
    const std::string here = dirname_of(info.dli_fname);
    c.push_back(here + "/" + kModuleName);
    c.push_back(here + "/../gst-personaplex/" + kModuleName);
  }
#ifdef PERSONAPLEX_SPM_INSTALL_DIR
  c.push_back(std::string(PERSONAPLEX_SPM_INSTALL_DIR) + "/" + kModuleName);
#endif
#ifdef PERSONAPLEX_SPM_BUILD_DIR
  c.push_back(std::string(PERSONAPLEX_SPM_BUILD_DIR) + "/" + kModuleName);
#endif
  return c;
}

// The module's entry points, resolved once per process.
struct Module {
  std::string path;
  decltype(&personaplex_spm_open) open = nullptr;
  decltype(&personaplex_spm_close) close = nullptr;
  decltype(&personaplex_spm_vocab_size) vocab_size = nullptr;
  decltype(&personaplex_spm_encode) encode = nullptr;
  decltype(&personaplex_spm_id_to_piece) id_to_piece = nullptr;
};

template <typename F>
void resolve(void *handle, const char *name, F &out, const std::string &path) {
  out = reinterpret_cast<F>(dlsym(handle, name));
  if (!out) throw Error(path + ": the SentencePiece module lacks " + name);
}

// Its own copy of protobuf must not meet libtorch's: local symbols, and the
// module binds to its own dependencies first. AddressSanitizer refuses
// RTLD_DEEPBIND; there the module (built without the sanitizer) gets a link
// namespace of its own, which keeps the two apart the same way.
void *open_module(const std::string &path) {
#ifdef PERSONAPLEX_ASAN
  return dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
#else
  return dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
}

Module load_module() {
  std::string tried;
  for (const auto &path : candidates()) {
    if (!is_file(path)) {
      tried += " " + path;
      continue;
    }
    void *h = open_module(path);
    if (!h) throw Error(path + ": cannot load the SentencePiece module: " + dlerror());
    auto version = reinterpret_cast<int (*)()>(dlsym(h, "personaplex_spm_abi_version"));
    if (!version || version() != PERSONAPLEX_SPM_ABI_VERSION)
      throw Error(path + ": SentencePiece module of another version");
    Module m;
    m.path = path;
    resolve(h, "personaplex_spm_open", m.open, path);
    resolve(h, "personaplex_spm_close", m.close, path);
    resolve(h, "personaplex_spm_vocab_size", m.vocab_size, path);
    resolve(h, "personaplex_spm_encode", m.encode, path);
    resolve(h, "personaplex_spm_id_to_piece", m.id_to_piece, path);
    return m;
  }
  throw Error(std::string("SentencePiece module ") + kModuleName +
              " not found (set PERSONAPLEX_SPM_MODULE); looked at:" + tried);
}

const Module &module() {
  static std::once_flag once;
  static Module m;
  static std::string error;
  std::call_once(once, [] {
    try {
      m = load_module();
    } catch (const Error &e) {
      error = e.what();
    }
  });
  if (!error.empty()) throw Error(error);
  return m;
}

}  // namespace

struct Tokenizer::Impl {
  const Module *mod = nullptr;
  personaplex_spm *spm = nullptr;
  std::string path;
};

Tokenizer::Tokenizer(const std::string &model_path) : impl_(std::make_unique<Impl>()) {
  if (!is_file(model_path)) throw Error(model_path + ": tokenizer model not found");
  impl_->mod = &module();
  impl_->path = model_path;
  char error[512] = {0};
  impl_->spm = impl_->mod->open(model_path.c_str(), error, sizeof error);
  if (!impl_->spm) throw Error(model_path + ": not a SentencePiece model: " + error);
}

Tokenizer::~Tokenizer() {
  if (impl_ && impl_->spm) impl_->mod->close(impl_->spm);
}

std::string Tokenizer::module_path() { return module().path; }

int64_t Tokenizer::vocab_size() const { return impl_->mod->vocab_size(impl_->spm); }

std::vector<int64_t> Tokenizer::encode(const std::string &text) const {
  std::vector<int> ids(text.size() + 16);
  long n = impl_->mod->encode(impl_->spm, text.data(), text.size(), ids.data(), ids.size());
  if (n > long(ids.size())) {
    ids.resize(size_t(n));
    n = impl_->mod->encode(impl_->spm, text.data(), text.size(), ids.data(), ids.size());
  }
  if (n < 0) throw Error(impl_->path + ": cannot encode the text");
  return {ids.begin(), ids.begin() + n};
}

std::string Tokenizer::piece(int64_t id) const {
  std::string out(64, '\0');
  long n = -1;
  if (id >= 0 && id <= INT32_MAX) {
    n = impl_->mod->id_to_piece(impl_->spm, int(id), out.data(), out.size());
    if (n > long(out.size())) {
      out.resize(size_t(n));
      n = impl_->mod->id_to_piece(impl_->spm, int(id), out.data(), out.size());
    }
  }
  if (n < 0)
    throw Error(impl_->path + ": token id " + std::to_string(id) + " is outside the vocabulary of " +
                std::to_string(vocab_size()));
  out.resize(size_t(n));
  return out;
}

std::string Tokenizer::text(int64_t id) const {
  if (!is_word(id)) return "";
  std::string p = piece(id), out;
  static const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space
  for (size_t i = 0; i < p.size();) {
    if (p.compare(i, kSpace.size(), kSpace) == 0) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += p[i++];
    }
  }
  return out;
}

std::string wrap_system_prompt(const std::string &prompt) {
  const char *ws = " \t\n\r\f\v";
  const auto b = prompt.find_first_not_of(ws);
  const std::string s = b == std::string::npos ? "" : prompt.substr(b, prompt.find_last_not_of(ws) - b + 1);
  const std::string tag = "<system>";
  const bool wrapped = s.size() >= tag.size() && s.compare(0, tag.size(), tag) == 0 &&
                       s.compare(s.size() - tag.size(), tag.size(), tag) == 0;
  return wrapped ? s : tag + " " + s + " " + tag;
}

std::vector<int64_t> encode_role_prompt(const Tokenizer &tokenizer, const std::string &prompt) {
  if (prompt.empty()) return {};
  return tokenizer.encode(wrap_system_prompt(prompt));
}

}  // namespace personaplex::text
