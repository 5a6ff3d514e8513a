/* The page: upload or webcam -> POST /predict -> boxes over the image and probability bars;
   a video -> POST /predict/video -> a timeline of each face's emotions. */
"use strict";

// Labels and limits come from the server (templates/index.html), so the page follows the served model.
const SETTINGS = JSON.parse(document.getElementById("settings").textContent);
const LABELS = SETTINGS.labels;
const MAX_UPLOAD_MB = SETTINGS.max_upload_mb;
const WEBCAM_INTERVAL_MS = 200; // at most 5 frames a second, and never two requests at once
const MAX_VIDEO_MB = SETTINGS.max_video_mb;
// One colour per emotion, in LABELS order: matplotlib's tab10, as in the command's --plot PNGs.
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];

const MESSAGES = {
  payload_too_large: () => `That file is too large: the limit is ${MAX_UPLOAD_MB} MB.`,
  too_many_pixels: () => `That image has too many pixels to analyse (the limit is ${SETTINGS.max_pixels / 1e6} megapixels).`,
  unsupported_image_type: () => "That file type is not supported. Use a JPEG, PNG, WebP, BMP or GIF image.",
  unsupported_media_type: () => "That file type is not supported. Use a JPEG, PNG, WebP, BMP or GIF image.",
  invalid_image: () => "That file is not an image that can be read (it may be damaged or not an image at all).",
  empty_image: () => "That file is empty.",
  unauthorized: () => "This server needs a valid API token: enter it above.",
};

let lastUpload = null; // {blob, url} of the photo on show, for "classify the whole image"

function token() {
  return sessionStorage.getItem("fer-token") || "";
}

function explain(status, body) {
  const code = body && body.error && body.error.code;
  if (code && MESSAGES[code]) return MESSAGES[code]();
  if (code) return body.error.message;
  return `The server answered ${status} without an explanation.`;
}

/* POST an image blob; resolves to the JSON body, rejects with a sentence for people. */
async function predict(blob, mode) {
  const headers = {"Content-Type": blob.type || "application/octet-stream"};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let response;
  try {
    response = await fetch(`/predict${mode === "whole" ? "?mode=whole" : ""}`, {method: "POST", headers, body: blob});
  } catch (e) {
    throw new Error("Could not reach the server. Check your connection and try again.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (response.status === 401) $("#token-box").removeClass("d-none");
  if (!response.ok) throw new Error(explain(response.status, body));
  return body;
}

function percent(value, total) {
  return `${(100 * value / total).toFixed(3)}%`;
}

/* Boxes in percent of the image size, so the overlay follows the image when it is resized. */
function drawBoxes($overlay, result, interactive) {
  $overlay.empty();
  const {width, height} = result.image;
  result.faces.forEach((face, i) => {
    const [x, y, w, h] = face.box;
    const $box = $(interactive ? "<button type='button'>" : "<div>")
      .addClass("face-box").attr("data-face", i)
      .css({left: percent(x, width), top: percent(y, height), width: percent(w, width), height: percent(h, height)})
      .append($("<span class='tag'>").text(`${i + 1}: ${face.dominant_emotion}`));
    if (interactive) $box.attr("aria-label", `Face ${i + 1}: ${face.dominant_emotion}`);
    $overlay.append($box);
  });
}

function faceCard(face, i) {
  const $card = $("<div class='face-card' tabindex='0' role='group'>").attr("data-face", i)
    .attr("aria-label", `Face ${i + 1}, most likely ${face.dominant_emotion}`)
    .append($("<div class='fw-semibold mb-1'>").text(`Face ${i + 1}: ${face.dominant_emotion} (${(100 * face.confidence).toFixed(1)}%)`));
  LABELS.forEach((label) => {
    const p = face.emotions[label];
    const pct = `${(100 * p).toFixed(1)}%`;
    const $bar = $("<div class='progress-bar'>").css("width", pct);
    if (label === face.dominant_emotion) $bar.addClass("bg-success");
    $card.append($("<div class='bar-row'>").attr("data-label", label).append(
      $("<span class='name'>").text(label),
      $("<div class='progress' role='progressbar' aria-valuemin='0' aria-valuemax='100'>")
        .attr({"aria-valuenow": (100 * p).toFixed(1), "aria-label": `${label} ${pct}`}).append($bar),
      $("<span class='pct'>").text(pct)));
  });
  return $card;
}

function highlight(i, on) {
  $(`[data-face='${i}']`).toggleClass("active", on);
}

function showState({spinner = false, error = null, noFace = false}) {
  $("#spinner").toggleClass("d-none", !spinner);
  $("#error").toggleClass("d-none", !error).text(error || "");
  $("#no-face").toggleClass("d-none", !noFace);
}

function showResult(result) {
  drawBoxes($("#photo-overlay"), result, true);
  $("#faces").empty().append(result.faces.map(faceCard));
  const faces = result.faces.length;
  $("#summary").text(`${faces} face${faces === 1 ? "" : "s"} in ${result.image.width}x${result.image.height} px, ` +
    `answered in ${Math.round(result.time_ms)} ms (${result.mode === "whole" ? "whole image" : "face detection"}).`);
  showState({noFace: faces === 0});
}

async function analyse(blob, mode = "faces") {
  if (lastUpload === null || lastUpload.blob !== blob) {
    if (lastUpload) URL.revokeObjectURL(lastUpload.url);
    lastUpload = {blob, url: URL.createObjectURL(blob)};
    $("#photo").attr("src", lastUpload.url);
    $("#photo-overlay, #faces").empty();
    $("#summary").text("");
  }
  $("#result").removeClass("d-none");
  showState({spinner: true});
  try {
    showResult(await predict(blob, mode));
  } catch (e) {
    $("#result").addClass("d-none");
    showState({error: e.message});
  }
}

function firstImageFile(files) {
  return Array.from(files || []).find((f) => f.type.startsWith("image/")) || (files && files[0]) || null;
}

/* ---- webcam ---- */

const webcam = {stream: null, timer: null, frames: 0, started: 0};

function webcamError(e) {
  const messages = {
    NotAllowedError: "Camera access was denied. Allow the camera for this page in your browser and try again.",
    NotFoundError: "No camera was found. Connect a camera and try again.",
    NotReadableError: "The camera is in use by another application.",
  };
  return messages[e.name] || `The camera could not be started (${e.message || e.name}).`;
}

async function webcamStart() {
  $("#webcam-error").addClass("d-none");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $("#webcam-error").removeClass("d-none").text("This browser cannot use a camera here (a camera needs HTTPS or localhost).");
    return;
  }
  try {
    webcam.stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false});
  } catch (e) {
    $("#webcam-error").removeClass("d-none").text(webcamError(e));
    return;
  }
  const video = $("#webcam-video")[0];
  video.srcObject = webcam.stream;
  await video.play();
  $("#webcam-stage").removeClass("d-none");
  $("#webcam-start").prop("disabled", true);
  $("#webcam-stop").prop("disabled", false);
  webcam.frames = 0;
  webcam.started = performance.now();
  webcamLoop();
}

