"use strict";
// The reference client's recorder settings (client/src/.../useUserAudio.ts):
// 20 ms Opus frames at 24 kHz, two frames a page, pages streamed as they come.
const params = new URLSearchParams(location.search);
const rate = Number(params.get("rate") || 48000);
const stats = window.standin = {
  rate: 0, opusHeadRates: [], handshake: false, audioPages: 0, textPieces: 0, sentPages: 0,
  errors: [], closed: null, started: false, failure: "",
};

function opusHeadRate(page) {
  for (let i = 0; i + 16 <= page.length; i++)
    if (page[i] === 0x4f && page[i + 1] === 0x70 && page[i + 2] === 0x75 && page[i + 3] === 0x73 && page[i + 4] === 0x48)
      return page[i + 12] | (page[i + 13] << 8) | (page[i + 14] << 16) | (page[i + 15] << 24);
  return 0;
}

async function run() {
  const context = new AudioContext({ sampleRate: rate });
  stats.rate = context.sampleRate;
  const mic = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  const source = context.createMediaStreamSource(mic);
  const recorder = new Recorder({
    sourceNode: source, encoderPath: "encoderWorker.min.js",
    bufferLength: Math.round(960 * context.sampleRate / 24000), encoderFrameSize: 20, encoderSampleRate: 24000,
    maxFramesPerPage: 2, numberOfChannels: 1, recordingGain: 1, resampleQuality: 3, encoderComplexity: 0,
    encoderApplication: 2049, streamPages: true,
  });
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/api/chat?text_prompt=" +
    encodeURIComponent("You enjoy having a good conversation.") + "&voice_prompt=NATF2.pt");
  ws.binaryType = "arraybuffer";
  recorder.ondataavailable = (page) => {
    const rateInHead = opusHeadRate(page);
    if (rateInHead) stats.opusHeadRates.push(rateInHead);
    const message = new Uint8Array(page.length + 1);
    message[0] = 1;
    message.set(page, 1);
    if (ws.readyState === WebSocket.OPEN) ws.send(message);
    stats.sentPages++;
  };
  ws.onmessage = (event) => {
    const bytes = new Uint8Array(event.data);
    if (bytes[0] === 0 && !stats.handshake) {
      stats.handshake = true;
      recorder.start().then(() => { stats.started = true; });
    } else if (bytes[0] === 1) stats.audioPages++;
    else if (bytes[0] === 2) stats.textPieces++;
    else if (bytes[0] === 5) stats.errors.push(new TextDecoder().decode(bytes.subarray(1)));
  };
  ws.onclose = (event) => {
    stats.closed = [event.code, event.reason];
    recorder.stop();
  };
}

run().catch((e) => { stats.failure = String(e); });
