#!/usr/bin/env python3
"""reference-bench: the reference PyTorch implementation of PersonaPlex,
measured the way its own server runs a conversation, with the figures of
personaplex-bench (our engine) so that compare-bench.py can set them side
by side.

  reference-bench.py --reference DIR [--device cuda]
      [--weights FILE | --write-random-weights FILE]
      [--steps N] [--warmup N] [--context N] [--voice-frames N]
      [--text-tokens N] [--prompt-runs N] [--voice-audio] [--no-compile]

DIR is a checkout of NVIDIA/personaplex made by fetch-reference (next to
this script); its `moshi` package is imported from DIR/moshi and driven
from here. Nothing is downloaded: the LM (bf16) and both Mimi models (fp32)
are built by the reference's own loaders (moshi.models.loaders) with the
released configuration and random weights.

What is measured, in the order of moshi/server.py (ServerState.__init__,
warmup and handle_chat):
- load_s: with --weights FILE, the reference's loader, loaders.get_moshi_lm,
  loading FILE (a safetensors file in the released layout, e.g. one written
  by `personaplex-bench --write-random-weights` or `personaplex-make-model`)
  onto the device. --write-random-weights FILE first writes the random LM's
  weights to FILE in that layout, then loads them the same way.
- The server's warmup: 4 frames of zeros through mimi.encode,
  other_mimi.encode, LMGen.step, mimi.decode, other_mimi.decode (this
  captures the reference's CUDA graphs and compiles its torch.compile'd
  functions).
- prompt: the start of a conversation as handle_chat runs it: reset the
  streaming states, LMGen.step_system_prompts(mimi) (voice prompt, 0.5 s of
  silence, one step per text-prompt token, 0.5 s of silence), reset Mimi.
  The voice prompt is given as a released voice is (voices/*.pt: stored
  input embeddings, replayed by LMGen.step_embeddings, then the token cache
  restored), with --voice-frames random embeddings, loaded by
  LMGen.load_voice_prompt_embeddings; --voice-audio gives it as audio
  instead (Mimi-encoded frame by frame, like a wav voice; needs numpy).
  --prompt-runs runs, median (the first one also captures the graph of
  step_embeddings).
- frame_ms: per 80 ms frame, batch 1, synchronized before and after:
  mimi.encode, LMGen.step, mimi.decode, the work of one frame of our bench.
- server_frame_ms: the frame of server.py's loop, which also runs a second
  Mimi (other_mimi.encode and .decode, results unused) and reads the audio
  and the text token back to the host.
- stage_ms: a third pass over the server loop, synchronized at every stage.
- gpu_memory_gib: torch.cuda.max_memory_allocated over the run (batch 1);
  gpu_memory_in_use_gib: device memory in use (all processes, as our bench
  reports it) at the end.

The reference serves one conversation per process (one LMGen, a lock in
handle_chat), so batch 1 is the only batch size.

Prints one JSON object on stdout; what the reference prints goes to stderr.
Where a package the reference imports is missing, a stand-in is installed
first and named in "fallbacks" (see fallback_modules).
"""

import argparse
import contextlib
import ctypes
import gc
import importlib
import json
import math
import mmap
import os
import struct
import subprocess
import sys
import tempfile
import time
import types
import warnings

PINNED_COMMIT = "3428dfd95309a7f3c84fd93259ded0f810d1ff91"
REQUIRED_FILES = [
    "moshi/moshi/__init__.py",
    "moshi/moshi/models/lm.py",
    "moshi/moshi/models/loaders.py",
    "moshi/moshi/models/compression.py",
    "moshi/moshi/utils/compile.py",
]
SERVER_WARMUP_FRAMES = 4  # moshi/server.py, ServerState.warmup


def fail(message, code=1):
    print(f"reference-bench: {message}", file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------- arguments


def count(text):
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"needs a non-negative integer, got '{text}'")
    return n


