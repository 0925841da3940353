# Sourced by .ci/gpu/build and by commands that run what it built: points
# pkg-config, the linker and GStreamer at the unpacked Debian prefix.
# The prefix defaults to build-gpu-prefix/ at the repository root.
P=${PERSONAPLEX_PREFIX:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build-gpu-prefix}
export PKG_CONFIG_PATH=$P/usr/lib/x86_64-linux-gnu/pkgconfig:$P/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$P
export GST_PLUGIN_SYSTEM_PATH=$P/usr/lib/x86_64-linux-gnu/gstreamer-1.0
export GST_PLUGIN_SCANNER=$P/usr/lib/x86_64-linux-gnu/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner
export PATH=$P/usr/bin:$PATH
# The C++ runtime goes first in the global scope (LD_PRELOAD): the pip wheels
# of libtorch carry static copies of parts of it (call_once's helpers,
# std::filesystem), and cuDNN and std::filesystem call a null pointer when
# those bind first, as they do in a C program (gst-launch-1.0) that opens
# the plugin. See docs/gpu.md.
personaplex_run_env() {
  export LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu:$P/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  local cxx
  cxx=$(${CXX:-g++} -print-file-name=libstdc++.so.6 2>/dev/null)
  [ -f "$cxx" ] && export LD_PRELOAD=$cxx${LD_PRELOAD:+ $LD_PRELOAD}
}
