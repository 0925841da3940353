#!/usr/bin/env bash
# mimi-store-tokens.sh: encodes a wav file into a file of Mimi codes.
#
# Usage: mimi-store-tokens.sh -w WEIGHTS [-c CONFIG] [-d DEVICE] IN.wav OUT.mimi
#   -w WEIGHTS  Mimi weights, e.g. tokenizer-e351c8d8-checkpoint125.safetensors
#   -c CONFIG   config.json of a model with other sizes (default: the released model)
#   -d DEVICE   auto (default: a GPU if there is one), cpu, cuda or cuda:N
#
# The code file is a plain concatenation of frames, no header: one frame per
# 80 ms of audio, each frame `codebooks` codes (8 for the released model) as
# little-endian unsigned 16-bit integers, codebook 0 first (16 bytes per
# frame, 200 bytes per second). A partial last frame is zero-padded; the file
# does not record the padding, so decoding gives whole frames.
# (audio/x-mimi has no Matroska or MP4 codec id, hence the raw file.)
# mimi-decode-tokens.sh turns it back into audio.
#
# The pipeline:
#   filesrc ! wavparse ! audioconvert ! audioresample ! mimienc ! filesink
set -euo pipefail

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

weights='' config='' device=auto
while getopts 'w:c:d:h' opt; do
  case $opt in
    w) weights=$OPTARG ;;
    c) config=$OPTARG ;;
    d) device=$OPTARG ;;
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
  mimienc "${model[@]}" ! filesink location="$out"
