#!/usr/bin/env bash
# record-mkv.sh: records a conversation in one Matroska file with three
# tracks: the user's voice (track name "user", Opus), the agent's voice
# ("agent", Opus) and the agent's words as a subtitle track (S_TEXT/UTF8:
# cues of up to two lines of 42 characters, each shown at least 1.2 s, see
# the element's text-unit=cue). Players show them as subtitles and let you
# pick either voice.
#
# Usage: record-mkv.sh [model options] (IN | --source DESC) OUT.mkv
#   IN             an audio file: the user's side, run as fast as the device can
#   --source DESC  a live capture element instead, e.g. autoaudiosrc; Ctrl-C
#                  ends the recording (the file is finalized)
#   model options: see lib/personaplex-options.sh (--model-dir DIR, --voice,
#                 --prompt, --device, ...)
#
# Requires gst-plugins-base (opus) and -good (matroska), and the personaplex
# plugin (installed, or its build directory on GST_PLUGIN_PATH).
#
# Example:
#   record-mkv.sh --model-dir personaplex-7b-v1 --source autoaudiosrc talk.mkv
#
# The pipeline:
#   SOURCE ! audioconvert ! audioresample ! audio/x-raw,rate=24000,channels=1 ! tee name=user
#   user. ! queue ! personaplex name=pp text-unit=cue
#   user. ! queue max-size-time=10s ! audioconvert ! opusenc ! taginject title=user ! mux.
#   pp.src ! queue max-size-time=10s ! audioconvert ! opusenc ! taginject title=agent ! mux.
#   pp.text_src ! queue ! mux.
#   matroskamux name=mux ! filesink location=OUT
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=lib/personaplex-options.sh
. "$here/lib/personaplex-options.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

source_desc='' files=()
while [ $# -gt 0 ]; do
  if pp_option "$@"; then shift "$PP_SHIFT"; continue; fi
  case $1 in
    --source) [ $# -ge 2 ] || usage; source_desc=$2; shift 2 ;;
    -*) usage ;;
    *) files+=("$1"); shift ;;
  esac
done
pp_finish
pp_file_or_source "$source_desc" "${files[@]}"
# The muxer interleaves by time: the voices wait there for the cue that
# covers them, which goes out once it closes (up to cue-max-duration plus
# text-pause later), so their queues hold more than that.
hold=(queue max-size-time=10000000000 max-size-buffers=0 max-size-bytes=0)

pp_launch -q -e \
  "${src[@]}" ! audioconvert ! audioresample ! audio/x-raw,rate=24000,channels=1 ! tee name=user \
  user. ! queue ! personaplex name=pp text-unit=cue "${live[@]}" "${PP_PROPS[@]}" \
  user. ! "${hold[@]}" ! audioconvert ! opusenc bitrate=32000 ! taginject tags=title=user ! mux. \
  pp.src ! "${hold[@]}" ! audioconvert ! opusenc bitrate=32000 ! taginject tags=title=agent ! mux. \
  pp.text_src ! queue ! mux. \
  matroskamux name=mux ! filesink location="$out"