def positive(text):
    n = count(text)
    if n == 0:
        raise argparse.ArgumentTypeError("needs a positive integer")
    return n


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="reference-bench",
        description="Measure the reference PyTorch PersonaPlex (NVIDIA/personaplex) "
        "as its server runs it; prints one JSON object.")
    p.add_argument("--reference", required=True, metavar="DIR",
                   help="checkout of NVIDIA/personaplex (made by fetch-reference)")
    p.add_argument("--device", default="cuda", help="torch device (default cuda)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--weights", metavar="FILE",
                   help="LM weights (safetensors, released layout) to load with the reference's loader")
    w.add_argument("--write-random-weights", metavar="FILE",
                   help="write the random LM's weights to FILE, then load them")
    p.add_argument("--steps", type=positive, default=100, help="timed frames per loop (100)")
    p.add_argument("--warmup", type=count, default=10,
                   help="untimed frames after the prompts, before timing (10)")
    p.add_argument("--context", type=count, default=0,
                   help="step the conversation to N steps before the warmup frames (0)")
    p.add_argument("--voice-frames", type=count, default=20, help="voice prompt frames (20)")
    p.add_argument("--text-tokens", type=count, default=40, help="text prompt tokens (40)")
    p.add_argument("--prompt-runs", type=positive, default=5, help="prompt phases timed (5)")
    p.add_argument("--voice-audio", action="store_true",
                   help="give the voice prompt as audio (Mimi-encoded) instead of stored embeddings")
    p.add_argument("--no-compile", action="store_true",
                   help="run the reference's torch.compile'd functions eagerly (NO_TORCH_COMPILE=1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (0)")
    return p.parse_args(argv)


def check_reference(directory):
    """The checkout's root (absolute); exits with a message when DIR is not one."""
    root = os.path.abspath(directory)
    if not os.path.isdir(root):
        fail(f"'{directory}' is not a directory; make a checkout of the reference with "
             f"fetch-reference DIR (engine/tools/reference/)", 2)
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(root, f))]
    if missing:
        fail(f"'{directory}' is not a checkout of NVIDIA/personaplex ({missing[0]} is missing); "
             f"make one with fetch-reference DIR (engine/tools/reference/)", 2)
    return root


def reference_commit(root):
    path = os.path.join(root, ".reference-commit")
    if os.path.isfile(path):
        with open(path) as f:
            return f.read().strip()
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=30)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return None


# ---------------------------------------------------------------- fallbacks
#
# The reference's package imports more than the measured path needs. Where a
# package is missing, a module is put into sys.modules while the reference
# is imported:
# - not on the measured path, stubs: sphn (audio files), tqdm (progress bars);
# - on it, small stand-ins doing the same work:
#   safetensors.torch (load_file, save_file, load_model): a reader and writer
#   of the format (8-byte little-endian header length, JSON header, raw data);
#   einops.rearrange: the seven patterns the reference uses, as the same
#   view/permute/reshape operations einops performs (they run inside the
#   reference's CUDA graphs);
#   numpy: what the reference uses while building LMGen (token constants, the
#   440 Hz frame) and SEANet (np.prod), backed by torch; not in the frame loop.


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    m.__dict__["__reference_bench_fallback__"] = True
    return m


