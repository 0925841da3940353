#!/usr/bin/env bash
# speakerphone.sh: a live conversation through the sound card without a
# headset. The model's voice from the speakers reaches the microphone; left
# alone the model would hear itself and answer itself. WebRTC's audio
# processing (gst-plugins-bad's webrtcdsp) removes that echo: webrtcechoprobe
# on the way to the speakers shows it what is played, webrtcdsp on the
# microphone subtracts it, and suppresses noise. The words go to standard
# output as they are spoken. Ctrl-C ends it.
#
# Usage: speakerphone.sh [model options] [--source DESC] [--sink DESC]
#                        [--delay-agnostic] [--no-noise-suppression]
#   --source DESC  capture element (default autoaudiosrc)
#   --sink DESC    playback element (default autoaudiosink)
#   --delay-agnostic  let webrtcdsp estimate the speaker-to-microphone delay
#                  (sound servers whose latency it cannot know)
#   --no-noise-suppression  echo cancellation only
#   model options: see lib/personaplex-options.sh (--model-dir DIR, --voice,
#                 --prompt, --latency, --device, ...)
#
# Requires gst-plugins-bad (webrtcdsp), a sound card, a GPU for the released
# model, and the personaplex plugin.
#
# Example:
#   speakerphone.sh --model-dir personaplex-7b-v1 --voice NATF2
#
# The pipeline (webrtcdsp works on 16-bit audio at 8, 16, 32 or 48 kHz):
#   SOURCE ! queue ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=1 !
#   webrtcdsp probe=echo echo-cancel=true noise-suppression=true ! audioconvert ! audioresample !
#   personaplex is-live=true name=pp
#   pp.src ! queue ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=1 !
#   webrtcechoprobe name=echo ! audioconvert ! audioresample ! SINK
#   pp.text_src ! queue ! fdsink fd=1
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=lib/personaplex-options.sh
. "$here/lib/personaplex-options.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

source_desc=autoaudiosrc sink_desc=autoaudiosink delay_agnostic=false noise=true
while [ $# -gt 0 ]; do
  if pp_option "$@"; then shift "$PP_SHIFT"; continue; fi
  case $1 in
    --source) [ $# -ge 2 ] || usage; source_desc=$2; shift 2 ;;
    --sink) [ $# -ge 2 ] || usage; sink_desc=$2; shift 2 ;;
    --delay-agnostic) delay_agnostic=true; shift ;;
    --no-noise-suppression) noise=false; shift ;;
    *) usage ;;
  esac
done
pp_finish
read -r -a src <<<"$source_desc"
read -r -a sink <<<"$sink_desc"
dsp_caps=audio/x-raw,format=S16LE,rate=48000,channels=1

pp_launch -q -e \
  "${src[@]}" ! queue ! audioconvert ! audioresample ! $dsp_caps ! \
  webrtcdsp probe=echo echo-cancel=true noise-suppression=$noise delay-agnostic=$delay_agnostic ! \
  audioconvert ! audioresample ! \
  personaplex name=pp is-live=true text-unit=piece "${PP_PROPS[@]}" \
  pp.src ! queue ! audioconvert ! audioresample ! $dsp_caps ! webrtcechoprobe name=echo ! \
  audioconvert ! audioresample ! "${sink[@]}" \
  pp.text_src ! queue ! fdsink fd=1
