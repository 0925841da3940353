#!/usr/bin/env bash
# telephony-g711.sh: the model on a phone line. It takes the caller's audio
# as G.711 RTP (PCMU or PCMA, 8 kHz, the codecs every SIP gateway speaks)
# on a UDP port and answers live with G.711 RTP in 20 ms packets sent to a
# host and port: point the media leg of Asterisk, FreeSWITCH or any SIP
# gateway at it (see docs/cookbook.md, "Telephony"). The words go to
# standard output as they are spoken.
#
# Usage: telephony-g711.sh [model options] [--codec pcmu|pcma] [--port N]
#                          [--reply-host H] [--reply-port N] [--address A]
#                          [--jitter-ms N]
#   --codec C       pcmu (mu-law, payload type 0, default) or pcma (A-law, 8)
#   --port N        UDP port to receive the caller's RTP on (default 4000)
#   --address A     local address to receive on (default 0.0.0.0)
#   --reply-host H  where the agent's RTP goes (default 127.0.0.1)
#   --reply-port N  (default 4002)
#   --jitter-ms N   jitter buffer latency (default 60)
#   model options: see lib/personaplex-options.sh (--model-dir DIR, --voice,
#                 --prompt, --latency, --device, ...)
#
# The call is band-limited to 4 kHz: the model hears telephone audio
# resampled to its 24 kHz, and its answer is cut to 4 kHz on the way out.
# Requires gst-plugins-good (rtp, udp, mulaw, alaw), a GPU for the released
# model, and the personaplex plugin. The model talks from the start, before
# any packet arrives (silence in). Ctrl-C ends it.
#
# Example:
#   telephony-g711.sh --model-dir personaplex-7b-v1 --codec pcma \
#       --port 4000 --reply-host 10.0.0.5 --reply-port 16384
#
# The pipeline (PCMU; PCMA uses rtppcmadepay, alawdec, alawenc, rtppcmapay):
#   udpsrc port=PORT caps=application/x-rtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0 !
#   rtpjitterbuffer latency=60 ! rtppcmudepay ! mulawdec ! audioresample !
#   personaplex is-live=true name=pp
#   pp.src ! queue ! audioresample ! audio/x-raw,rate=8000 ! mulawenc !
#   rtppcmupay min-ptime=20000000 max-ptime=20000000 ! udpsink host=REPLY_HOST port=REPLY_PORT
#   pp.text_src ! queue ! fdsink fd=1
set -euo pipefail
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=lib/personaplex-options.sh
. "$here/lib/personaplex-options.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

codec=pcmu port=4000 address=0.0.0.0 reply_host=127.0.0.1 reply_port=4002 jitter=60
while [ $# -gt 0 ]; do
  if pp_option "$@"; then shift "$PP_SHIFT"; continue; fi
  [ $# -ge 2 ] || usage
  case $1 in
    --codec) codec=$2 ;;
    --port) port=$2 ;;
    --address) address=$2 ;;
    --reply-host) reply_host=$2 ;;
    --reply-port) reply_port=$2 ;;
    --jitter-ms) jitter=$2 ;;
    *) usage ;;
  esac
  shift 2
done
pp_finish

case $codec in
  pcmu) name=PCMU pt=0 law=mulaw ;;
  pcma) name=PCMA pt=8 law=alaw ;;
  *) pp_die "--codec is pcmu or pcma, not $codec" ;;
esac
short=${name,,}  # pcmu / pcma
ptime=20000000   # 20 ms packets, as telephony expects

caps="application/x-rtp,media=audio,clock-rate=8000,encoding-name=$name,payload=$pt"
pp_launch -q -e \
  udpsrc address="$address" port="$port" caps="$caps" ! rtpjitterbuffer latency="$jitter" ! \
  "rtp${short}depay" ! "${law}dec" ! audioresample ! \
  personaplex name=pp is-live=true text-unit=piece "${PP_PROPS[@]}" \
  pp.src ! queue ! audioresample ! audio/x-raw,rate=8000 ! "${law}enc" ! \
  "rtp${short}pay" pt="$pt" min-ptime=$ptime max-ptime=$ptime ! \
  udpsink host="$reply_host" port="$reply_port" \
  pp.text_src ! queue ! fdsink fd=1
