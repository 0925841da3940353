#!/usr/bin/env bash
# mimi-decode-tokens.sh: decodes a file of Mimi codes (as mimi-store-tokens.sh
# writes it) into a 24 kHz mono wav file.
#
# Usage: mimi-decode-tokens.sh -w WEIGHTS [-c CONFIG] [-d DEVICE] [-f FORMAT]
#                              [-k CODEBOOKS] [-s CODEBOOK_SIZE] IN.mimi OUT.wav
#   -w WEIGHTS    Mimi weights, e.g. tokenizer-e351c8d8-checkpoint125.safetensors
#   -c CONFIG     config.json of a model with other sizes (default: the released model)
#   -d DEVICE     auto (default: a GPU if there is one), cpu, cuda or cuda:N
#   -f FORMAT     output samples: S16LE (default) or F32LE
#   -k CODEBOOKS  codes per frame in the file (default 8); must be the model's
#   -s CODEBOOK_SIZE  entries per codebook (default 2048); must be the model's
#
# The file is raw frames of CODEBOOKS little-endian u16 codes; the caps name
# them, and mimidec cuts the stream into frames itself.
#
# The pipeline:
#   filesrc ! audio/x-mimi,rate=24000,channels=1,frame-duration-us=80000,
#     codebooks=8,codebook-size=2048 ! mimidec ! audioconvert !
#   audio/x-raw,format=FORMAT ! wavenc ! filesink
set -euo pipefail

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

weights='' config='' device=auto format=S16LE codebooks=8 size=2048
while getopts 'w:c:d:f:k:s:h' opt; do
  case $opt in
    w) weights=$OPTARG ;;
    c) config=$OPTARG ;;
    d) device=$OPTARG ;;
    f) format=$OPTARG ;;
    k) codebooks=$OPTARG ;;
    s) size=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] && [ -n "$weights" ] || usage
in=$1 out=$2

model=(weights="$weights" device="$device")
[ -z "$config" ] || model+=(config="$config")
caps="audio/x-mimi,rate=24000,channels=1,frame-duration-us=80000"
caps+=",codebooks=$codebooks,codebook-size=$size"

exec gst-launch-1.0 -q \
  filesrc location="$in" ! "$caps" ! mimidec "${model[@]}" ! \
  audioconvert ! "audio/x-raw,format=$format" ! wavenc ! filesink location="$out"