def _missing_stub(name, why):
    m = _module(name)

    def __getattr__(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise RuntimeError(f"{name} is not installed ({why}); {name}.{attr} is not available")

    m.__getattr__ = __getattr__
    return m


def _importable(name):
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


SAFETENSORS_DTYPES = {}  # filled in by torch_dtypes()


def torch_dtypes(torch):
    names = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64",
             "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
             "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
    for code, attr in names.items():
        if hasattr(torch, attr):
            SAFETENSORS_DTYPES[code] = getattr(torch, attr)


def safetensors_load_file(filename, device="cpu"):
    """safetensors.torch.load_file: {name: tensor} on `device`."""
    import torch
    if isinstance(device, int):
        device = torch.device("cuda", device)
    device = torch.device(device)
    out = {}
    with open(filename, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        size = os.fstat(f.fileno()).st_size
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size > base else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # frombuffer on a read-only map
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                dtype = SAFETENSORS_DTYPES.get(info["dtype"])
                if dtype is None:
                    raise ValueError(f"{filename}: {name} has dtype {info['dtype']}, not supported")
                shape = list(info["shape"])
                begin, end = info["data_offsets"]
                numel = math.prod(shape)
                if numel == 0:
                    out[name] = torch.empty(shape, dtype=dtype, device=device)
                    continue
                if end - begin != numel * torch.empty(0, dtype=dtype).element_size():
                    raise ValueError(f"{filename}: {name} has {end - begin} bytes for shape {shape}")
                t = torch.frombuffer(mm, dtype=dtype, count=numel, offset=base + begin).view(shape)
                # A copy either way: the map is closed below.
                out[name] = t.to(device) if device.type != "cpu" else t.clone()
                del t  # releases its hold on the map
    finally:
        if mm is not None:
            try:
                mm.close()
            except BufferError:  # a view still alive; the map goes with it
                pass
    return out


def write_safetensors(tensors, filename, metadata=None):
    """Writes {name: tensor} as a safetensors file, one tensor at a time."""
    import torch
    codes = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}
    header = {"__metadata__": dict(metadata or {"format": "pt"})}
    items = list(tensors.items())
    offset = 0
    for name, t in items:
        if t.dtype not in codes:
            raise ValueError(f"{name}: dtype {t.dtype} cannot be written")
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    partial = filename + ".partial"
    with open(partial, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for name, t in items:
            c = t.detach().contiguous().to("cpu")
            n = c.numel() * c.element_size()
            if n:
                f.write(memoryview((ctypes.c_char * n).from_address(c.data_ptr())))
            del c
    os.replace(partial, filename)


def safetensors_load_model(model, filename, strict=True, device="cpu"):
    return model.load_state_dict(safetensors_load_file(filename, device=device), strict=strict)


REARRANGE_PATTERNS = {
    "b t (p h d) -> p b h t d":
        lambda x, p, h: x.view(x.shape[0], x.shape[1], p, h, -1).permute(2, 0, 3, 1, 4),
    "b h t d -> b t (h d)":
        lambda x: x.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1),
    "b c t -> (b c) () t": lambda x: x.reshape(-1, 1, x.shape[-1]),
    "(b c) () t -> b c t": lambda x, b: x.reshape(b, -1, x.shape[-1]),
    "... d -> (...) d": lambda x: x.reshape(-1, x.shape[-1]),
    "b d n -> b n d": lambda x: x.permute(0, 2, 1),
    "b n d -> b d n": lambda x: x.permute(0, 2, 1),
}


def rearrange(tensor, pattern, **sizes):
    key = " ".join(pattern.split())
    fn = REARRANGE_PATTERNS.get(key)
    if fn is None:
        raise NotImplementedError(
            f"einops is not installed and reference-bench's rearrange does not know '{pattern}'; "
            "install einops")
    return fn(tensor, **sizes)


def numpy_standin(torch):
    class Array(torch.Tensor):
        def astype(self, dtype):
            return self.as_subclass(torch.Tensor).to(dtype)

    def array(obj, dtype=None):
        return torch.tensor(obj, dtype=dtype)

    def linspace(start, stop, num, endpoint=True):
        step = (stop - start) / max(1, (num - 1 if endpoint else num))
        t = torch.arange(num, dtype=torch.float64) * step + start
        return t.as_subclass(Array)

    def zeros(shape, dtype=torch.float64):
        return torch.zeros(shape, dtype=dtype)

    def concatenate(arrays, axis=0):
        return torch.cat([torch.as_tensor(a) for a in arrays], dim=axis)

    return _module("numpy", array=array, linspace=linspace, sin=torch.sin, pi=math.pi,
                   prod=lambda xs: math.prod(xs), zeros=zeros, concatenate=concatenate,
                   int64=torch.int64, float32=torch.float32, float64=torch.float64,
                   ndarray=torch.Tensor)


def fallback_modules(torch):
    """Stand-ins for the packages that are missing: ({module name: module},
    what was stood in for)."""
    modules, used = {}, []
    if not _importable("safetensors.torch"):
        st = _module("safetensors.torch", load_file=safetensors_load_file,
                     save_file=write_safetensors, load_model=safetensors_load_model)
        modules.update({"safetensors": _module("safetensors", torch=st), "safetensors.torch": st})
        used.append("safetensors: missing; a reader of the format in this script loads the weights")
    if not _importable("einops"):
        modules["einops"] = _module("einops", rearrange=rearrange)
        used.append("einops: missing; rearrange of this script (the reference's 7 patterns, "
                    "same view/permute/reshape ops) in the attention and quantizer")
    if not _importable("numpy"):
        modules["numpy"] = numpy_standin(torch)
        used.append("numpy: missing; a torch-backed stand-in for what LMGen and SEANet use "
                    "while being built (not in the frame loop)")
    if not _importable("sphn"):
        modules["sphn"] = _missing_stub("sphn", "only audio files need it")
        used.append("sphn: missing; stub (audio files only, not measured)")
    if not _importable("tqdm.auto"):
        auto = _module("tqdm.auto", tqdm=lambda iterable=None, *a, **k: iterable)
        modules.update({"tqdm": _module("tqdm", auto=auto, tqdm=auto.tqdm), "tqdm.auto": auto})
        used.append("tqdm: missing; stub (progress bars only)")
    return modules, used


def import_reference(root, torch, fallbacks):
    """The reference's modules, from ROOT/moshi. The stand-ins are in
    sys.modules only while the reference is imported (its modules keep
    them): PyTorch's own optional imports (numpy, einops in torch.compile)
    must still find what is really installed."""
    if not os.environ.get("NO_TORCH_COMPILE"):
        import torch._dynamo  # noqa: F401  (binds its optional imports now)
    modules, used = fallback_modules(torch)
    fallbacks.extend(used)
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    sys.path.insert(0, os.path.join(root, "moshi"))
    try:
        moshi = importlib.import_module("moshi")
        loaders = importlib.import_module("moshi.models.loaders")
        lm = importlib.import_module("moshi.models.lm")
        compile_utils = importlib.import_module("moshi.utils.compile")
    except ImportError as e:
        fail(f"importing the reference's moshi package failed: {e}. A package it imports is "
             "missing and has no stand-in here: install it (pip) and run again")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    where = os.path.dirname(os.path.abspath(moshi.__file__))
    if not where.startswith(os.path.join(root, "moshi")):
        fail(f"imported moshi from {where}, not from the checkout {root}: "
             "an installed moshi package shadows it (pip uninstall moshi)")
    return loaders, lm, compile_utils


def is_standin(module):
    return getattr(module, "__reference_bench_fallback__", False)


# ---------------------------------------------------------------- measuring


def summary(ms):
    """median, p99, min and max, as personaplex-bench reports them."""
    if not ms:
        return None
    s = sorted(ms)

    def at(q):
        return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]

    return {"median": at(0.5), "p99": at(0.99), "min": s[0], "max": s[-1]}


