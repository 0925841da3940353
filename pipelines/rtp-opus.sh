#!/usr/bin/env bash
# rtp-opus.sh: the model as an RTP/Opus endpoint. It listens for the
# user's audio as RTP/Opus on a UDP port and answers, live, with RTP/Opus
# sent to a host and port: point a softphone, a SIP gateway's media leg or
# rtp-opus-send.sh at it.
#
# Usage: rtp-opus.sh [model options] [--port N] [--reply-host H] [--reply-port N] [--pt N]
#   --port N        UDP port to receive on (default 5004)
#   --reply-host H  where the answer goes (default 127.0.0.1)
#   --reply-port N  (default 5006)
#   --pt N          RTP payload type, both ways (default 96)
#   model options: see lib/personaplex-options.sh (--model-dir DIR, --voice,
#                 --prompt, --latency, --device, ...)
#
# Requires gst-plugins-base (opus) and -good (rtp, udp), a GPU for the
# released model, and the personaplex plugin (installed, or its build
# directory on GST_PLUGIN_PATH). The model talks from the start, before any
# packet arrives (silence in), and keeps going when the peer goes quiet.
# Ctrl-C ends it.
#
# Example (then rtp-opus-send.sh question.wav answer.wav on the same host):
#   rtp-opus.sh --model-dir personaplex-7b-v1 --voice NATF2
#
# The pipeline:
#   udpsrc port=PORT caps=application/x-rtp,...,encoding-name=OPUS ! rtpjitterbuffer !
#   rtpopusdepay ! opusdec plc=true ! audioconvert ! audioresample !
#   personaplex is-live=true ! queue ! audioconvert ! audioresample ! opusenc ! rtpopuspay !
#   udpsink host=REPLY_HOST port=REPLY_PORT
# (the queue lets the model's thread go on while the encoder and the sink
# wait for the clock)
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=lib/personaplex-options.sh
. "$here/lib/personaplex-options.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

port=5004 reply_host=127.0.0.1 reply_port=5006 pt=96
while [ $# -gt 0 ]; do
  if pp_option "$@"; then shift "$PP_SHIFT"; continue; fi
  [ $# -ge 2 ] || usage
  case $1 in
    --port) port=$2 ;;
    --reply-host) reply_host=$2 ;;
    --reply-port) reply_port=$2 ;;
    --pt) pt=$2 ;;
    *) usage ;;
  esac
  shift 2
done
pp_finish

caps="application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=$pt"
pp_launch -q \
  udpsrc port="$port" caps="$caps" ! rtpjitterbuffer latency=60 ! rtpopusdepay ! opusdec plc=true ! \
  audioconvert ! audioresample ! personaplex is-live=true "${PP_PROPS[@]}" ! \
  queue ! audioconvert ! audioresample ! opusenc bitrate=32000 frame-size=20 ! rtpopuspay pt="$pt" ! \
  udpsink host="$reply_host" port="$reply_port"
