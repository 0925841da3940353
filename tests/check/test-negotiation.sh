#!/usr/bin/env bash
# Output caps negotiation of personaplex (live and not) and mimidec in real
# pipelines: each picks a format its downstream takes (S16LE for mulawenc
# and alawenc behind audioresample, F32LE into wavenc from F32LE input, what
# a capsfilter forces), and a downstream that takes none of ours is a
# negotiation error naming its caps, not a bare not-negotiated.
#
# Usage: test-negotiation.sh   (PERSONAPLEX_FIXTURES names the fixtures)
# Exits 77 (skipped) without the fixtures or the needed system plugins.
set -euo pipefail

F=${PERSONAPLEX_FIXTURES:-}
[ -f "$F/lm/weights.safetensors" ] || { echo "reference fixtures not found: skipped"; exit 77; }
for element in audiotestsrc audioresample audioconvert mulawenc alawenc wavenc personaplex mimienc mimidec; do
  gst-inspect-1.0 "$element" >/dev/null 2>&1 || { echo "GStreamer element $element not available: skipped"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pp=(personaplex name=pp "lm-weights=$F/lm/weights.safetensors" "lm-config=$F/lm/config.json"
    "mimi-weights=$F/mimi/weights.safetensors" "mimi-config=$F/mimi/config.json"
    "tokenizer=$F/lm/tokenizer.model" "voice=$F/lm/voice.pt" device=cpu greedy=true)
mimi=("weights=$F/mimi/weights.safetensors" "config=$F/mimi/config.json" device=cpu)

# run NAME EXPECTED_FORMAT|error PAD_PATTERN PIPELINE...: the pad's caps
# must carry the format and data must reach out.bin; "error" expects a
# failure posted by the element PAD_PATTERN names.
run() {
  local name=$1 want=$2 pad=$3 rc=0
  shift 3
  echo "== $name"
  rm -f "$tmp/out.bin"
  if [ "$want" = error ]; then
    # The refusal comes at negotiation: a capsfilter "late" narrowed after linking.
    timeout 120 "$PERSONAPLEX_LATE_CAPS_LAUNCH" audio/x-raw,format=S24LE "$@" >"$tmp/log" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || { cat "$tmp/log"; echo "FAIL: $name ran"; exit 1; }
    grep -q "Downstream takes no mono F32LE, S32LE or S16LE audio at 24000 Hz; it takes audio/x-raw, format=(string)S24LE" "$tmp/log" ||
      grep -q "Downstream refused mono audio caps .*; it takes audio/x-raw, format=(string)S24LE" "$tmp/log" ||
      { cat "$tmp/log"; echo "FAIL: $name: no error naming the downstream caps"; exit 1; }
    grep -q "^ERROR from $pad:" "$tmp/log" || { cat "$tmp/log"; echo "FAIL: $name: the error is not $pad's"; exit 1; }
    return 0
  fi
  timeout 120 "$PERSONAPLEX_LATE_CAPS_LAUNCH" - "$@" >"$tmp/log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { cat "$tmp/log"; echo "FAIL: $name exited $rc"; exit 1; }
  grep -q "^next caps: audio/x-raw, format=(string)$want, " "$tmp/log" ||
    { cat "$tmp/log"; echo "FAIL: $name: $pad did not negotiate $want"; exit 1; }
  [ "$(stat -c %s "$tmp/out.bin")" -gt 1000 ] || { echo "FAIL: $name: no output"; exit 1; }
}

out=(filesink "location=$tmp/out.bin")
for live in false true; do
  src=(audiotestsrc is-live=$live num-buffers=12 samplesperbuffer=2400 wave=sine freq=300)
  f32=(audio/x-raw,format=F32LE,rate=24000,channels=1)
  s16=(audio/x-raw,format=S16LE,rate=24000,channels=1)
  p=("${pp[@]}" is-live=$live)
  # The caps are read, at the end, on the sink pad that personaplex's src
  # feeds (element "next").
  padname=pp.src
  run "live=$live: audioresample ! mulawenc" S16LE $padname "${src[@]}" ! "${f32[@]}" ! "${p[@]}" ! audioresample name=next ! audio/x-raw,rate=8000 ! mulawenc ! "${out[@]}"
  run "live=$live: audioresample ! alawenc" S16LE $padname "${src[@]}" ! "${f32[@]}" ! "${p[@]}" ! audioresample name=next ! alawenc ! "${out[@]}"
  run "live=$live: wavenc from F32LE" F32LE $padname "${src[@]}" ! "${f32[@]}" ! "${p[@]}" ! wavenc name=next ! "${out[@]}"
  run "live=$live: wavenc from S16LE" S16LE $padname "${src[@]}" ! "${s16[@]}" ! "${p[@]}" ! wavenc name=next ! "${out[@]}"
  for format in S16LE S32LE F32LE; do
    run "live=$live: capsfilter $format" $format $padname "${src[@]}" ! "${f32[@]}" ! "${p[@]}" ! capsfilter name=next caps=audio/x-raw,format=$format ! "${out[@]}"
  done
  run "live=$live: S24LE only" error pp "${src[@]}" ! "${f32[@]}" ! "${p[@]}" ! capsfilter name=late ! "${out[@]}"
done

codes=(audiotestsrc num-buffers=12 samplesperbuffer=2400 wave=sine freq=300 ! audio/x-raw,format=F32LE,rate=24000,channels=1 ! mimienc "${mimi[@]}")
padname=dec.src
run "mimidec ! audioresample ! mulawenc" S16LE $padname "${codes[@]}" ! mimidec name=dec "${mimi[@]}" ! audioresample name=next ! audio/x-raw,rate=8000 ! mulawenc ! "${out[@]}"
run "mimidec ! wavenc" F32LE $padname "${codes[@]}" ! mimidec name=dec "${mimi[@]}" ! wavenc name=next ! "${out[@]}"
run "mimidec ! capsfilter S32LE" S32LE $padname "${codes[@]}" ! mimidec name=dec "${mimi[@]}" ! capsfilter name=next caps=audio/x-raw,format=S32LE ! "${out[@]}"
run "mimidec ! S24LE only" error dec "${codes[@]}" ! mimidec name=dec "${mimi[@]}" ! capsfilter name=late ! "${out[@]}"
echo "all negotiated"