def looks_like_compile_error(e):
    """Whether an exception came out of torch.compile (dynamo, inductor, triton)."""
    seen = 0
    while e is not None and seen < 8:
        module = type(e).__module__ or ""
        text = str(e).lower()
        if module.startswith(("torch._dynamo", "torch._inductor", "triton")) \
                or "inductor" in text or "triton" in text or "dynamo" in text:
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


def build_mimi(torch, loaders, device):
    """loaders.get_mimi with the released configuration and random weights:
    its file load is skipped, the codebooks are filled with random vectors
    (they start as zeros)."""
    real_load_model = loaders.load_model
    loaders.load_model = lambda model, filename, *a, **k: None
    try:
        mimi = loaders.get_mimi("random-weights.safetensors", device)
    finally:
        loaders.load_model = real_load_model
    for m in mimi.modules():
        if hasattr(m, "embedding_sum") and isinstance(m.embedding_sum, torch.Tensor):
            m.embedding_sum.normal_()
            m.register_buffer("_embedding", None, persistent=False)
    return mimi


def voice_prompt_file(torch, lm_gen, lm_model, frames, path, dtype):
    """A voice prompt file as the released voices/*.pt are: stored input
    embeddings [frames, 1, 1, dim] and the token cache after them."""
    cache_shape = tuple(lm_gen._streaming_state.cache.shape)
    cache = torch.randint(0, lm_model.card, cache_shape, dtype=torch.long)
    cache[:, 0] = lm_gen.zero_text_code  # text: PAD
    torch.save({"embeddings": torch.randn(frames, 1, 1, lm_model.dim, dtype=dtype),
                "cache": cache}, path)


