// The call page: signalling over /ws (the server offers), the microphone to
// the server, the model's voice back, its words on the "transcript" data
// channel. window.personaplex exposes the call's state and statistics.
"use strict";

const EXAMPLES = {
  teacher: "You are a wise and friendly teacher. Answer questions or provide advice in a clear and engaging way.",
  restaurant: "You work for Jerusalem Shakshuka which is a restaurant and your name is Owen Foster. " +
    "Information: There are two shakshuka options: Classic (poached eggs, $9.50) and Spicy (scrambled eggs " +
    "with jalapenos, $10.25). Sides include warm pita ($2.50) and Israeli salad ($3). No combo offers. " +
    "Available for drive-through until 9 PM.",
  casual: "You enjoy having a good conversation.",
};

const $ = (id) => document.getElementById(id);
const ui = {
  state: $("state"), voice: $("voice"), prompt: $("prompt"), start: $("start"), stop: $("stop"),
  error: $("error"), warning: $("warning"), transcript: $("transcript"), audio: $("agent-audio"),
  micLevel: $("mic-level"), agentLevel: $("agent-level"),
};

let call = null;  // the call in progress
const levels = { mic: 0, agent: 0, micPeak: 0, agentPeak: 0 };

function setState(text, kind) {
  ui.state.textContent = text;
  ui.state.className = "state " + (kind || text);
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
  if (text) setState("error");
}

// The model's "falling behind real time" warnings: the call goes on, but the
// person should know why the voice stutters.
let warnings = 0;
function showWarning(text) {
  warnings = text ? warnings + 1 : 0;
  ui.warning.textContent = text ? "The server is slow: " + text + (warnings > 1 ? " (" + warnings + " times)" : "") : "";
  ui.warning.hidden = !text;
}

// Why a call ended, from the websocket's close: the server's reason when it
// gave one, else what the code means.
function closeReason(code, reason) {
  const meaning = {
    1001: "the server ended the call (shutting down, idle or over its time limit)",
    1003: "the server did not understand the page's messages",
    1006: "the connection to the server was lost (the server stopped or the network went away)",
    1007: "the server could not use the audio it was sent",
    1008: "the call broke the server's rules (timeouts or a bad request)",
    1009: "too much data at once",
    1011: "the server failed (see its log)",
    1013: "the server is busy: try again later",
  }[code] || "the server closed the call (code " + code + ")";
  return reason ? meaning.replace(/ \(.*\)$/, "") + ": " + reason : meaning;
}

// Why a websocket was refused before its handshake: the 503's text, as a
// plain request to the same path gets it ("busy: ..."), else nothing.
async function refusedBecause(path) {
  try {
    const response = await fetch(path, {cache: "no-store"});
    if (response.status === 503) return (await response.text()).trim();
  } catch (e) { /* the server is unreachable: the close code says so */ }
  return "";
}

function appendTranscript(text) {
  ui.transcript.textContent += text;
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

async function loadVoices() {
  try {
    const response = await fetch("api/voices");
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    const info = await response.json();
    ui.voice.replaceChildren();
    for (const name of info.voices) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name.replace(/\.(pt|wav)$/, "");
      ui.voice.append(option);
    }
    if (!info.voices.length) ui.voice.append(new Option("(none)", ""));
    ui.voice.value = info.default_voice || "";
    if (info.max_prompt) ui.prompt.maxLength = info.max_prompt;
    if (!ui.prompt.value) ui.prompt.value = info.default_prompt || EXAMPLES.teacher;
  } catch (e) {
    showError("Could not load the voices: " + e.message);
  }
}

// The level of an analyser's current window: its RMS from -60 dBFS (0) to
// 0 dBFS (1), as level meters show it.
function level(analyser, buffer) {
  analyser.getFloatTimeDomainData(buffer);
  let sum = 0;
  for (const v of buffer) sum += v * v;
  const db = 10 * Math.log10(sum / buffer.length + 1e-12);
  return Math.min(1, Math.max(0, (db + 60) / 60));
}

function meter(context, stream, key, bar) {
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  context.createMediaStreamSource(stream).connect(analyser);
  const buffer = new Float32Array(analyser.fftSize);
  return setInterval(() => {
    const v = level(analyser, buffer);
    levels[key] = v;
    levels[key + "Peak"] = Math.max(levels[key + "Peak"], v);
    bar.style.width = (v * 100).toFixed(1) + "%";
  }, 50);
}

class Call {
  constructor(mic, context) {
    this.mic = mic;
    this.context = context;
    this.timers = [meter(context, mic, "mic", ui.micLevel)];
    this.pc = null;
    this.pendingCandidates = [];
    this.queue = Promise.resolve();  // signalling messages in order
    this.closed = false;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    this.ws = new WebSocket(scheme + location.host + location.pathname.replace(/[^/]*$/, "") + "ws");
    this.opened = false;
    this.ws.onopen = () => {
      this.opened = true;
      this.send({type: "start", voice_prompt: ui.voice.value, text_prompt: ui.prompt.value});
    };
    this.ws.onmessage = (event) => {
      this.queue = this.queue.then(() => this.onMessage(JSON.parse(event.data))).catch((e) => this.fail(e.message));
    };
    this.ws.onclose = async (event) => {
      // Refused before it opened (a balancer or a server behind one that is
      // full): a browser does not show the answer, so ask for it again.
      if (!this.closed && !this.opened) this.told = await refusedBecause("ws");
      // An error message that came first says it best.
      if (!this.closed && event.code !== 1000) this.fail(this.told || closeReason(event.code, event.reason));
      else if (!this.closed) this.fail("the server ended the call");
      else this.close();
    };
    setState("connecting");
  }

