#!/usr/bin/env bash
# End-to-end tests of the pipeline scripts and the model tools on the
# reference fixtures' tiny model (CPU, greedy): what each writes is checked
# by check.py.
#
# Usage: test-pipelines.sh CASE PIPELINES_DIR
#   CASE: offline, live, rtp, telephony, speakerphone, record-mkv, broadcast,
#         parse, fetch-model, voice, make-model, demo-model, live-demo,
#         python
# Environment: PERSONAPLEX_FIXTURES (the fixtures), PERSONAPLEX_TOOLS (the
# built tools), PERSONAPLEX_PARSE_CHECK and PERSONAPLEX_VOICE_CHECK (the test
# programs). Exits 77 (skipped) without the fixtures or a needed plugin.
set -euo pipefail

case_name=$1 pipelines=$2
here=$(cd "$(dirname "$0")" && pwd)
F=${PERSONAPLEX_FIXTURES:-}
tools=${PERSONAPLEX_TOOLS:-}

skip() { echo "skipped: $*"; exit 77; }
step() { echo "== $*"; }
check() { python3 "$here/check.py" "$@"; }
need() {
  local e
  for e in "$@"; do gst-inspect-1.0 "$e" >/dev/null 2>&1 || skip "GStreamer element $e not available"; done
}
# Fails the test unless "$@" fails with status $1 (given first).
expect_status() {
  local want=$1 rc=0
  shift
  "$@" || rc=$?
  [ "$rc" -eq "$want" ] || { echo "FAIL: '$*' exited $rc, expected $want"; exit 1; }
}

[ -f "$F/lm/weights.safetensors" ] && [ -f "$F/mimi/weights.safetensors" ] ||
  [ "$case_name" = fetch-model ] || [ "$case_name" = demo-model ] || [ "$case_name" = live-demo ] ||
  skip "reference fixtures not found (PERSONAPLEX_FIXTURES)"

tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

user=$F/lm/user_f32.wav
io=$F/lm/io.json
user_frames=46080  # 24 user frames of 1920 samples
model=(--fixtures "$F")

case $case_name in
offline)
  need personaplex decodebin wavparse wavenc
  step "offline.sh: the reference conversation, F32LE out"
  "$pipelines/offline.sh" "${model[@]}" -f F32LE "$user" "$tmp/out.wav"
  check wav "$tmp/out.wav" --channels 1 --rate 24000 --frames $user_frames \
    --same "$F/lm/io.safetensors:out_pcm" 1e-4
  check words "$tmp/out.txt" "$io"
  step "offline.sh: 16-bit out, words to a named file, a 48 kHz stereo input"
  gst-launch-1.0 -q filesrc location="$user" ! wavparse ! audioconvert ! audioresample ! \
    audio/x-raw,rate=48000,channels=2,format=S16LE ! wavenc ! filesink location="$tmp/in48.wav"
  "$pipelines/offline.sh" "${model[@]}" --text "$tmp/words.txt" "$tmp/in48.wav" "$tmp/out16.wav"
  check wav "$tmp/out16.wav" --channels 1 --rate 24000 --frames $user_frames --min-rms 1e-3
  [ -s "$tmp/words.txt" ]
  if command -v script >/dev/null; then
    step "offline.sh on a terminal: progress; with -q: nothing"
    script -qec "$(printf '%q ' "$pipelines/offline.sh" "${model[@]}" "$user" "$tmp/tty.wav")" /dev/null \
      >"$tmp/tty.out"
    cat "$tmp/tty.out"
    grep -q "100% of the input, .* s, .*x real time" "$tmp/tty.out" || { echo "FAIL: no progress"; exit 1; }
    script -qec "$(printf '%q ' "$pipelines/offline.sh" -q "${model[@]}" "$user" "$tmp/tty.wav")" /dev/null \
      >"$tmp/quiet.out"
    [ ! -s "$tmp/quiet.out" ] || { echo "FAIL: -q printed"; cat -A "$tmp/quiet.out"; exit 1; }
  fi
  ;;

