#!/usr/bin/env bash
# The README's main job, verbatim, on a fresh clone of this repository with
# nothing beside it (no fixtures, no weights, no network): the sh block
# under "## Main job" runs in the clone's root and must write the answer's
# wav (24 kHz mono, as long as the question) and its text, with the demo
# model and its notice. Then again, reusing the demo model; then with a
# personaplex-7b-v1/ in the clone, which the same block must use instead.
#
# The clone reuses this build (its build/ is a link to BUILD_ROOT) rather
# than building again; the demo model goes to a fresh cache directory.
#
# Usage: test-readme-main-job.sh SOURCE_ROOT BUILD_ROOT
# Exits 77 (skipped) when git or the git checkout is missing.
set -euo pipefail
src=$1 build=$2
here=$(cd "$(dirname "$0")" && pwd)
question=pipelines/demo/question.wav answer=answer.wav words=answer.txt

skip() { echo "skipped: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
command -v git >/dev/null || skip "git is not installed"
commit=$(git -C "$src" rev-parse HEAD 2>/dev/null) || skip "$src is not a git checkout"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
clone=$tmp/clone cache=$tmp/cache
git clone -q --no-checkout "$src" "$clone"
git -C "$clone" checkout -q "$commit"
ln -s "$build" "$clone/build"

block=$(awk '/^## / { main = ($0 == "## Main job") }
             main && /^```sh$/ { inside = 1; next }
             inside && /^```$/ { exit }
             inside' "$clone/README.md")
[ -n "$block" ] || fail "README.md has no sh block under '## Main job'"
printf '== the main job:\n%s\n' "$block"
for name in "$question" "$answer"; do
  grep -qF "$name" <<<"$block" || fail "the main job no longer names $name: update this test"
done

# Runs the block as a user would: only what the README sets up, from the
# clone's root; the log goes to $1, the seconds it took to $tmp/seconds.
main_job() {
  local start=$SECONDS
  rm -f "$clone/$answer" "$clone/$words"
  (cd "$clone" && env -u GST_PLUGIN_PATH -u GST_PLUGIN_PATH_1_0 -u PERSONAPLEX_TOOLS XDG_CACHE_HOME="$cache" \
    bash -euo pipefail -c "$block") >"$1" 2>&1 || { cat "$1"; fail "the main job failed"; }
  cat "$1"
  echo $((SECONDS - start)) >"$tmp/seconds"
}

# The answer: 24 kHz mono, as long as the question; the words file exists.
check_answer() {
  local frames
  frames=$(python3 -c 'import sys, wave
w = wave.open(sys.argv[1])
print(round(w.getnframes() * 24000 / w.getframerate()))' "$clone/$question")
  # audioresample may end a sample short.
  python3 "$here/check.py" wav "$clone/$answer" --channels 1 --rate 24000 --frames-near "$frames" 1
  [ -f "$clone/$words" ] || fail "no $words"
  echo "words: $(head -c 200 "$clone/$words")"
}

echo "== on a fresh clone: the demo model is made"
main_job "$tmp/first.log"
check_answer
grep -q "demo model" "$tmp/first.log" || fail "no notice of the demo model"
grep -q "pipelines/fetch-model.sh" "$tmp/first.log" || fail "the notice does not say how to get the real model"
demo=$(find "$cache" -mindepth 2 -maxdepth 2 -type d -name 'demo-model*')
[ -f "$demo/model.safetensors" ] || fail "no demo model in the cache directory"
echo "first run: $(cat "$tmp/seconds") s"

echo "== again: the demo model is reused"
stamp=$(stat -c %Y.%i "$demo/model.safetensors")
main_job "$tmp/second.log"
check_answer
[ "$(stat -c %Y.%i "$demo/model.safetensors")" = "$stamp" ] || fail "the demo model was made again"
echo "second run: $(cat "$tmp/seconds") s"

echo "== with personaplex-7b-v1/ in the checkout, that model"
mv "$demo" "$clone/personaplex-7b-v1"
main_job "$tmp/released.log"
check_answer
! grep -q "demo model" "$tmp/released.log" || fail "the demo model was used although personaplex-7b-v1/ is there"
[ ! -e "$demo" ] || fail "the demo model was made although personaplex-7b-v1/ is there"
echo "ok"