function webcamStop() {
  clearTimeout(webcam.timer);
  webcam.timer = null;
  if (webcam.stream) webcam.stream.getTracks().forEach((t) => t.stop());
  webcam.stream = null;
  $("#webcam-overlay").empty();
  $("#webcam-start").prop("disabled", false);
  $("#webcam-stop").prop("disabled", true);
}

function grabFrame(video) {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.8));
}

/* One frame in flight at a time: the next frame is grabbed only after the answer arrives. */
async function webcamLoop() {
  if (!webcam.stream) return;
  const video = $("#webcam-video")[0];
  const t0 = performance.now();
  if (video.videoWidth > 0) {
    try {
      const result = await predict(await grabFrame(video), "faces");
      if (!webcam.stream) return;
      webcam.frames += 1;
      drawBoxes($("#webcam-overlay"), result, false);
      $("#webcam-latency").text(Math.round(performance.now() - t0));
      $("#webcam-frames").text(webcam.frames);
      $("#webcam-fps").text((webcam.frames / ((performance.now() - webcam.started) / 1000)).toFixed(1));
      $("#webcam-error").addClass("d-none");
    } catch (e) {
      $("#webcam-error").removeClass("d-none").text(e.message);
    }
  }
  webcam.timer = setTimeout(webcamLoop, Math.max(0, WEBCAM_INTERVAL_MS - (performance.now() - t0)));
}

/* ---- video ---- */

/* POST a video file; resolves to the JSON body, rejects with a sentence for people. */
async function predictVideo(file) {
  if (file.size > MAX_VIDEO_MB * 1024 * 1024) throw new Error(`That video is too large: the limit is ${MAX_VIDEO_MB} MB.`);
  const headers = {"Content-Type": file.type || "application/octet-stream"};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let response;
  try {
    response = await fetch("/predict/video", {method: "POST", headers, body: file});
  } catch (e) {
    throw new Error("Could not reach the server. Check your connection and try again.");
  }
  const body = await response.json().catch(() => null);
  if (response.status === 401) $("#token-box").removeClass("d-none");
  if (!response.ok) {
    if (response.status === 401) throw new Error(MESSAGES.unauthorized());
    throw new Error((body && body.error && body.error.message) || `The server answered ${response.status}.`);
  }
  return body;
}

/* Each emotion's probability against time, on a canvas: time 0 to the clip's end across, 0 to 1 up. */
function drawTimeline(canvas, track, duration) {
  const ctx = canvas.getContext("2d");
  const {width, height} = canvas;
  const pad = {left: 34, right: 8, top: 8, bottom: 22};
  const x = (t) => pad.left + (width - pad.left - pad.right) * (duration > 0 ? t / duration : 0);
  const y = (p) => height - pad.bottom - (height - pad.top - pad.bottom) * p;
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#6c757d";
  ctx.strokeStyle = "#dee2e6";
  [0, 0.5, 1].forEach((p) => {
    ctx.beginPath();
    ctx.moveTo(pad.left, y(p));
    ctx.lineTo(width - pad.right, y(p));
    ctx.stroke();
    ctx.fillText(p.toFixed(1), 4, y(p) + 4);
  });
  const step = Math.max(1, Math.ceil(duration / 10));
  for (let t = 0; t <= duration; t += step) ctx.fillText(`${t} s`, x(t) - 6, height - 6);
  LABELS.forEach((label, i) => {
    ctx.strokeStyle = COLOURS[i];
    ctx.lineWidth = 2;
    ctx.beginPath();
    track.timeline.forEach((point, j) => (j ? ctx.lineTo : ctx.moveTo).call(ctx, x(point.time_s), y(point.emotions[label])));
    ctx.stroke();
  });
}

