// Voices by name or by path. A name ("NATF2", "NATF2.pt") is looked up in
// the voices directory (.pt first, then .wav); a value that is the path of
// an existing .pt or .wav file is used as it is. A name may not leave the
// voices directory.
#pragma once

#include <string>
#include <vector>

namespace personaplex::duplex {

// The voice file `voice` names; "" for "" (no voice prompt). Throws Error
// when the value is neither an existing voice file nor a plain name, when
// there is no voices directory to look a name up in, or when the name is
// unknown (the message lists the voices available).
std::string resolve_voice(const std::string &voice, const std::string &voices_dir);

// The voice used when none is named: NATF2 when `voices_dir` has it (.pt,
// then .wav), else its only voice when it has exactly one, else "" (none).
// The element, the scripts and the server share this rule.
std::string default_voice(const std::string &voices_dir);

// The voice names in `voices_dir` (file names of its .pt and .wav files), sorted.
std::vector<std::string> available_voices(const std::string &voices_dir);

}  // namespace personaplex::duplex
