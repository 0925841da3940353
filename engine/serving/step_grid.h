// A batch's steps on one grid of frame periods (on a GPU by default;
// PERSONAPLEX_STEP_GRID=0 turns it off, =1 on anywhere).
// Calls whose frames come when their audio arrives (a server's calls, whose
// input is not live) submit at phases spread over the frame: the batch then
// runs several narrow steps a frame, each costing nearly a wide one (the
// weights are read once a step), and the GPU is busy most of the frame. On
// the grid a step waits, after its first submission, for every member or
// the next grid line, whichever comes first: one step a frame, the calls'
// answers up to a frame later (half a frame on average). Sessions paced by
// a clock (live elements) align on the batch's phase instead: no grid.
#pragma once

#include <chrono>
#include <optional>

namespace personaplex::serving {

class StepGrid {
 public:
  using Time = std::chrono::steady_clock::time_point;
  // `period` zero: no grid (each step waits `gather` at most).
  StepGrid(std::chrono::nanoseconds period, std::chrono::microseconds gather) : period_(period), gather_(gather) {}
  // When a step whose first submission came at `first` goes, unless every
  // member submitted before: `gather` after it, or, on the grid, the first
  // grid line at or after that (the grid starts at the first step's).
  Time deadline(Time first);
  bool on() const { return period_.count() > 0; }

 private:
  const std::chrono::nanoseconds period_;
  const std::chrono::microseconds gather_;
  std::optional<Time> origin_;
};

}  // namespace personaplex::serving