live)
  need personaplex audiotestsrc wavenc
  step "mic-to-speakers.sh, live, with a test tone for the microphone and a file for the speakers"
  # 1.5 s of input at the clock's pace; EOS then ends the conversation.
  "$pipelines/mic-to-speakers.sh" "${model[@]}" \
    --source "audiotestsrc is-live=true num-buffers=15 samplesperbuffer=2400 wave=sine freq=220" \
    --sink "wavenc ! filesink location=$tmp/live.wav" >"$tmp/words.txt" 2>"$tmp/log"
  cat "$tmp/log"
  check wav "$tmp/live.wav" --channels 1 --rate 24000 --min-frames 28800 --min-rms 1e-3
  # The tiny model steps in a few ms: no frame may count as late.
  ! grep -q "Falling behind" "$tmp/log" || { echo "FAIL: the model fell behind"; exit 1; }
  ;;

live-demo)
  need personaplex audiotestsrc wavenc
  step "mic-to-speakers.sh with no model: the demo model, live, in real time"
  XDG_CACHE_HOME=$tmp/cache PERSONAPLEX_TOOLS=$tools "$pipelines/mic-to-speakers.sh" \
    --source "audiotestsrc is-live=true num-buffers=15 samplesperbuffer=2400 wave=sine freq=220" \
    --sink "wavenc ! filesink location=$tmp/live.wav" >"$tmp/words.txt" 2>"$tmp/log"
  cat "$tmp/log"
  grep -q "demo model" "$tmp/log"
  check wav "$tmp/live.wav" --channels 1 --rate 24000 --min-frames 28800 --min-rms 1e-3
  ! grep -q "Falling behind" "$tmp/log" || { echo "FAIL: the demo model fell behind"; exit 1; }
  ;;

rtp)
  need personaplex udpsrc udpsink rtpjitterbuffer rtpopuspay rtpopusdepay opusenc opusdec wavenc
  port=$((20000 + $$ % 20000 * 2)) reply=$((port + 1))
  step "rtp-opus.sh on 127.0.0.1:$port answering to $reply; rtp-opus-send.sh sends the user's side"
  timeout -s INT -k 5 30 "$pipelines/rtp-opus.sh" "${model[@]}" --port $port --reply-port $reply \
    >"$tmp/agent.log" 2>&1 &
  pids+=($!)
  # The agent talks from the moment it has loaded and run its prompts: wait
  # for its first packet.
  timeout 60 gst-launch-1.0 -q udpsrc port=$reply num-buffers=1 ! fakesink
  "$pipelines/rtp-opus-send.sh" --port $port --reply-port $reply --seconds 5 "$user" "$tmp/answer.wav"
  kill -INT "${pids[0]}"
  wait "${pids[0]}" || true
  cat "$tmp/agent.log"
  # The agent talked all along: about 5 s of answer, decoded at 48 kHz.
  check wav "$tmp/answer.wav" --channels 1 --rate 48000 --min-frames $((4 * 48000)) --min-rms 1e-3
  ! grep -q "Falling behind" "$tmp/agent.log" || { echo "FAIL: the agent fell behind"; exit 1; }
  ;;

