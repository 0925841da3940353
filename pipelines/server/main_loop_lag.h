// PERSONAPLEX_STALL_LOG=1: a line for each time the server's main loop woke
// over 30 ms late. Every call's pages go out from the main loop, so while it
// is held up all calls fall silent together, whatever the model does; the
// times are on the system's monotonic clock, as the batch's step log and
// chat-load.py's run_start_monotonic_s.
#pragma once

namespace ppserver {

// Watches the default main context from now on, when the environment asks.
void watch_main_loop_lag();

}  // namespace ppserver
