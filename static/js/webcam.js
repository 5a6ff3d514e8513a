/* The webcam: a frame at a time -> POST /predict -> boxes over the video, the largest face's bars,
   a timeline of its emotions over the last minute, downloadable as CSV for the whole run. */
"use strict";

const WEBCAM_INTERVAL_MS = 200; // at most 5 frames a second, and never two requests at once
const FPS_WINDOW_MS = 5000; // frames per second counts the answers of the last 5 s
const TIMELINE_S = 60;
const ANNOUNCE_MS = 3000; // a screen reader hears at most one change every 3 s

// stream: the camera's while it runs; run: counts Starts and Stops, so that whatever a Start or a frame
// was waiting for is dropped once a later Stop or Start has come; answer: the last frame's answer, a
// promise of the result or an Error; points: the run's timeline, [{time_s, emotions}] (null: no face);
// answered: when each of the last answers came; heard: the last thing announced, and when.
const webcam = {stream: null, run: 0, answer: Promise.resolve(), timer: null, started: 0, points: [], answered: [],
                wanted: "", heard: {text: "", at: -Infinity}, announceTimer: null};

/* A sentence for people about why getUserMedia failed. */
function webcamError(e) {
  const messages = {
    NotAllowedError: "Camera access was denied. Allow the camera for this page in your browser and try again.",
    NotFoundError: "No camera was found. Connect a camera and try again.",
    NotReadableError: "The camera is in use by another application.",
  };
  return messages[e.name] || `The camera could not be started (${e.message || e.name}).`;
}

/* The camera's stream for this run, or null: after saying why there is none, or when a Stop came while
   the browser asked (the stream that arrives late is turned off again). */
async function openCamera(run) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false});
  } catch (e) {
    if (run === webcam.run) webcamFail(webcamError(e));
    return null;
  }
  if (run === webcam.run) return stream;
  stopTracks(stream);
  return null;
}

/* Turn a stream's camera off. */
function stopTracks(stream) {
  stream.getTracks().forEach((track) => track.stop());
}

/* Ask for the camera, show it and start a new run of frames and timeline. Start is disabled at once,
   so that a double click asks once; a Stop or a change of tab while it waits wins. */
async function webcamStart() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return webcamFail("This browser cannot use a camera here (a camera needs HTTPS or localhost).");
  }
  const run = ++webcam.run;
  $("#webcam-start").prop("disabled", true);
  $("#webcam-stop").prop("disabled", false);
  $("#webcam-error").addClass("d-none");
  const stream = await openCamera(run);
  if (!stream) return;
  webcam.stream = stream;
  const video = $("#webcam-video")[0];
  video.srcObject = stream;
  try {
    await video.play();
  } catch (e) {
    if (run === webcam.run) webcamFail(`The camera's picture could not be shown (${e.message}).`);
    return;
  }
  if (run === webcam.run) beginRun(run);
}

/* A new run's frames, figures and timeline, and its loop of frames: once a stopped run's last frame is
   answered, so that a quick Stop and Start never has two frames in flight. */
async function beginRun(run) {
  Object.assign(webcam, {started: performance.now(), points: [], answered: []});
  $("#webcam-view, #webcam-timeline-box").removeClass("d-none");
  $("#webcam-frames").text("0");
  $("#webcam-csv").prop("disabled", true);
  drawTimeline($("#webcam-timeline")[0], [], 0, TIMELINE_S);
  await webcam.answer;
  if (run === webcam.run) webcamLoop(run);
}

/* Stop the camera and clear what described it; the run's timeline and its count of frames stay, to
   look at or download, until the next Start. */
function webcamStop() {
  webcam.run += 1;
  clearTimeout(webcam.timer);
  clearTimeout(webcam.announceTimer);
  webcam.timer = webcam.announceTimer = null;
  if (webcam.stream) stopTracks(webcam.stream);
  webcam.stream = null;
  $("#webcam-video")[0].srcObject = null;
  $("#webcam-view, #webcam-no-face").addClass("d-none");
  $("#webcam-overlay").empty().removeData("result");
  setBars($("#webcam-bars .bar-row"), null, null);
  $("#webcam-fps, #webcam-latency").text("-");
  $("#webcam-start").prop("disabled", false);
  $("#webcam-stop").prop("disabled", true);
}

