#include "gstdevicename.h"


namespace gstpersonaplex {

const char *const kDeviceValues = "auto, cpu, cuda, cuda:N";

bool device_name_valid(const std::string &name) {
  if (name == "auto" || name == "cpu" || name == "cuda") return true;
  return name.size() > 5 && name.compare(0, 5, "cuda:") == 0 &&
         name.find_first_not_of("0123456789", 5) == std::string::npos && name.size() <= 8;
}

void device_name_check_on_set(GstElement *element, const std::string &name) {
  if (device_name_valid(name)) return;
  GST_ELEMENT_WARNING(element, RESOURCE, SETTINGS,
                      ("Invalid device \"%s\": the accepted values are %s", name.c_str(), kDeviceValues),
                      ("the element will not start with it"));
}

bool device_name_check_on_start(GstElement *element, const std::string &name) {
  if (device_name_valid(name)) return true;
  GST_ELEMENT_ERROR(element, RESOURCE, SETTINGS,
                    ("Invalid device \"%s\": the accepted values are %s", name.c_str(), kDeviceValues),
                    (nullptr));
  return false;
}

}  // namespace gstpersonaplex
