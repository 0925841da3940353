# shellcheck shell=bash
# The model the pipeline scripts use when none is named: the released one
# in ./personaplex-7b-v1 when it is there, else the demo model, which
# personaplex-make-model --demo makes once into the user's cache directory
# (tiny, random weights: the pipelines run on a CPU, and it speaks noise).
# Sourced by personaplex-options.sh, not run.

PP_RELEASED_DIR=personaplex-7b-v1

# personaplex-make-model: in $PERSONAPLEX_TOOLS, this checkout's build
# directory, or on PATH.
pp_make_model_program() {
  local root c
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  for c in ${PERSONAPLEX_TOOLS:+"$PERSONAPLEX_TOOLS/personaplex-make-model"} \
      "$root/build/engine/tools/personaplex-make-model"; do
    if [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  command -v personaplex-make-model
}

# Prints the default model directory; says on stderr when it is the demo.
pp_default_model_dir() {
  if [ -d "$PP_RELEASED_DIR" ]; then echo "$PP_RELEASED_DIR"; return 0; fi
  local tool dir
  tool=$(pp_make_model_program) ||
    pp_die "no model given, no $PP_RELEASED_DIR/ here, and no personaplex-make-model to make the demo model: build the project first, or give --model-dir DIR"
  dir=$("$tool" --demo) || pp_die "the demo model could not be made (see above)"
  cat >&2 <<NOTICE
$(basename "$0"): no model given: using the demo model in $dir.
  It has random weights, so it speaks noise. For the real model, accept the license on
  https://huggingface.co/nvidia/personaplex-7b-v1, then run
  HF_TOKEN=hf_... pipelines/fetch-model.sh
  which puts it in ./$PP_RELEASED_DIR, used from then on.
NOTICE
  echo "$dir"
}
