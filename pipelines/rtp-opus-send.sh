#!/usr/bin/env bash
# rtp-opus-send.sh: the other end of rtp-opus.sh, for trying it out. Sends
# an audio file as RTP/Opus in real time and records the RTP/Opus answer to
# a WAV file (or plays it). Ctrl-C, or --seconds, ends it.
#
# Usage: rtp-opus-send.sh [--host H] [--port N] [--reply-port N] [--pt N] [--seconds S]
#                         IN [ANSWER.wav]
#   --host H        where rtp-opus.sh listens (default 127.0.0.1)
#   --port N        its port (default 5004)
#   --reply-port N  local port the answer comes to (default 5006)
#   --pt N          RTP payload type (default 96)
#   --seconds S     stop after S seconds (default: run until Ctrl-C)
#   ANSWER.wav      where the answer goes (default: the speakers)
#
# Requires gst-plugins-base (opus) and -good (rtp, udp, wav).
#
# Example:
#   rtp-opus-send.sh --seconds 20 question.wav answer.wav
#
# The pipelines:
#   filesrc ! decodebin ! audioconvert ! audioresample ! opusenc ! rtpopuspay ! udpsink
#   udpsrc ! rtpjitterbuffer ! rtpopusdepay ! opusdec ! audioconvert ! wavenc ! filesink
set -euo pipefail

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

host=127.0.0.1 port=5004 reply_port=5006 pt=96 seconds='' files=()
while [ $# -gt 0 ]; do
  case $1 in
    --host|--port|--reply-port|--pt|--seconds)
      [ $# -ge 2 ] || usage
      case $1 in
        --host) host=$2 ;; --port) port=$2 ;; --reply-port) reply_port=$2 ;;
        --pt) pt=$2 ;; --seconds) seconds=$2 ;;
      esac
      shift 2 ;;
    -*) usage ;;
    *) files+=("$1"); shift ;;
  esac
done
case ${#files[@]} in 1|2) ;; *) usage ;; esac
in=${files[0]}
out=(autoaudiosink)
[ ${#files[@]} -lt 2 ] || out=("audio/x-raw,channels=1" ! wavenc ! filesink location="${files[1]}")

caps="application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=$pt"
run=("${PERSONAPLEX_GST_LAUNCH:-gst-launch-1.0}")
# -e: Ctrl-C (or the timeout's SIGINT) ends with EOS, so the WAV is complete.
[ -z "$seconds" ] || run=(timeout -s INT -k 10 "$seconds" "${run[@]}")
# udpsink syncs on the clock: the file goes out in real time.
set +e
"${run[@]}" -q -e \
  filesrc location="$in" ! decodebin ! audioconvert ! audioresample ! \
  opusenc bitrate=32000 frame-size=20 ! rtpopuspay pt="$pt" ! udpsink host="$host" port="$port" \
  udpsrc port="$reply_port" caps="$caps" ! rtpjitterbuffer latency=60 ! rtpopusdepay ! opusdec plc=true ! \
  audioconvert ! audioresample ! "${out[@]}"
rc=$?
set -e
# The time limit ending it is the expected end.
[ -n "$seconds" ] && [ $rc -eq 124 ] && rc=0
exit $rc