def run(args, root, torch, fallbacks):
    loaders, lm_module, compile_utils = import_reference(root, torch, fallbacks)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            fail("CUDA is not available to this PyTorch")
        if device.index is not None:
            torch.cuda.set_device(device)
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = torch.bfloat16  # loaders.get_moshi_lm's default, as the server loads it

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def now_ms():
        return time.perf_counter() * 1e3

    torch.manual_seed(args.seed)

    # Two Mimi models, as server.py and offline.py build them.
    mimi = build_mimi(torch, loaders, args.device)
    other_mimi = build_mimi(torch, loaders, args.device)

    # The LM: random in memory, or loaded from a file by the reference.
    weights, write_s, load_s = "random in memory", 0.0, None
    if args.write_random_weights:
        lm = loaders.get_moshi_lm(None, device=args.device, dtype=dtype)
        t0 = now_ms()
        write_safetensors(lm.state_dict(), args.write_random_weights)
        write_s = (now_ms() - t0) / 1e3
        del lm
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        weights = args.write_random_weights
    elif args.weights:
        weights = args.weights
    if weights != "random in memory":
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        sync()
        t0 = now_ms()
        lm = loaders.get_moshi_lm(weights, device=args.device, dtype=dtype)
        sync()
        load_s = (now_ms() - t0) / 1e3
        unloaded = [n for n, p in lm.named_parameters() if p.is_meta]
        if unloaded:
            fail(f"{weights} lacks {len(unloaded)} tensors of the released layout "
                 f"(e.g. {unloaded[0]})")
    else:
        lm = loaders.get_moshi_lm(None, device=args.device, dtype=dtype)
    lm.eval()

    # LMGen as server.py's ServerState builds it (default sampling).
    with warnings.catch_warnings():
        if is_standin(lm_module.np):
            warnings.simplefilter("ignore")  # torch.tensor() of a tensor
        lm_gen = lm_module.LMGen(lm, audio_silence_frame_cnt=int(0.5 * mimi.frame_rate),
                                 sample_rate=mimi.sample_rate, device=args.device,
                                 frame_rate=mimi.frame_rate)
    frame_size = int(mimi.sample_rate / mimi.frame_rate)

    def start_streaming():
        mimi.streaming_forever(1)
        other_mimi.streaming_forever(1)
        lm_gen.streaming_forever(1)

    def server_warmup():  # ServerState.warmup
        for _ in range(SERVER_WARMUP_FRAMES):
            chunk = torch.zeros(1, 1, frame_size, dtype=torch.float32, device=device)
            codes = mimi.encode(chunk)
            other_mimi.encode(chunk)
            for c in range(codes.shape[-1]):
                tokens = lm_gen.step(codes[:, :, c:c + 1])
                if tokens is None:
                    continue
                mimi.decode(tokens[:, 1:9])
                other_mimi.decode(tokens[:, 1:9])
        sync()

    start_streaming()
    compiled = not args.no_compile
    try:
        server_warmup()
    except Exception as e:  # torch.compile needs triton and a C compiler with Python's headers
        if not compiled or not looks_like_compile_error(e):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        fallbacks.append(f"torch.compile failed ({first}); the reference's compiled functions "
                         "(gating FFN, RoPE) ran eagerly")
        compiled = False
        compile_utils._compile_disabled = True
        torch._dynamo.reset()
        start_streaming()
        server_warmup()

    # The prompts, as handle_chat runs them.
    lm_gen.text_prompt_tokens = [4 + i % (lm.text_card - 4) for i in range(args.text_tokens)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.voice_frames and args.voice_audio:
            if is_standin(lm_module.np):
                fail("--voice-audio needs numpy (the reference frames the audio with it)")
            import numpy
            rng = numpy.random.default_rng(args.seed)
            lm_gen.voice_prompt_audio = (0.1 * rng.standard_normal(
                (1, args.voice_frames * frame_size))).astype(numpy.float32)
        elif args.voice_frames:
            path = os.path.join(tmp, "voice.pt")
            voice_prompt_file(torch, lm_gen, lm, args.voice_frames, path, dtype)
            lm_gen.load_voice_prompt_embeddings(path)

    def prompt_phase():
        mimi.reset_streaming()
        other_mimi.reset_streaming()
        lm_gen.reset_streaming()
        lm_gen.step_system_prompts(mimi)
        mimi.reset_streaming()

    prompt_ms = []
    for _ in range(args.prompt_runs):
        sync()
        t0 = now_ms()
        prompt_phase()
        sync()
        prompt_ms.append(now_ms() - t0)
    silence = lm_gen.audio_silence_frame_cnt
    prompt_calls = args.voice_frames + 2 * silence + args.text_tokens
    # LMGen's first step() only fills its token cache; step_embeddings runs
    # the model from its first call.
    embeddings_first = args.voice_frames > 0 and not args.voice_audio
    prompt_model_steps = prompt_calls if embeddings_first else max(0, prompt_calls - 1)

    # The conversation: frames of noise from the host, as the server's come.
    pcm = 0.1 * torch.randn(1, 1, frame_size, dtype=torch.float32)
    stages = {}

    def staged(name, fn, on):
        if not on:
            return fn()
        sync()
        t0 = now_ms()
        result = fn()
        sync()
        stages.setdefault(name, []).append(now_ms() - t0)
        return result

    def frame(server_loop, timed_stages=False):
        """One 80 ms frame: mimi.encode, LMGen.step, mimi.decode; with
        server_loop, as server.py's opus_loop runs it."""
        chunk = pcm.to(device=device)
        codes = staged("mimi_encode", lambda: mimi.encode(chunk), timed_stages)
        if server_loop:
            staged("other_mimi_encode", lambda: other_mimi.encode(chunk), timed_stages)
        for c in range(codes.shape[-1]):
            tokens = staged("lm_step", lambda: lm_gen.step(codes[:, :, c:c + 1]), timed_stages)
            if tokens is None:
                continue
            out = staged("mimi_decode", lambda: mimi.decode(tokens[:, 1:9]), timed_stages)
            if server_loop:
                staged("other_mimi_decode", lambda: other_mimi.decode(tokens[:, 1:9]),
                       timed_stages)
                staged("host_reads", lambda: (out.cpu(), tokens[0, 0, 0].item()), timed_stages)

    state = lm_gen._streaming_state
    for _ in range(max(0, args.context - state.offset)):
        frame(False)
    for _ in range(args.warmup):
        frame(True)
    steps_before_timing = state.offset

    def timed_loop(server_loop):
        ms = []
        for _ in range(args.steps):
            sync()
            t0 = now_ms()
            frame(server_loop)
            sync()
            ms.append(now_ms() - t0)
        return ms

    frame_ms = timed_loop(False)
    server_frame_ms = timed_loop(True)
    for _ in range(args.steps):
        frame(True, timed_stages=True)
    sync()

    commit = reference_commit(root)
    out = {
        "implementation": "reference: NVIDIA/personaplex (PyTorch)",
        "reference_commit": commit,
        "reference_commit_pinned": commit == PINNED_COMMIT,
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "mimi_dtype": str(next(mimi.parameters()).dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "lm_config": "released (moshi.models.loaders)",
        "mimi_config": "released (moshi.models.loaders)",
        "weights": weights,
        "weights_write_s": write_s,
        "load_s": load_s,
        "steps": args.steps,
        "warmup": args.warmup,
        "context": args.context,
        "steps_before_timing": steps_before_timing,
        "batch": 1,
        "max_batch": 1,
        "batch_note": "the reference serves one conversation per process",
        "cuda_graphs": cuda and compile_utils._is_cuda_graph_enabled(),
        "torch_compile": compiled,
        "prompt": {
            "ms": summary(prompt_ms),
            "first_ms": prompt_ms[0],
            "runs": args.prompt_runs,
            "voice_frames": args.voice_frames,
            "voice_source": "audio" if args.voice_audio else "embeddings",
            "text_tokens": args.text_tokens,
            "silence_frames": 2 * silence,
            "model_steps": prompt_model_steps,
        },
        "prompt_ms": summary(prompt_ms)["median"],
        "frame_ms": summary(frame_ms),
        "server_frame_ms": summary(server_frame_ms),
        "stage_ms": {name: summary(ms) for name, ms in stages.items()},
        "fallbacks": fallbacks,
    }
    if os.path.isfile(weights):
        out["weights_gib"] = os.path.getsize(weights) / 2**30
    if cuda:
        free, total = torch.cuda.mem_get_info()
        out.update({
            "device_name": torch.cuda.get_device_name(device),
            "cuda": torch.version.cuda,
            "gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "gpu_memory_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
            "gpu_memory_in_use_gib": (total - free) / 2**30,
        })
    else:
        out.update({"device_name": str(device), "gpu_memory_gib": None})
    return out


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    root = check_reference(args.reference)
    if args.weights and not os.path.isfile(args.weights):
        fail(f"--weights {args.weights}: no such file", 2)
    if args.write_random_weights:
        parent = os.path.dirname(os.path.abspath(args.write_random_weights))
        if not os.path.isdir(parent):
            fail(f"--write-random-weights {args.write_random_weights}: no directory {parent}", 2)
    if args.no_compile:
        # Read by moshi.utils.compile when the reference's modules are defined.
        os.environ["NO_TORCH_COMPILE"] = "1"
    try:
        import torch
    except ImportError as e:
        fail(f"PyTorch is needed ({e}); run this with the python that has torch")
    torch_dtypes(torch)
    fallbacks = []

    # The reference prints progress: keep stdout for the JSON.
    stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr), torch.no_grad():
            result = run(args, root, torch, fallbacks)
    except torch.cuda.OutOfMemoryError as e:
        fail(f"out of GPU memory: {str(e).splitlines()[0]}")
    json.dump(result, stdout, indent=1)
    stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
