#!/usr/bin/env bash
# fetch-model.sh: downloads the released PersonaPlex model from Hugging Face
# into a model directory with the released names, and unpacks the voices
# into its voices/. The repository is gated: accept the license on
# https://huggingface.co/nvidia/personaplex-7b-v1 first, then create a read
# token and put it in HF_TOKEN. About 17 GB; an interrupted download resumes.
#
# Usage: fetch-model.sh [--model-dir DIR] [--revision REV] [--repo OWNER/NAME] [--dry-run]
#   --model-dir DIR  where the files go (default personaplex-7b-v1)
#   --revision REV   branch, tag or commit (default main)
#   --repo R         the repository (default nvidia/personaplex-7b-v1)
#   --dry-run        print what would be fetched, and where, and stop
#
# Requires curl and tar.
#
# Example:
#   HF_TOKEN=hf_... fetch-model.sh --model-dir personaplex-7b-v1
#   offline.sh --model-dir personaplex-7b-v1 --voice NATF2 question.wav answer.wav
set -euo pipefail

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

dir=personaplex-7b-v1 revision=main repo=nvidia/personaplex-7b-v1 dry_run=false
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=true; shift; continue ;;
    --model-dir|--revision|--repo) [ $# -ge 2 ] || usage ;;
    *) usage ;;
  esac
  case $1 in
    --model-dir) dir=$2 ;;
    --revision) revision=$2 ;;
    --repo) repo=$2 ;;
  esac
  shift 2
done

# The released names, as the personaplex element's model-dir expects them.
files=(
  model.safetensors                              # the LM, bf16, ~16.7 GB
  tokenizer-e351c8d8-checkpoint125.safetensors   # Mimi
  tokenizer_spm_32k_3.model                      # the text tokenizer
  voices.tgz                                     # voices/*.pt
)
base="https://huggingface.co/$repo/resolve/$revision"

if $dry_run; then
  for f in "${files[@]}"; do echo "fetch $base/$f -> $dir/$f"; done
  echo "unpack $dir/voices.tgz -> $dir/voices/"
  exit 0
fi

if [ -z "${HF_TOKEN:-}" ]; then
  echo "fetch-model.sh: HF_TOKEN is not set (a Hugging Face read token; the repository is gated)" >&2
  exit 2
fi
command -v curl >/dev/null || { echo "fetch-model.sh: curl is required" >&2; exit 2; }

mkdir -p "$dir"
for f in "${files[@]}"; do
  # A file is named as released only once complete; -C - resumes a .part.
  if [ -f "$dir/$f" ]; then echo "$f: present"; continue; fi
  echo "fetching $f"
  # The token goes in through stdin, not the command line other users can see.
  printf 'header = "Authorization: Bearer %s"\n' "$HF_TOKEN" |
    curl -fL --retry 3 -C - --config - -o "$dir/$f.part" "$base/$f"
  mv "$dir/$f.part" "$dir/$f"
done
tar -xzf "$dir/voices.tgz" -C "$dir"
[ -d "$dir/voices" ] || { echo "fetch-model.sh: voices.tgz held no voices/ directory" >&2; exit 1; }
echo "model in $dir: $(find "$dir/voices" -name '*.pt' | wc -l) voices"