/* Stop, and say why. */
function webcamFail(message) {
  webcamStop();
  $("#webcam-error").removeClass("d-none").text(message);
}

/* The video's current frame as a JPEG blob. */
function grabFrame(video) {
  const canvas = Object.assign(document.createElement("canvas"), {width: video.videoWidth, height: video.videoHeight});
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.8));
}

/* One frame in flight at a time: the next frame is grabbed only after the answer arrives. A loop ends
   at its first step after a Stop, and its answer is dropped. */
async function webcamLoop(run) {
  const video = $("#webcam-video")[0];
  const t0 = performance.now();
  if (video.videoWidth > 0) {
    const frame = await grabFrame(video);
    if (run !== webcam.run) return;
    webcam.answer = predictImages([frame]).then(({results: [result]}) => result, (e) => e);
    const answer = await webcam.answer;
    if (run !== webcam.run) return;
    if (answer instanceof Error) {
      $("#webcam-overlay").empty().removeData("result");
      $("#webcam-error").removeClass("d-none").text(answer.message);
    } else {
      showFrame(answer, t0);
      $("#webcam-error").addClass("d-none");
    }
  }
  webcam.timer = setTimeout(() => webcamLoop(run), Math.max(0, WEBCAM_INTERVAL_MS - (performance.now() - t0)));
}

/* An answer for the frame grabbed at t0: boxes, bars, notice, figures and timeline. A frame with no
   face clears the boxes at once, so that none lingers after a cut. */
function showFrame(result, t0) {
  const now = performance.now();
  const face = result.faces[0] || null; // the API gives the largest face first
  drawOverlay($("#webcam-overlay"), result, false);
  setBars($("#webcam-bars .bar-row"), face && face.emotions, face && face.dominant_emotion);
  $("#webcam-no-face").toggleClass("d-none", Boolean(face));
  webcam.answered = [...webcam.answered.filter((t) => t > now - FPS_WINDOW_MS), now];
  const span = (now - webcam.answered[0]) / 1000;
  $("#webcam-fps").text(webcam.answered.length > 1 ? ((webcam.answered.length - 1) / span).toFixed(1) : "-");
  $("#webcam-latency").text(Math.round(now - t0));
  webcam.points.push({time_s: (t0 - webcam.started) / 1000, emotions: face && face.emotions,
                      dominant: face && face.dominant_emotion});
  $("#webcam-frames").text(webcam.points.length);
  $("#webcam-csv").prop("disabled", false);
  const end = Math.max(TIMELINE_S, (now - webcam.started) / 1000);
  drawTimeline($("#webcam-timeline")[0], webcam.points, end - TIMELINE_S, end);
  announce(face ? `Face in view: ${face.dominant_emotion}` : "No face in view");
}

/* Say a change in the live region, but at most once every ANNOUNCE_MS: a state that lasts less
   than that is skipped, and only the latest state is said. */
function announce(text) {
  webcam.wanted = text;
  if (webcam.announceTimer || text === webcam.heard.text) return;
  webcam.announceTimer = setTimeout(() => {
    webcam.announceTimer = null;
    if (webcam.wanted === webcam.heard.text) return;
    webcam.heard = {text: webcam.wanted, at: performance.now()};
    $("#webcam-announce").text(webcam.wanted);
  }, Math.max(0, webcam.heard.at + ANNOUNCE_MS - performance.now()));
}

/* The run's timeline: one row per frame answered, its time, whether a face was seen and its probabilities. */
function webcamCsv() {
  let text = csvLine(["time_s", "face", ...LABELS, "dominant_emotion"]);
  webcam.points.forEach((point) => {
    text += csvLine([point.time_s.toFixed(3), point.emotions ? 1 : 0,
                     ...LABELS.map((label) => point.emotions && point.emotions[label]), point.dominant]);
  });
  return text;
}