telephony)
  need personaplex udpsrc udpsink rtpjitterbuffer rtppcmupay rtppcmudepay rtppcmapay rtppcmadepay \
    mulawenc mulawdec alawenc alawdec wavenc
  port=$((20000 + $$ % 20000 * 2)) reply=$((port + 1))
  pcmu="application/x-rtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0"
  step "telephony-g711.sh (PCMU) on 127.0.0.1:$port answering to $reply; a call from the user's wav"
  timeout -s INT -k 5 40 "$pipelines/telephony-g711.sh" "${model[@]}" --port $port --reply-port $reply \
    >"$tmp/agent.log" 2>&1 &
  pids+=($!)
  # The agent talks once its prompts have run: its first packet, 20 ms of PCMU.
  timeout 60 gst-launch-1.0 -q udpsrc port=$reply num-buffers=1 ! filesink location="$tmp/packet"
  check rtp "$tmp/packet" --pt 0 --payload 160
  gst-launch-1.0 -q -e udpsrc port=$reply caps="$pcmu" ! rtpjitterbuffer latency=60 ! rtppcmudepay ! \
    mulawdec ! wavenc ! filesink location="$tmp/answer.wav" &
  receiver=$!
  pids+=($receiver)
  # The caller: the wav as 8 kHz G.711 in 20 ms packets, in real time (1.92 s).
  gst-launch-1.0 -q filesrc location="$user" ! wavparse ! audioconvert ! audioresample ! \
    audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay min-ptime=20000000 max-ptime=20000000 ! \
    udpsink host=127.0.0.1 port=$port
  sleep 0.3
  kill -INT $receiver
  wait $receiver
  kill -INT "${pids[0]}"
  wait "${pids[0]}" || true
  cat "$tmp/agent.log"
  # The agent's answer, decoded: not silent, at least as long as the call.
  check wav "$tmp/answer.wav" --channels 1 --rate 8000 --min-frames $((user_frames / 3)) --min-rms 1e-3
  ! grep -q "Falling behind" "$tmp/agent.log" || { echo "FAIL: the agent fell behind"; exit 1; }
  [ -s "$tmp/agent.log" ] || { echo "FAIL: no words"; exit 1; }
  step "telephony-g711.sh --codec pcma: payload type 8, A-law"
  timeout -s INT -k 5 40 "$pipelines/telephony-g711.sh" "${model[@]}" --codec pcma --port $port --reply-port $reply \
    >"$tmp/agent.log" 2>&1 &
  pids+=($!)
  timeout 60 gst-launch-1.0 -q udpsrc port=$reply num-buffers=1 ! filesink location="$tmp/packet"
  check rtp "$tmp/packet" --pt 8 --payload 160
  kill -INT "${pids[-1]}"
  wait "${pids[-1]}" || true
  expect_status 2 "$pipelines/telephony-g711.sh" "${model[@]}" --codec g729
  ;;

speakerphone)
  need personaplex webrtcdsp webrtcechoprobe audiotestsrc fakesink
  step "speakerphone.sh: 10 s in real time, a live test source for the microphone, a synced sink"
  begin=$(date +%s%N)
  "$pipelines/speakerphone.sh" "${model[@]}" \
    --source "audiotestsrc is-live=true num-buffers=100 samplesperbuffer=4800 wave=ticks" \
    --sink "fakesink sync=true" >"$tmp/words.txt" 2>"$tmp/log"
  took=$(( ($(date +%s%N) - begin) / 1000000 ))
  cat "$tmp/log"
  echo "ran $took ms"
  [ "$took" -ge 10000 ] || { echo "FAIL: 10 s of audio took $took ms"; exit 1; }
  [ -s "$tmp/words.txt" ] || { echo "FAIL: no words"; exit 1; }
  ! grep -q "Falling behind" "$tmp/log" || { echo "FAIL: the model fell behind"; exit 1; }
  ;;

record-mkv)
  need personaplex matroskamux opusenc taginject
  step "record-mkv.sh: user, agent and words tracks"
  "$pipelines/record-mkv.sh" "${model[@]}" "$user" "$tmp/talk.mkv"
  check mkv "$tmp/talk.mkv" "$io"
  ;;

python)
  need personaplex decodebin wavenc
  py=''
  for c in /usr/bin/python3 python3; do
    if "$c" -c 'import gi; gi.require_version("Gst", "1.0")' 2>/dev/null; then py=$c; break; fi
  done
  [ -n "$py" ] || skip "python3-gi not available"
  step "conversation.py: the teacher, then a new persona, the model loaded once"
  GST_DEBUG=personaplex:4 "$py" "$pipelines/conversation.py" --fixtures "$F" \
    --then-prompt "You sell spicy food." "$user" "$tmp/teacher.wav" "$tmp/seller.wav" \
    >"$tmp/out" 2>"$tmp/log"
  cat "$tmp/out"
  check wav "$tmp/teacher.wav" --channels 1 --rate 24000 --frames $user_frames \
    --same "$F/lm/io.safetensors:out_pcm" 1e-4
  check wav "$tmp/seller.wav" --channels 1 --rate 24000 --frames $user_frames --min-rms 1e-3
  ! cmp -s "$tmp/teacher.wav" "$tmp/seller.wav" || { echo "FAIL: the new persona changed nothing"; exit 1; }
  [ "$(grep -c '^persona: ' "$tmp/out")" -eq 2 ] || { echo "FAIL: not two personas"; exit 1; }
  [ "$(grep -c '^word ' "$tmp/out")" -ge 10 ] || { echo "FAIL: too few words from the bus"; exit 1; }
  grep -q "model kept from the previous start" "$tmp/log" || { echo "FAIL: the model was loaded again"; exit 1; }
  ;;