function trackCard(track, duration) {
  const shares = LABELS.filter((label) => track.summary[label] > 0)
    .sort((a, b) => track.summary[b] - track.summary[a])
    .map((label) => `${label} ${(100 * track.summary[label]).toFixed(0)}%`).join(", ");
  const canvas = $("<canvas class='timeline' width='900' height='180' role='img'>")
    .attr("aria-label", `Track ${track.track}: each emotion's probability over time; mostly ${track.dominant_emotion}`);
  drawTimeline(canvas[0], track, duration);
  return $("<div class='track-card'>").attr("data-track", track.track).append(
    $("<div class='fw-semibold'>").text(`Face ${track.track}: mostly ${track.dominant_emotion}`),
    $("<div class='small text-body-secondary mb-1'>").text(`${track.samples} samples; time as the dominant emotion: ${shares}`),
    canvas);
}

function showVideo(result) {
  const {video, tracks} = result;
  const duration = Math.max(video.duration_s, ...tracks.flatMap((t) => t.timeline.map((p) => p.time_s)));
  $("#video-summary").text(`${tracks.length} face${tracks.length === 1 ? "" : "s"} followed through ` +
    `${video.frames_analysed} frames of a ${video.duration_s.toFixed(1)} s, ${video.width}x${video.height} video, ` +
    `answered in ${(result.time_ms / 1000).toFixed(1)} s.` + (result.message ? ` ${result.message}.` : ""));
  $("#video-legend").empty().append(LABELS.map((label, i) =>
    $("<span>").append($("<span class='swatch'>").css("background", COLOURS[i]), document.createTextNode(label))));
  $("#video-tracks").empty().append(tracks.map((track) => trackCard(track, duration)));
  $("#video-result").removeClass("d-none");
}

async function analyseVideo(file) {
  $("#video-result, #video-error").addClass("d-none");
  $("#video-spinner").removeClass("d-none");
  try {
    showVideo(await predictVideo(file));
  } catch (e) {
    $("#video-error").removeClass("d-none").text(e.message);
  } finally {
    $("#video-spinner").addClass("d-none");
  }
}

/* ---- wiring ---- */

/* A drop zone and its file input: a click, Enter or Space opens the picker; the file that `pick`
   takes from those chosen or dropped goes to `handle`. */
function wireDropZone(zone, input, pick, handle) {
  $(input).on("change", function () {
    const file = pick(this.files);
    if (file) handle(file);
    this.value = "";
  });
  $(zone)
    .on("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        $(input).trigger("click");
      }
    })
    .on("dragenter dragover", (e) => {
      e.preventDefault();
      $(zone).addClass("dragging");
    })
    .on("dragleave drop", () => $(zone).removeClass("dragging"))
    .on("drop", (e) => {
      e.preventDefault();
      const file = pick(e.originalEvent.dataTransfer.files);
      if (file) handle(file);
    });
}

$(function () {
  if (SETTINGS.token_required && !token()) $("#token-box").removeClass("d-none");
  $("#token-form").on("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("fer-token", $("#token-input").val());
    $("#token-box").addClass("d-none");
    if (lastUpload) analyse(lastUpload.blob);
  });

  wireDropZone("#drop-zone", "#file-input", firstImageFile, (file) => analyse(file));
  wireDropZone("#video-drop", "#video-input", (files) => (files && files[0]) || null, analyseVideo);
  $(document).on("paste", (e) => {
    const file = firstImageFile(e.originalEvent.clipboardData && e.originalEvent.clipboardData.files);
    if (file) analyse(file);
  });
  $(".sample").on("click", async function () {
    showState({spinner: true});
    try {
      const response = await fetch($(this).data("src"));
      analyse(await response.blob());
    } catch (e) {
      showState({error: "Could not load the sample photo."});
    }
  });
  $("#classify-whole").on("click", () => lastUpload && analyse(lastUpload.blob, "whole"));

  $(document).on("mouseenter focusin", "[data-face]", function () {
    highlight($(this).data("face"), true);
  });
  $(document).on("mouseleave focusout", "[data-face]", function () {
    highlight($(this).data("face"), false);
  });
  $(document).on("click", ".face-box", function () {
    $(`.face-card[data-face='${$(this).data("face")}']`).trigger("focus");
  });

  $("#webcam-start").on("click", webcamStart);
  $("#webcam-stop").on("click", webcamStop);
  $("#tab-photo").on("shown.bs.tab", webcamStop);
});
