// The voices a client may choose: the .pt and .wav files of one directory,
// named by their file names. A name from a client never holds a path.
#pragma once

#include <string>
#include <vector>

namespace ppserver {

// The voice file names in `dir`, sorted; empty when there is none.
std::vector<std::string> list_voices(const std::string &dir);

// `name` as a voice file name of `dir` ("NATF2.pt"; "NATF2" finds NATF2.pt,
// then NATF2.wav), or "" with `error` set when it is not a plain name or not
// there.
std::string find_voice(const std::string &dir, const std::string &name, std::string *error);

// NATF2 when present, else the first voice, else "".
std::string default_voice(const std::string &dir);

}  // namespace ppserver