broadcast)
  need personaplex interleave wavenc
  step "broadcast-stereo.sh: user left, agent right, 48 kHz"
  "$pipelines/broadcast-stereo.sh" "${model[@]}" "$user" "$tmp/show.wav"
  # audioresample may end a sample short.
  check wav "$tmp/show.wav" --channels 2 --rate 48000 --frames-near $((2 * user_frames)) 1
  step "broadcast-stereo.sh at 24 kHz: the left channel is the input, the right offline.sh's answer"
  "$pipelines/broadcast-stereo.sh" "${model[@]}" --rate 24000 "$user" "$tmp/show24.wav"
  "$pipelines/offline.sh" "${model[@]}" -f F32LE "$user" "$tmp/agent.wav"
  check split "$tmp/show24.wav" "$user" "$tmp/agent.wav"
  step "broadcast-stereo.sh --center: both in the middle"
  "$pipelines/broadcast-stereo.sh" "${model[@]}" --center --rate 24000 "$user" "$tmp/center.wav"
  check wav "$tmp/center.wav" --channels 2 --rate 24000 --frames $user_frames
  check center "$tmp/center.wav"
  step "broadcast-stereo.sh --center at 48 kHz: as long as the input"
  "$pipelines/broadcast-stereo.sh" "${model[@]}" --center "$user" "$tmp/center48.wav"
  check wav "$tmp/center48.wav" --channels 2 --rate 48000 --frames-near $((2 * user_frames)) 1
  check center "$tmp/center48.wav"
  ;;

parse)
  need personaplex
  # Every script's pipeline exactly as it would run, parsed and linked
  # without starting (the default sound card elements included).
  export PERSONAPLEX_GST_LAUNCH=$PERSONAPLEX_PARSE_CHECK
  parsed() {
    local name=$1
    shift
    step "$name parses"
    "$@" >"$tmp/elements"
    grep -qx "$name" "$tmp/elements" || { echo "FAIL: no $name in the pipeline"; cat "$tmp/elements"; exit 1; }
  }
  parsed autoaudiosrc "$pipelines/mic-to-speakers.sh" "${model[@]}"
  parsed autoaudiosink "$pipelines/mic-to-speakers.sh" "${model[@]}" --voice NATF2 --latency 200000000
  parsed personaplex "$pipelines/offline.sh" "${model[@]}" in.wav out.wav
  parsed udpsink "$pipelines/rtp-opus.sh" "${model[@]}" --reply-host 192.0.2.1 --pt 111
  parsed udpsrc "$pipelines/rtp-opus-send.sh" in.wav
  parsed autoaudiosink "$pipelines/rtp-opus-send.sh" --host 192.0.2.1 in.wav
  parsed matroskamux "$pipelines/record-mkv.sh" "${model[@]}" --source autoaudiosrc out.mkv
  parsed interleave "$pipelines/broadcast-stereo.sh" "${model[@]}" --source autoaudiosrc out.wav
  parsed interleave "$pipelines/broadcast-stereo.sh" "${model[@]}" --center in.wav out.wav
  parsed rtppcmapay "$pipelines/telephony-g711.sh" "${model[@]}" --codec pcma --reply-host 192.0.2.1
  parsed webrtcdsp "$pipelines/speakerphone.sh" "${model[@]}"
  parsed autoaudiosink "$pipelines/speakerphone.sh" "${model[@]}" --delay-agnostic --no-noise-suppression
  step "the check fails on what gst-launch-1.0 would refuse"
  expect_status 1 "$pipelines/mic-to-speakers.sh" "${model[@]}" --sink "fakesink no-such-property=1"
  expect_status 1 "$pipelines/mic-to-speakers.sh" "${model[@]}" --source "no-such-element"
  step "usage errors"
  expect_status 2 "$pipelines/offline.sh" "${model[@]}" --top-kk 5 in.wav out.wav
  expect_status 2 "$pipelines/offline.sh" "${model[@]}" only-one.wav
  step "no model: the demo model, with its notice"
  XDG_CACHE_HOME=$tmp/cache parsed personaplex "$pipelines/offline.sh" in.wav out.wav 2>"$tmp/notice"
  cat "$tmp/notice"
  grep -q "demo model" "$tmp/notice"
  grep -q "fetch-model.sh" "$tmp/notice"
  XDG_CACHE_HOME=$tmp/cache parsed autoaudiosrc "$pipelines/mic-to-speakers.sh" 2>/dev/null
  step "no model and no personaplex-make-model: a clear error"
  XDG_CACHE_HOME=$tmp/cache2 PERSONAPLEX_TOOLS=$tmp/none PATH=/usr/bin:/bin expect_status 2 \
    bash -c "cd '$tmp' && cp -r '$pipelines' p && p/offline.sh in.wav out.wav"
  ;;

