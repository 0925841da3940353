#!/usr/bin/env bash
# broadcast-stereo.sh: a conversation as one stereo programme for broadcast
# or a podcast: by default the user on the left channel and the agent on the
# right (each can be processed on its own downstream); --center mixes both
# voices into the middle of both channels instead.
#
# Usage: broadcast-stereo.sh [model options] [--center] [--rate N] (IN | --source DESC) OUT.wav
#   IN             an audio file: the user's side, run as fast as the device can
#   --source DESC  a live capture element instead, e.g. autoaudiosrc; Ctrl-C
#                  ends it (the file is finalized)
#   --center       both voices centred (summed into both channels) instead of left/right
#   --rate N       output sample rate (default 48000)
#   model options: see lib/personaplex-options.sh (--model-dir DIR, --voice,
#                 --prompt, --device, ...)
#
# OUT.wav is 16-bit stereo, as long as the input. Requires gst-plugins-base
# and -good, and the personaplex plugin (installed, or its build directory on
# GST_PLUGIN_PATH).
#
# Example:
#   broadcast-stereo.sh --model-dir personaplex-7b-v1 --voice VARM2 caller.wav show.wav
#
# The pipeline (left/right):
#   SOURCE ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,rate=24000,channels=1 ! tee name=user
#   user. ! queue ! personaplex name=pp
#   interleave name=mix ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=RATE ! wavenc ! filesink
#   user. ! queue ! mix.sink_0     (left)
#   pp.src ! queue ! audioconvert ! audio/x-raw,format=F32LE ! mix.sink_1     (right)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=lib/personaplex-options.sh
. "$here/lib/personaplex-options.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

source_desc='' center=false rate=48000 files=()
while [ $# -gt 0 ]; do
  if pp_option "$@"; then shift "$PP_SHIFT"; continue; fi
  case $1 in
    --source) [ $# -ge 2 ] || usage; source_desc=$2; shift 2 ;;
    --rate) [ $# -ge 2 ] || usage; rate=$2; shift 2 ;;
    --center) center=true; shift ;;
    -*) usage ;;
    *) files+=("$1"); shift ;;
  esac
done
pp_finish
pp_file_or_source "$source_desc" "${files[@]}"

mono=audio/x-raw,format=F32LE,rate=24000,channels=1
if $center; then
  # Both voices side by side, then each output channel their sum (a mix
  # matrix): sample for sample, where audiomixer's output ended short.
  mix=(interleave name=mix channel-positions-from-input=false !
       audioconvert dithering=none "mix-matrix=<<(float)1, (float)1>, <(float)1, (float)1>>" ! audioresample !
       "audio/x-raw,format=S16LE,rate=$rate,channels=2")
else
  # Mono inputs carry no position: interleave gives them left, then right.
  mix=(interleave name=mix channel-positions-from-input=false ! audioconvert ! audioresample !
       "audio/x-raw,format=S16LE,rate=$rate,channels=2")
fi

pp_launch -q -e \
  "${src[@]}" ! audioconvert ! audioresample ! "$mono" ! tee name=user \
  user. ! queue ! personaplex name=pp "${live[@]}" "${PP_PROPS[@]}" \
  "${mix[@]}" ! wavenc ! filesink location="$out" \
  user. ! queue ! mix.sink_0 \
  pp.src ! queue ! audioconvert ! "$mono" ! mix.sink_1
