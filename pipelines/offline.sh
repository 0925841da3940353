#!/usr/bin/env bash
# offline.sh: one conversation from files. The user's side (any audio file
# GStreamer decodes) goes in; the agent's side comes out as a WAV of the same
# length (24 kHz mono) and its words as a text file, at the speed of the
# device.
#
# Usage: offline.sh [model options] [-f S16LE|F32LE] [--text FILE] IN OUT.wav
#   -f FORMAT     output samples: S16LE (default) or F32LE
#   --text FILE   the transcript: every word the agent spoke, in order
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
#   filesrc ! decodebin ! audioconvert ! audioresample ! personaplex name=pp
#   pp.src ! queue ! audioconvert ! audio/x-raw,format=FORMAT ! wavenc ! filesink
#   pp.text_src ! queue ! filesink
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=lib/personaplex-options.sh
. "$here/lib/personaplex-options.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

format=S16LE text='' files=()
while [ $# -gt 0 ]; do
  if pp_option "$@"; then shift "$PP_SHIFT"; continue; fi
  case $1 in
    -f) [ $# -ge 2 ] || usage; format=$2; shift 2 ;;
    --text) [ $# -ge 2 ] || usage; text=$2; shift 2 ;;
    -h|--help|-*) usage ;;
    *) files+=("$1"); shift ;;
  esac
done
[ ${#files[@]} -eq 2 ] || usage
in=${files[0]} out=${files[1]}
[ -n "$text" ] || text=${out%.wav}.txt
pp_finish

pp_launch -q \
  filesrc location="$in" ! decodebin ! audioconvert ! audioresample ! \
  personaplex name=pp "${PP_PROPS[@]}" \
  pp.src ! queue ! audioconvert ! "audio/x-raw,format=$format" ! wavenc ! filesink location="$out" \
  pp.text_src ! queue ! filesink location="$text"
