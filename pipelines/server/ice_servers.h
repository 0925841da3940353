// GET /api/ice: the STUN and TURN servers of --stun-server and
// --turn-server in the form of RTCPeerConnection's iceServers, so that the
// page's browser gathers the same kinds of candidates as the server (a
// browser behind NAT reaches an instance through TURN).
#pragma once

#include <libsoup/soup.h>

#include <nlohmann/json.hpp>
#include <string>

#include "config.h"

namespace ppserver {

// {"iceServers":[{"urls":"stun:host:port"},{"urls":"turn:host:port","username":...,"credential":...}]}
nlohmann::json browser_ice_servers(const Config &config);
void add_ice_endpoint(const Config *config, SoupServer *soup);

}  // namespace ppserver
