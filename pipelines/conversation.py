#!/usr/bin/env python3
"""conversation.py: the personaplex element from a Python (PyGObject) app.

Talks with a persona (a voice and a role), prints the model's words from the
bus as they come, then, when --then-voice or --then-prompt is given, talks
again with a new persona: the pipeline goes back to READY, which keeps the
loaded model, so the second conversation starts without loading it again.

Usage:
  conversation.py MODEL [--voice V] [--prompt TEXT] [--text-unit word|cue|piece]
                  [--then-voice V] [--then-prompt TEXT] IN.wav OUT.wav [OUT2.wav]
  conversation.py MODEL [--voice V] [--prompt TEXT] --mic
MODEL: --model-dir DIR (the released files), or --fixtures DIR (the reference
fixtures' tiny model: CPU, greedy); --device D (auto, cpu, cuda, cuda:N).
Without either: ./personaplex-7b-v1 when it is there, else the demo model of
random weights (personaplex-make-model --demo), as the pipeline scripts do.
IN.wav: the user's side (any rate or channels); OUT.wav: the agent's voice,
as long as IN.wav. With --mic the microphone and the speakers are the user's
side; Ctrl-C ends the conversation.

Requires python3-gi and the GStreamer typelibs (gir1.2-gstreamer-1.0,
gir1.2-gst-plugins-base-1.0), and the personaplex plugin (installed, or its
build directory on GST_PLUGIN_PATH).

Example:
  conversation.py --model-dir personaplex-7b-v1 --voice NATF2 \\
      --prompt "You are a friendly teacher." --then-voice NATM1 \\
      --then-prompt "You sell spicy food." question.wav teacher.wav seller.wav
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

RELEASED_DIR = "personaplex-7b-v1"


def default_model_dir():
    """The scripts' default (pipelines/lib/default-model.sh): ./personaplex-7b-v1
    when it is there, else the demo model (random weights), made once."""
    if os.path.isdir(RELEASED_DIR):
        return RELEASED_DIR
    here = os.path.dirname(os.path.abspath(__file__))
    tools = [os.path.join(os.environ.get("PERSONAPLEX_TOOLS", ""), "personaplex-make-model"),
             os.path.join(here, "..", "build", "engine", "tools", "personaplex-make-model"),
             shutil.which("personaplex-make-model") or ""]
    tool = next((t for t in tools if t and os.access(t, os.X_OK)), None)
    if not tool:
        sys.exit(f"conversation.py: no model given, no {RELEASED_DIR}/ here, and no personaplex-make-model "
                 "to make the demo model: build the project first, or give --model-dir DIR")
    made = subprocess.run([tool, "--demo"], stdout=subprocess.PIPE, text=True)
    if made.returncode != 0:
        sys.exit("conversation.py: the demo model could not be made (see above)")
    path = made.stdout.strip().splitlines()[-1]
    print(f"conversation.py: no model given: using the demo model in {path}.\n"
          "  It has random weights, so it speaks noise. For the real model: HF_TOKEN=hf_... "
          f"pipelines/fetch-model.sh (into ./{RELEASED_DIR}).", file=sys.stderr)
    return path


def model_properties(args):
    """The element's model properties from the command line."""
    props = {}
    if args.fixtures:
        lm, mimi = os.path.join(args.fixtures, "lm"), os.path.join(args.fixtures, "mimi")
        props.update({"lm-weights": os.path.join(lm, "weights.safetensors"),
                      "lm-config": os.path.join(lm, "config.json"),
                      "mimi-weights": os.path.join(mimi, "weights.safetensors"),
                      "mimi-config": os.path.join(mimi, "config.json"),
                      "tokenizer": os.path.join(lm, "tokenizer.model"),
                      "greedy": True})
        args.device = args.device or "cpu"
        args.voice = args.voice or os.path.join(lm, "voice.pt")
    else:
        props["model-dir"] = args.model_dir or default_model_dir()
    if args.device:
        props["device"] = args.device
    return props