  send(message) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  async onMessage(m) {
    if (m.type === "accepted") setState("preparing", "connecting");
    else if (m.type === "ready") { if (this.pc?.connectionState !== "connected") setState("preparing", "connecting"); }
    else if (m.type === "offer") await this.answer(m.sdp);
    else if (m.type === "ice") await this.addCandidate(m);
    else if (m.type === "warning") showWarning(m.message);
    else if (m.type === "error") { this.told = m.message; this.fail(m.message); }
  }

  async answer(sdp) {
    // The server's STUN/TURN servers (--stun-server, --turn-server), for a browser behind NAT.
    const ice = await fetch("api/ice").then((r) => r.json()).catch(() => ({ iceServers: [] }));
    // ?relay: media only through the TURN server (to check a relay, or for networks that need one).
    const relay = new URLSearchParams(location.search).has("relay");
    const pc = new RTCPeerConnection({ iceServers: ice.iceServers || [], iceTransportPolicy: relay ? "relay" : "all" });
    this.pc = pc;
    pc.ontrack = (event) => {
      const stream = event.streams[0] || new MediaStream([event.track]);
      ui.audio.srcObject = stream;  // also needed for the analyser to hear a remote track
      ui.audio.play().catch(() => {});
      this.timers.push(meter(this.context, stream, "agent", ui.agentLevel));
    };
    pc.ondatachannel = (event) => {
      event.channel.onmessage = (m) => appendTranscript(typeof m.data === "string" ? m.data : "");
    };
    pc.onicecandidate = (event) => {
      if (event.candidate && event.candidate.candidate)
        this.send({ type: "ice", candidate: event.candidate.candidate, sdpMLineIndex: event.candidate.sdpMLineIndex });
    };
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === "connected") setState("connected");
      else if (s === "failed") this.fail("the connection failed (no route between the browser and the server)");
      else if (s === "disconnected") setState("reconnecting", "connecting");
    };
    await pc.setRemoteDescription({ type: "offer", sdp });
    for (const track of this.mic.getAudioTracks()) pc.addTrack(track, this.mic);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.send({ type: "answer", sdp: answer.sdp });
    for (const c of this.pendingCandidates) await pc.addIceCandidate(c);
    this.pendingCandidates = [];
  }

  async addCandidate(m) {
    const candidate = { candidate: m.candidate, sdpMLineIndex: m.sdpMLineIndex };
    if (this.pc && this.pc.remoteDescription) await this.pc.addIceCandidate(candidate);
    else this.pendingCandidates.push(candidate);
  }

  fail(text) {
    showError(text);
    this.close(true);
  }

  close(keepState) {
    if (this.closed) return;
    this.closed = true;
    this.send({ type: "stop" });
    this.ws.close(1000);
    if (this.pc) this.pc.close();
    for (const t of this.timers) clearInterval(t);
    for (const track of this.mic.getTracks()) track.stop();
    this.context.close();
    ui.micLevel.style.width = ui.agentLevel.style.width = "0";
    levels.mic = levels.agent = 0;
    if (!keepState) setState("idle");
    ui.start.disabled = false;
    ui.stop.disabled = true;
    if (call === this) call = null;
  }
}

async function start() {
  showError("");
  showWarning("");
  ui.start.disabled = true;
  ui.transcript.textContent = "";
  levels.micPeak = levels.agentPeak = 0;
  const context = new AudioContext();  // made in the click, so it may play
  try {
    const mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    call = new Call(mic, context);
    ui.stop.disabled = false;
  } catch (e) {
    context.close();
    ui.start.disabled = false;
    showError("No microphone: " + e.message);
  }
}

ui.start.onclick = start;
ui.stop.onclick = () => call && call.close();
for (const button of document.querySelectorAll("[data-example]"))
  button.onclick = () => { ui.prompt.value = EXAMPLES[button.dataset.example]; };

window.personaplex = {
  state: () => ui.state.textContent,
  error: () => ui.error.textContent,
  warning: () => ui.warning.textContent,
  transcript: () => ui.transcript.textContent,
  levels: () => ({ ...levels }),
  // The network path: the addresses of the candidate pair in use and the
  // browser's own candidates.
  async route() {
    if (!call || !call.pc) return null;
    const stats = await call.pc.getStats();
    const route = { local: null, localType: null, remote: null, remotePort: null, candidates: [] };
    const address = (c) => (c ? c.address || c.ip : null);
    stats.forEach((r) => {
      if (r.type === "local-candidate") route.candidates.push(address(r));
      if (r.type === "transport" && r.selectedCandidatePairId) {
        const pair = stats.get(r.selectedCandidatePairId);
        const local = stats.get(pair.localCandidateId);
        route.local = address(local);
        route.localType = local ? local.candidateType : null;
        const remote = stats.get(pair.remoteCandidateId);
        route.remote = address(remote);
        route.remotePort = remote ? remote.port : null;
      }
    });
    return route;
  },
  // Bytes of the model's audio received so far (inbound RTP).
  async inboundBytes() {
    if (!call || !call.pc) return 0;
    let bytes = 0;
    (await call.pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "audio") bytes += r.bytesReceived;
    });
    return bytes;
  },
};

loadVoices();
