#!/usr/bin/env bash
# mic-to-speakers.sh: a live conversation through the sound card. The
# microphone feeds the model; its voice goes to the speakers and its words
# to standard output as it speaks. Ctrl-C ends it.
#
# Usage: mic-to-speakers.sh [model options] [--source DESC] [--sink DESC]
#   --source DESC  capture element (default autoaudiosrc), e.g.
#                  "pulsesrc device=alsa_input.usb-mic"
#   --sink DESC    playback element (default autoaudiosink)
#   model options: see lib/personaplex-options.sh (--model-dir DIR, --voice,
#                 --prompt, --latency, --device, ...)
#
# Requires a sound card (use headphones: the model would hear itself through
# the speakers), a GPU for the released model (real time is one model step
# per 80 ms), and the personaplex plugin (installed, or its build directory
# on GST_PLUGIN_PATH).
#
# Example:
#   mic-to-speakers.sh --model-dir personaplex-7b-v1 --voice NATM1
#
# The pipeline:
#   SOURCE ! queue ! audioconvert ! audioresample ! personaplex is-live=true text-unit=piece name=pp
#   pp.src ! queue ! audioconvert ! audioresample ! SINK
#   pp.text_src ! queue ! fdsink fd=1
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=lib/personaplex-options.sh
. "$here/lib/personaplex-options.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

source_desc=autoaudiosrc sink_desc=autoaudiosink
while [ $# -gt 0 ]; do
  if pp_option "$@"; then shift "$PP_SHIFT"; continue; fi
  case $1 in
    --source) [ $# -ge 2 ] || usage; source_desc=$2; shift 2 ;;
    --sink) [ $# -ge 2 ] || usage; sink_desc=$2; shift 2 ;;
    *) usage ;;
  esac
done
pp_finish
# Element descriptions are words: "pulsesrc device=X" is two.
read -r -a src <<<"$source_desc"
read -r -a sink <<<"$sink_desc"

pp_launch -q -e \
  "${src[@]}" ! queue ! audioconvert ! audioresample ! \
  personaplex name=pp is-live=true text-unit=piece "${PP_PROPS[@]}" \
  pp.src ! queue ! audioconvert ! audioresample ! "${sink[@]}" \
  pp.text_src ! queue ! fdsink fd=1