def build(args):
    """The pipeline and its personaplex element."""
    if args.mic:
        desc = ("autoaudiosrc ! audioconvert ! audioresample ! queue ! "
                "personaplex name=pp ! queue ! audioconvert ! audioresample ! autoaudiosink")
    else:
        desc = ("filesrc name=in ! decodebin name=dec  audioconvert name=convert ! audioresample ! "
                "personaplex name=pp pp.src ! queue ! audioconvert ! wavenc name=enc ! filesink name=out "
                "pp.text_src ! queue ! fakesink sync=false")
    pipeline = Gst.parse_launch(desc)
    if not args.mic:
        # decodebin makes new pads for each file: link each one.
        convert = pipeline.get_by_name("convert").get_static_pad("sink")
        pipeline.get_by_name("dec").connect(
            "pad-added", lambda _dec, pad: convert.is_linked() or pad.link(convert))
    pp = pipeline.get_by_name("pp")
    for name, value in model_properties(args).items():
        pp.set_property(name, value)
    # Enums are set by their names, as gst-launch-1.0 does.
    Gst.util_set_object_arg(pp, "text-unit", args.text_unit)
    return pipeline, pp


def restart(element, **properties):
    """Elements that keep a file (or what they wrote) in READY: NULL, new
    properties, back to the pipeline's state."""
    element.set_state(Gst.State.NULL)
    for name, value in properties.items():
        element.set_property(name, value)
    element.sync_state_with_parent()


def set_persona(pp, voice, prompt):
    if voice:
        pp.set_property("voice", voice)
    if prompt is not None:
        pp.set_property("prompt", prompt)
    print(f"persona: voice {pp.get_property('voice') or 'default'}, role {pp.get_property('prompt')!r}",
          flush=True)


def converse(pipeline, loop):
    """Plays until EOS or an error; the words as they come. True on EOS."""
    result = {"ok": False}
    started = time.monotonic()

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s.get_name() == "personaplex-word":
                pts = s.get_value("pts") / Gst.SECOND
                print(f"word {pts:7.2f}s {s.get_value('text')}", flush=True)
        elif msg.type == Gst.MessageType.WARNING:
            err, _ = msg.parse_warning()
            print(f"warning: {err.message}", file=sys.stderr, flush=True)
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"error: {err.message} ({debug})", file=sys.stderr, flush=True)
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            result["ok"] = True
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    handler = bus.connect("message", on_message)
    # Ctrl-C: EOS, so that the files are finalized (like gst-launch-1.0 -e).
    sigint = GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT,
                                  lambda: pipeline.send_event(Gst.Event.new_eos()) or True)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        print("error: the pipeline did not start", file=sys.stderr)
    else:
        loop.run()
    GLib.source_remove(sigint)
    bus.disconnect(handler)
    bus.remove_signal_watch()
    # READY, not NULL: the element keeps its model for the next conversation.
    pipeline.set_state(Gst.State.READY)
    print(f"conversation took {time.monotonic() - started:.2f} s", flush=True)
    return result["ok"]


def main():
    p = argparse.ArgumentParser(description="A conversation with PersonaPlex from Python.")
    p.add_argument("--model-dir")
    p.add_argument("--fixtures")
    p.add_argument("--device")
    p.add_argument("--voice")
    p.add_argument("--prompt", default="You are a wise and friendly teacher. Answer questions or provide "
                   "advice in a clear and engaging way.")
    p.add_argument("--then-voice")
    p.add_argument("--then-prompt")
    p.add_argument("--text-unit", default="word", choices=["piece", "word", "cue"])
    p.add_argument("--mic", action="store_true")
    p.add_argument("files", nargs="*")
    args = p.parse_args()
    second = args.then_voice is not None or args.then_prompt is not None
    if not args.mic and len(args.files) != (3 if second else 2):
        p.error("give IN.wav OUT.wav, and OUT2.wav with --then-voice/--then-prompt")

    Gst.init(None)
    if Gst.ElementFactory.find("personaplex") is None:
        sys.exit("conversation.py: no personaplex element (is GST_PLUGIN_PATH set?)")
    pipeline, pp = build(args)
    loop = GLib.MainLoop()
    outputs = [] if args.mic else args.files[1:]
    ok = True
    for k, (voice, prompt) in enumerate([(args.voice, args.prompt), (args.then_voice, args.then_prompt)]):
        if k == 1 and not second:
            break
        set_persona(pp, voice, prompt)
        if not args.mic:
            restart(pipeline.get_by_name("in"), location=args.files[0])
            restart(pipeline.get_by_name("enc"))
            restart(pipeline.get_by_name("out"), location=outputs[k])
        ok = converse(pipeline, loop) and ok
    pipeline.set_state(Gst.State.NULL)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
