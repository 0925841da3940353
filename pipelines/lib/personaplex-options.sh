# shellcheck shell=bash disable=SC2034
# Options shared by the personaplex pipeline scripts: which model, voice,
# role prompt and sampling. Sourced, not run.
#
# Model (one of; none: ./personaplex-7b-v1 when there, else the demo model,
# see lib/default-model.sh):
#   --model-dir DIR      the released layout (see voices/README.md and
#                        pipelines/fetch-model.sh), or one made by
#                        personaplex-make-model
#   --fixtures DIR       the reference fixtures' tiny model (DIR/lm, DIR/mimi):
#                        its voice.pt, greedy decoding, the CPU
#   --lm-weights F --mimi-weights F --tokenizer F [--lm-config F] [--mimi-config F]
#   [--voices-dir DIR]
# Conversation:
#   --voice NAME|FILE    a name in the voices directory (NATF2, NATM1, ...) or
#                        a .pt/.wav file; default NATF2 when the voices
#                        directory has it, else its only voice, else none
#   --prompt TEXT        the role; default the reference's teacher prompt
#   --seed N  --greedy  --temperature T  --temperature-text T  --top-k K  --top-k-text K
#   --device D           auto (default), cpu, cuda, cuda:N
#   --latency NS         live compute budget per step, nanoseconds
#
# Scripts call pp_option for each argument, then pp_finish; the element's
# properties are then in the array PP_PROPS (name=value words for
# gst-launch-1.0). PERSONAPLEX_GST_LAUNCH replaces gst-launch-1.0 (pp_launch).

# shellcheck source-path=SCRIPTDIR source=default-model.sh
. "$(dirname "${BASH_SOURCE[0]}")/default-model.sh"

PP_DEFAULT_PROMPT="You are a wise and friendly teacher. Answer questions or provide advice in a clear and engaging way."
PP_PROPS=()
PP_SHIFT=0
pp_model_dir='' pp_fixtures='' pp_voices_dir='' pp_voice='' pp_device=''
pp_prompt=$PP_DEFAULT_PROMPT pp_greedy=false

pp_die() { echo "$(basename "$0"): $*" >&2; exit 2; }

# pp_option ARG [VALUE]: takes a shared option; sets PP_SHIFT to the words
# used (1 or 2) and returns 0, or returns 1 when ARG is not one of them.
pp_option() {
  local value_needed=true
  case $1 in
    --greedy) pp_greedy=true; PP_SHIFT=1; return 0 ;;
    --model-dir|--fixtures|--lm-weights|--lm-config|--mimi-weights|--mimi-config|--tokenizer|\
    --voices-dir|--voice|--prompt|--seed|--temperature|--temperature-text|--top-k|--top-k-text|\
    --device|--latency) ;;
    *) value_needed=false ;;
  esac
  $value_needed || return 1
  [ $# -ge 2 ] || pp_die "missing value after $1"
  case $1 in
    --model-dir) pp_model_dir=$2; PP_PROPS+=("model-dir=$2") ;;
    --fixtures) pp_fixtures=$2 ;;
    --voices-dir) pp_voices_dir=$2; PP_PROPS+=("voices-dir=$2") ;;
    --voice) pp_voice=$2 ;;
    --prompt) pp_prompt=$2 ;;
    --device) pp_device=$2 ;;
    *) PP_PROPS+=("${1#--}=$2") ;;
  esac
  PP_SHIFT=2
  return 0
}

# The default voice of a voices directory (see above), "" when none.
pp_default_voice() {
  local dir=$1 only='' count=0 f
  [ -d "$dir" ] || return 0
  if [ -f "$dir/NATF2.pt" ]; then echo NATF2; return 0; fi
  for f in "$dir"/*.pt "$dir"/*.wav; do
    [ -f "$f" ] || continue
    only=$(basename "$f"); count=$((count + 1))
  done
  [ "$count" -ne 1 ] || echo "$only"
}

# Whether PP_PROPS sets the property $1.
pp_has_prop() {
  local p
  for p in "${PP_PROPS[@]}"; do
    case $p in "$1="*) return 0 ;; esac
  done
  return 1
}

pp_finish() {
  if [ -z "$pp_fixtures" ] && ! pp_has_prop model-dir && ! pp_has_prop lm-weights; then
    pp_model_dir=$(pp_default_model_dir) || exit 2
    PP_PROPS+=("model-dir=$pp_model_dir")
  fi
  if [ -n "$pp_fixtures" ]; then
    local lm=$pp_fixtures/lm mimi=$pp_fixtures/mimi
    [ -f "$lm/weights.safetensors" ] || pp_die "no fixtures in $pp_fixtures"
    PP_PROPS+=("lm-weights=$lm/weights.safetensors" "lm-config=$lm/config.json"
               "mimi-weights=$mimi/weights.safetensors" "mimi-config=$mimi/config.json"
               "tokenizer=$lm/tokenizer.model")
    [ -n "$pp_voice" ] || pp_voice=$lm/voice.pt
    pp_greedy=true
    [ -n "$pp_device" ] || pp_device=cpu  # the reference ran in float32
  fi
  if [ -z "$pp_voice" ]; then
    local dir=$pp_voices_dir
    [ -n "$dir" ] || [ -z "$pp_model_dir" ] || dir=$pp_model_dir/voices
    pp_voice=$(pp_default_voice "$dir")
  fi
  [ -z "$pp_voice" ] || PP_PROPS+=("voice=$pp_voice")
  [ -z "$pp_prompt" ] || PP_PROPS+=("prompt=$pp_prompt")
  [ -z "$pp_device" ] || PP_PROPS+=("device=$pp_device")
  ! $pp_greedy || PP_PROPS+=("greedy=true")
}

# pp_file_or_source SOURCE_DESC FILE...: a recording script's input and
# output: a live source (SOURCE_DESC given, then FILE is the output) or an
# input and an output file. Sets src (pipeline words), live (is-live=true
# for a live source) and out; else the script's usage.
pp_file_or_source() {
  local source_desc=$1
  shift
  live=()
  if [ -n "$source_desc" ]; then
    [ $# -eq 1 ] || usage
    read -r -a src <<<"$source_desc"
    live=(is-live=true)
  else
    [ $# -eq 2 ] || usage
    src=(filesrc location="$1" ! decodebin)
  fi
  out=${!#}
}

# pp_launch ARGS...: gst-launch-1.0, or $PERSONAPLEX_GST_LAUNCH (a parse
# check, for example).
pp_launch() {
  exec "${PERSONAPLEX_GST_LAUNCH:-gst-launch-1.0}" "$@"
}
