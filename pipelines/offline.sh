#!/usr/bin/env bash
# offline.sh: one conversation from files. The user's side (any audio file
# GStreamer decodes) goes in; the agent's side comes out as a WAV of the same
# length (24 kHz mono) and its words as a text file, at the speed of the
# device.
#
# Usage: offline.sh [model options] [-f S16LE|F32LE] [--text FILE] IN OUT.wav
#   -f FORMAT     output samples: S16LE (default) or F32LE
#   -q            no progress (shown on a terminal: percent of the input,
#                 time so far, speed as a multiple of real time)
#   --text FILE   the transcript: every word the agent spoke, in order (its
#                 pieces as the model gives them, text-unit=piece)
#                 (default: OUT with .txt in place of .wav)
#   model options: see lib/personaplex-options.sh (--model-dir DIR, --voice,
#                 --prompt, --seed, --greedy, --device, ...)
#
# Requires the personaplex plugin (installed, or its build directory on
# GST_PLUGIN_PATH) and gst-plugins-base/good. For the reference's per-frame
# JSON list (one text piece, "EPAD" or "PAD" per 80 ms frame), run
# personaplex-offline instead, with the same model options.
#
# Without model options: ./personaplex-7b-v1 when there, else the demo model
# (random weights, made once into the user's cache; see lib/default-model.sh).
#
# Examples:
#   offline.sh --model-dir personaplex-7b-v1 --voice NATF2 question.wav answer.wav
#   offline.sh pipelines/demo/question.wav answer.wav
#
# The pipeline:
#   filesrc ! decodebin ! audioconvert ! audioresample ! personaplex name=pp text-unit=piece
#   pp.src ! queue ! audioconvert ! audio/x-raw,format=FORMAT ! wavenc ! filesink
#   pp.text_src ! queue ! filesink
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=lib/personaplex-options.sh
. "$here/lib/personaplex-options.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

format=S16LE text='' files=() quiet=false
while [ $# -gt 0 ]; do
  if pp_option "$@"; then shift "$PP_SHIFT"; continue; fi
  case $1 in
    -f) [ $# -ge 2 ] || usage; format=$2; shift 2 ;;
    -q) quiet=true; shift ;;
    --text) [ $# -ge 2 ] || usage; text=$2; shift 2 ;;
    -h|--help|-*) usage ;;
    *) files+=("$1"); shift ;;
  esac
done
[ ${#files[@]} -eq 2 ] || usage
in=${files[0]} out=${files[1]}
[ -n "$text" ] || text=${out%.wav}.txt
pp_finish

pipeline=(
  filesrc location="$in" ! decodebin ! audioconvert ! audioresample !
  personaplex name=pp text-unit=piece "${PP_PROPS[@]}"
  pp.src ! queue ! audioconvert ! "audio/x-raw,format=$format" ! wavenc ! filesink location="$out"
  pp.text_src ! queue ! filesink location="$text")

# The element's personaplex-progress messages, as one line updated in place.
show_progress() {
  awk -v name="$(basename "$0")" '
    /personaplex-progress/ {
      p = $0; sub(/.*percent=\(double\)/, "", p); sub(/[,;].*/, "", p)
      e = $0; sub(/.*elapsed=\(double\)/, "", e); sub(/[,;].*/, "", e)
      r = $0; sub(/.*realtime-factor=\(double\)/, "", r); sub(/[,;].*/, "", r)
      if (p < 0) p = "?"; else p = sprintf("%3.0f", p)
      printf "\r%s: %s%% of the input, %.1f s, %.1fx real time", name, p, e, r > "/dev/stderr"
      shown = 1
    }
    END { if (shown) print "" > "/dev/stderr" }'
}

if ! $quiet && [ -t 2 ]; then
  pp_launch -m "${pipeline[@]}" | show_progress
else
  # Through a pipe: on a terminal gst-launch-1.0 prints its position itself.
  pp_launch -q "${pipeline[@]}" | cat
fi
