#!/usr/bin/env bash
# mimi-roundtrip.sh: encodes a wav file with Mimi and decodes it again, to
# hear what the codec keeps (8 codebooks, 12.5 frames/s, about 1.1 kbit/s).
#
# Usage: mimi-roundtrip.sh -w WEIGHTS [-c CONFIG] [-d DEVICE] [-f FORMAT] IN.wav OUT.wav
#   -w WEIGHTS  Mimi weights, e.g. tokenizer-e351c8d8-checkpoint125.safetensors
#   -c CONFIG   config.json of a model with other sizes (default: the released model)
#   -d DEVICE   auto (default: a GPU if there is one), cpu, cuda or cuda:N
#   -f FORMAT   output samples: S16LE (default) or F32LE
#
# Any sample rate and channel count in (converted to 24 kHz mono); 24 kHz mono
# out, exactly as long as the input. The personaplex plugin must be found by
# GStreamer: installed, or its build directory on GST_PLUGIN_PATH.
#
# The pipeline:
#   filesrc ! wavparse ! audioconvert ! audioresample ! mimienc ! mimidec !
#   audioconvert ! audio/x-raw,format=FORMAT ! wavenc ! filesink
set -euo pipefail

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

weights='' config='' device=auto format=S16LE
while getopts 'w:c:d:f:h' opt; do
  case $opt in
    w) weights=$OPTARG ;;
    c) config=$OPTARG ;;
    d) device=$OPTARG ;;
    f) format=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] && [ -n "$weights" ] || usage
in=$1 out=$2

model=(weights="$weights" device="$device")
[ -z "$config" ] || model+=(config="$config")

exec gst-launch-1.0 -q \
  filesrc location="$in" ! wavparse ! audioconvert ! audioresample ! \
  mimienc "${model[@]}" ! mimidec "${model[@]}" ! \
  audioconvert ! "audio/x-raw,format=$format" ! wavenc ! filesink location="$out"
