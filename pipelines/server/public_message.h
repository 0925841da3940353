// What a client may read of an error or refusal: the server's file system
// paths reduced to their file names (a client names a voice, never where it
// lies), and valid UTF-8 (a client's own bytes, echoed in a reason, may not
// be).
#pragma once

#include <string>

namespace ppserver {

std::string public_message(const std::string &text);

}  // namespace ppserver