demo-model)
  make=$tools/personaplex-make-model
  step "personaplex-make-model --demo: made into the cache directory, its path on stdout"
  XDG_CACHE_HOME=$tmp/cache "$make" --demo >"$tmp/dir" 2>"$tmp/log"
  cat "$tmp/log"
  dir=$(cat "$tmp/dir")
  [ "$dir" = "$tmp/cache/gst-personaplex/demo-model-1" ] || { echo "FAIL: made in '$dir'"; exit 1; }
  for f in model.safetensors tokenizer-e351c8d8-checkpoint125.safetensors tokenizer_spm_32k_3.model \
      lm_config.json mimi_config.json voices/NATF2.pt; do
    [ -s "$dir/$f" ] || { echo "FAIL: no $f"; exit 1; }
  done
  step "again: reused as it is"
  stamp=$(stat -c %Y.%i "$dir/model.safetensors")
  XDG_CACHE_HOME=$tmp/cache "$make" --demo >"$tmp/dir2"
  cmp "$tmp/dir" "$tmp/dir2"
  [ "$(stat -c %Y.%i "$dir/model.safetensors")" = "$stamp" ] || { echo "FAIL: made again"; exit 1; }
  step "HOME/.cache without XDG_CACHE_HOME; two runs at once make the same files"
  HOME=$tmp/home XDG_CACHE_HOME='' "$make" --demo >"$tmp/a" &
  HOME=$tmp/home XDG_CACHE_HOME='' "$make" --demo >"$tmp/b"
  wait $!
  cmp "$tmp/a" "$tmp/b"
  home_dir=$(cat "$tmp/a")
  [ "$home_dir" = "$tmp/home/.cache/gst-personaplex/demo-model-1" ] || { echo "FAIL: made in '$home_dir'"; exit 1; }
  for f in model.safetensors tokenizer-e351c8d8-checkpoint125.safetensors lm_config.json voices/NATF2.pt; do
    cmp "$dir/$f" "$home_dir/$f"
  done
  ! ls -d "$tmp"/home/.cache/gst-personaplex/*.part-* 2>/dev/null || { echo "FAIL: a partial model was left"; exit 1; }
  step "--output puts it elsewhere; the sizes and seed are fixed"
  "$make" --demo --output "$tmp/elsewhere/demo" >"$tmp/dir3"
  [ "$(cat "$tmp/dir3")" = "$tmp/elsewhere/demo" ]
  cmp "$dir/model.safetensors" "$tmp/elsewhere/demo/model.safetensors"
  expect_status 2 "$make" --demo --seed 3
  expect_status 2 "$make" --demo --lm-config x.json
  step "a cache directory that cannot be made: an error naming it"
  touch "$tmp/file"
  XDG_CACHE_HOME=$tmp/file expect_status 1 "$make" --demo 2>"$tmp/err"
  cat "$tmp/err"
  grep -q "$tmp/file/gst-personaplex: cannot create the directory" "$tmp/err"
  XDG_CACHE_HOME=$tmp/file PERSONAPLEX_TOOLS=$tools expect_status 2 "$pipelines/offline.sh" in.wav out.wav 2>"$tmp/err"
  cat "$tmp/err"
  grep -q "the demo model could not be made" "$tmp/err"
  ;;

fetch-model)
  script=$pipelines/fetch-model.sh
  step "fetch-model.sh is valid bash (and shellcheck-clean where shellcheck is installed)"
  bash -n "$script"
  if command -v shellcheck >/dev/null; then shellcheck "$script"; fi
  step "--dry-run names the released files and the model directory"
  "$script" --dry-run --model-dir "$tmp/m" >"$tmp/plan"
  cat "$tmp/plan"
  base=https://huggingface.co/nvidia/personaplex-7b-v1/resolve/main
  for f in model.safetensors tokenizer-e351c8d8-checkpoint125.safetensors tokenizer_spm_32k_3.model voices.tgz; do
    grep -qxF "fetch $base/$f -> $tmp/m/$f" "$tmp/plan" || { echo "FAIL: $f not planned"; exit 1; }
  done
  grep -qxF "unpack $tmp/m/voices.tgz -> $tmp/m/voices/" "$tmp/plan"
  [ ! -e "$tmp/m" ] || { echo "FAIL: a dry run created files"; exit 1; }
  "$script" --dry-run --revision v1 --repo someone/fork >"$tmp/plan"
  grep -q "^fetch https://huggingface.co/someone/fork/resolve/v1/voices.tgz -> " "$tmp/plan"
  step "without HF_TOKEN it stops before fetching anything"
  HF_TOKEN='' expect_status 2 "$script" --model-dir "$tmp/m"
  [ ! -e "$tmp/m" ]
  expect_status 2 "$script" --bogus
  ;;

voice)
  step "personaplex-voice make: a voice from voice_f32.wav through the fixture model"
  "$tools/personaplex-voice" make --lm-weights "$F/lm/weights.safetensors" --lm-config "$F/lm/config.json" \
    --mimi-weights "$F/mimi/weights.safetensors" --mimi-config "$F/mimi/config.json" --device cpu \
    --input "$F/lm/voice_f32.wav" --output "$tmp/made.pt"
  "$PERSONAPLEX_VOICE_CHECK" "$tmp/made.pt" "$F"
  step "personaplex-voice list: sizes of good voices, errors of broken ones"
  mkdir "$tmp/voices"
  cp "$tmp/made.pt" "$tmp/voices/MADE.pt"
  cp "$F/lm/voice.pt" "$tmp/voices/REF.pt"
  cp "$F/lm/voice_f32.wav" "$tmp/voices/SPOKEN.wav"
  head -c 300 "$F/lm/voice.pt" >"$tmp/voices/CUT.pt"
  echo "not audio" >"$tmp/voices/NOISE.wav"
  expect_status 1 "$tools/personaplex-voice" list "$tmp/voices" --lm-config "$F/lm/config.json" >"$tmp/list"
  cat "$tmp/list"
  grep -Eq '^MADE\.pt +pt +steps 9 +0\.72 s +embeddings float32 \[9, 1, 1, 64\], cache \[1, 17, 4\]$' "$tmp/list"
  grep -Eq '^REF\.pt +pt +steps 9 ' "$tmp/list"
  grep -Eq '^SPOKEN\.wav +wav +steps 9 +0\.72 s +audio 0\.75 s, 24000 Hz, 1 channel$' "$tmp/list"
  grep -Eq '^CUT\.pt +pt +error: .*CUT\.pt' "$tmp/list"
  grep -Eq '^NOISE\.wav +wav +error: .*NOISE\.wav' "$tmp/list"
  grep -q '^5 voices in .* (dim 64), 2 unusable$' "$tmp/list"
  step "against the released sizes the tiny voices do not fit"
  rm "$tmp/voices/CUT.pt" "$tmp/voices/NOISE.wav"
  expect_status 1 "$tools/personaplex-voice" list "$tmp/voices" >"$tmp/list"
  grep -Eq "^MADE\.pt +pt +error: .*expected \[N, 1, 1, 4096\]" "$tmp/list"
  step "usage errors"
  expect_status 2 "$tools/personaplex-voice" make --input "$F/lm/voice_f32.wav"
  expect_status 2 "$tools/personaplex-voice" list
  expect_status 1 "$tools/personaplex-voice" list "$tmp/none"
  ;;

make-model)
  need personaplex
  step "personaplex-make-model: the fixture sizes, the fixture tokenizer"
  "$tools/personaplex-make-model" --output "$tmp/model" --lm-config "$F/lm/config.json" \
    --mimi-config "$F/mimi/config.json" --tokenizer "$F/lm/tokenizer.model" --lm-dtype float32 --seed 7
  ls -l "$tmp/model" "$tmp/model/voices"
  for f in model.safetensors tokenizer-e351c8d8-checkpoint125.safetensors tokenizer_spm_32k_3.model \
           lm_config.json mimi_config.json voices/RANDOM.pt; do
    [ -s "$tmp/model/$f" ] || { echo "FAIL: no $f"; exit 1; }
  done
  cmp "$F/lm/tokenizer.model" "$tmp/model/tokenizer_spm_32k_3.model"
  # The reference's state dicts of these sizes: every name and shape.
  check layout "$tmp/model/model.safetensors" "$F/lm/weights.safetensors"
  check layout "$tmp/model/tokenizer-e351c8d8-checkpoint125.safetensors" "$F/mimi/weights.safetensors"
  expect_status 1 "$tools/personaplex-make-model" --output "$tmp/model"  # exists
  "$tools/personaplex-voice" list "$tmp/model/voices" | tee "$tmp/list"
  grep -Eq '^RANDOM\.pt +pt +steps 12 .*float32 \[12, 1, 1, 64\], cache \[1, 17, 4\]$' "$tmp/list"
  step "personaplex runs on it through gst-launch (model-dir alone; its only voice by default)"
  "$pipelines/offline.sh" --model-dir "$tmp/model" --device cpu "$user" "$tmp/out.wav"
  check wav "$tmp/out.wav" --channels 1 --rate 24000 --frames $user_frames --min-rms 1e-4
  step "same seed, same files; a bf16 LM loads too"
  "$tools/personaplex-make-model" --output "$tmp/again" --lm-config "$F/lm/config.json" \
    --mimi-config "$F/mimi/config.json" --tokenizer "$F/lm/tokenizer.model" --lm-dtype float32 --seed 7
  for f in model.safetensors tokenizer-e351c8d8-checkpoint125.safetensors voices/RANDOM.pt; do
    cmp "$tmp/model/$f" "$tmp/again/$f"
  done
  "$tools/personaplex-make-model" --output "$tmp/again" --force --lm-config "$F/lm/config.json" \
    --mimi-config "$F/mimi/config.json" --tokenizer "$F/lm/tokenizer.model"
  "$pipelines/offline.sh" --model-dir "$tmp/again" --device cpu --greedy "$user" "$tmp/bf16.wav"
  check wav "$tmp/bf16.wav" --frames $user_frames --min-rms 1e-4
  if [ -x "$tools/personaplex-spm-train" ]; then
    step "without --tokenizer: one trained with the LM's text vocabulary"
    "$tools/personaplex-make-model" --output "$tmp/trained" --lm-config "$F/lm/config.json" \
      --mimi-config "$F/mimi/config.json"
    "$pipelines/offline.sh" --model-dir "$tmp/trained" --device cpu "$user" "$tmp/trained.wav"
    check wav "$tmp/trained.wav" --frames $user_frames --min-rms 1e-4
  fi
  ;;

*)
  echo "unknown case $case_name"
  exit 2
  ;;
esac
echo "passed: $case_name"
