#!/usr/bin/env bash
# Runs the pipelines/mimi-*.sh scripts end to end on the reference fixtures'
# Mimi and checks what they write: the round trip and the decoded code file
# against the reference decode (within 1e-4), the code file against the
# reference codes (exactly), and lengths (a round trip keeps a partial frame).
#
# Usage: test-mimi-pipelines.sh PIPELINES_DIR   (PERSONAPLEX_FIXTURES names the fixtures)
# Exits 77 (skipped) without the fixtures or the needed system plugins.
set -euo pipefail

pipelines=$1
mimi=${PERSONAPLEX_FIXTURES:-}/mimi
if [ ! -f "$mimi/weights.safetensors" ]; then
  echo "reference fixtures not found (PERSONAPLEX_FIXTURES): skipped"
  exit 77
fi
for element in wavparse wavenc audioconvert audioresample audiotestsrc filesrc mimienc; do
  if ! gst-inspect-1.0 "$element" >/dev/null 2>&1; then
    echo "GStreamer element $element not available: skipped"
    exit 77
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=(-w "$mimi/weights.safetensors" -c "$mimi/config.json")

# check.py MODE ARGS: the checks, reading wav and safetensors with the stdlib.
cat > "$tmp/check.py" <<'PY'
import json, struct, sys

def wav_samples(path):
    data = open(path, 'rb').read()
    assert data[:4] == b'RIFF' and data[8:12] == b'WAVE', path + ': not a wav file'
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack('<I', data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b'fmt ':
            tag, channels, rate = struct.unpack('<HHI', body[:8])
            bits = struct.unpack('<H', body[14:16])[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b'data':
            tag, channels, rate, bits = fmt
            assert channels == 1 and rate == 24000, '%s: %d channels at %d Hz' % (path, channels, rate)
            if bits == 32:
                return list(struct.unpack('<%df' % (len(body) // 4), body))
            return [v / 32768.0 for v in struct.unpack('<%dh' % (len(body) // 2), body)]
        pos += 8 + size + (size & 1)
    raise AssertionError(path + ': no data chunk')

def reference(name):
    raw = open(sys.argv[2] + '/io.safetensors', 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    info = json.loads(raw[8:8 + n])[name]
    begin, end = info['data_offsets']
    body = raw[8 + n + begin:8 + n + end]
    code = {'F32': 'f', 'I64': 'q'}[info['dtype']]
    return info['shape'], struct.unpack('<%d%s' % (len(body) // struct.calcsize(code), code), body)

mode = sys.argv[1]
if mode == 'pcm':  # pcm FIXTURES OUT.wav: the reference decode
    out = wav_samples(sys.argv[3])
    shape, ref = reference('decoded_pcm')
    assert len(out) == len(ref), 'length %d, expected %d' % (len(out), len(ref))
    worst = max(abs(a - b) for a, b in zip(out, ref))
    assert worst <= 1e-4, 'differs from the reference decode by %g' % worst
elif mode == 'codes':  # codes FIXTURES OUT.mimi: the reference codes, frame by frame
    data = open(sys.argv[3], 'rb').read()
    (_, k, t), ref = reference('codes')
    expected = b''.join(struct.pack('<H', ref[c * t + f]) for f in range(t) for c in range(k))
    assert len(data) == len(expected), '%d bytes, expected %d' % (len(data), len(expected))
    assert data == expected, 'codes differ from the reference'
elif mode == 'length':  # length FIXTURES OUT.wav N
    n = len(wav_samples(sys.argv[3]))
    assert n == int(sys.argv[4]), '%d samples, expected %s' % (n, sys.argv[4])
PY

step() { echo "== $*"; }
check() { python3 "$tmp/check.py" "$1" "$mimi" "${@:2}"; }

step "round trip of the reference input, F32LE out"
"$pipelines/mimi-roundtrip.sh" "${model[@]}" -f F32LE "$mimi/input_f32.wav" "$tmp/roundtrip.wav"
check pcm "$tmp/roundtrip.wav"

step "store the reference input's codes"
"$pipelines/mimi-store-tokens.sh" "${model[@]}" "$mimi/input_f32.wav" "$tmp/input.mimi"
check codes "$tmp/input.mimi"

step "decode the stored codes, F32LE out"
"$pipelines/mimi-decode-tokens.sh" "${model[@]}" -f F32LE "$tmp/input.mimi" "$tmp/decoded.wav"
check pcm "$tmp/decoded.wav"

step "round trip of 30000 samples of stereo 48 kHz (15.6 frames), S16LE out"
gst-launch-1.0 -q audiotestsrc num-buffers=1 samplesperbuffer=60000 wave=ticks ! \
  audio/x-raw,rate=48000,channels=2 ! wavenc ! filesink location="$tmp/partial.wav"
"$pipelines/mimi-roundtrip.sh" "${model[@]}" "$tmp/partial.wav" "$tmp/partial-out.wav"
check length "$tmp/partial-out.wav" 30000

step "store and decode the same: whole frames"
"$pipelines/mimi-store-tokens.sh" "${model[@]}" "$tmp/partial.wav" "$tmp/partial.mimi"
[ "$(stat -c %s "$tmp/partial.mimi")" -eq $((16 * 16)) ]
"$pipelines/mimi-decode-tokens.sh" "${model[@]}" "$tmp/partial.mimi" "$tmp/partial-decoded.wav"
check length "$tmp/partial-decoded.wav" $((16 * 1920))

echo "all mimi pipelines passed"
