// The `device` property of the plugin's elements: "auto", "cpu", "cuda" or
// "cuda:N". A bad value is a warning when it is set and an error, listing
// the accepted values, when the element starts.
#pragma once

#include <gst/gst.h>

#include <string>

namespace gstpersonaplex {

extern const char *const kDeviceValues;  // for messages: "auto, cpu, cuda, cuda:N"

// Whether `name` has the form of a device (whether the machine has it is
// known only when the model loads).
bool device_name_valid(const std::string &name);
// At set time: a warning (debug log and bus) when `name` is not valid.
void device_name_check_on_set(GstElement *element, const std::string &name);
// At start: posts the error and returns false when `name` is not valid.
bool device_name_check_on_start(GstElement *element, const std::string &name);

}  // namespace gstpersonaplex
