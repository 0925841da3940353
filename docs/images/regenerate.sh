#!/usr/bin/env bash
# regenerate.sh: redraws the batch plots of docs/performance.md from
# docs/results, and the pipeline pictures of docs/cookbook.md from
# GStreamer's own graph dumps (GST_DEBUG_DUMP_DOT_DIR) of the scripts in
# pipelines/, run on a small model, drawn for people by draw-pipeline.py
# (the elements that matter, at page width).
#
# Usage: docs/images/regenerate.sh (--fixtures DIR | --model-dir DIR) [--plugin-dir DIR]
#   --fixtures DIR    the reference fixtures' tiny model (../shared/fixtures)
#   --model-dir DIR   a model directory, e.g. one from personaplex-make-model
#   --plugin-dir DIR  the built plugin (default build/gst)
#
# Requires python3, gst-plugins-base/good and the personaplex plugin.
# Paths inside the pictures are relative: the pipelines run in a scratch
# directory where the model is "model" and the input "question.wav".
set -euo pipefail

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

images=$(cd "$(dirname "$0")" && pwd)
pipelines=$(cd "$images/../../pipelines" && pwd)
plugin_dir=$(cd "$images/../.." && pwd)/build/gst
model_opt='' model_path=''
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --fixtures|--model-dir) model_opt=$1; model_path=$(cd "$2" && pwd) ;;
    --plugin-dir) plugin_dir=$(cd "$2" && pwd) ;;
    *) usage ;;
  esac
  shift 2
done
[ -n "$model_opt" ] || usage

# The batch plots, from the benchmark results kept in docs/results.
results=$images/../results
python3 "$images/plot-batch.py" "$results/personaplex-bench-h200.json" "$images/batch-frame-time.svg" \
  "Frame time against conversations (H200, bf16, 500-step context)"
python3 "$images/plot-batch.py" "$results/personaplex-bench-h100.json" "$images/batch-frame-time-h100.svg" \
  "Frame time against conversations (H100 80GB)"
export GST_PLUGIN_PATH=$plugin_dir

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
ln -s "$model_path" model
input=$model_path/lm/user_f32.wav
[ -f "$input" ] || input=$(find "$model_path" -name '*.wav' | head -n 1)
if [ -z "$input" ]; then
  gst-launch-1.0 -q audiotestsrc num-buffers=20 ! audio/x-raw,rate=24000,channels=1 ! wavenc ! \
    filesink location=question.wav
else
  cp "$input" question.wav
fi
model=("$model_opt" model --device cpu)

# draw NAME TITLE COMMAND...: runs the command with graph dumps on and keeps the
# graph of the pipeline as it went to PLAYING.
draw() {
  local name=$1 title=$2
  shift 2
  rm -rf dumps && mkdir dumps
  GST_DEBUG_DUMP_DOT_DIR=$work/dumps "$@" >/dev/null
  local graph
  graph=$(find dumps -name '*PAUSED_PLAYING.dot' | sort | head -n 1)
  [ -n "$graph" ] || { echo "regenerate.sh: $name gave no graph" >&2; exit 1; }
  python3 "$images/draw-pipeline.py" "$graph" "$images/$name.svg" "$title"
  echo "$images/$name.svg"
}

draw offline "offline.sh: a recorded question" "$pipelines/offline.sh" "${model[@]}" question.wav answer.wav
draw record-mkv "record-mkv.sh: both voices and the cues in one file" "$pipelines/record-mkv.sh" "${model[@]}" question.wav talk.mkv
draw broadcast-stereo "broadcast-stereo.sh: user left, agent right" "$pipelines/broadcast-stereo.sh" "${model[@]}" question.wav show.wav
# The live ones run for a few seconds; a test tone stands in for the sound card.
draw mic-to-speakers "mic-to-speakers.sh: live through the sound card" timeout -s INT 3 "$pipelines/mic-to-speakers.sh" "${model[@]}" \
  --source "audiotestsrc is-live=true" --sink fakesink || true
draw rtp-opus "rtp-opus.sh: an RTP/Opus endpoint" timeout -s INT 3 "$pipelines/rtp-opus.sh" "${model[@]}" --port 25004 --reply-port 25006 || true
