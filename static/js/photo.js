/* Photos: files chosen, dropped or pasted -> POST /predict in as few requests as the server's limits
   allow -> a gallery of the photos, the one chosen shown large with its faces listed beside it. */
"use strict";

const THUMB_PX = 96; // a face's thumbnail, drawn at twice its displayed size for sharp screens

// items: one per file, {file, url, result, error}; shown: the item on show; run: which selection
// the answers in flight belong to, so that a new selection drops the old one's late answers.
const photos = {items: [], shown: 0, run: 0, model: null};

/* Why the page will not send a file, or null: the server would refuse it anyway, after the upload. */
function refusal(file) {
  if (file.size > SETTINGS.max_upload_mb * MB) {
    return `"${file.name}" is too large: the limit is ${SETTINGS.max_upload_mb} MB (it has ${(file.size / MB).toFixed(1)} MB).`;
  }
  if (file.type && !IMAGE_TYPES.includes(file.type)) return UNSUPPORTED;
  return null;
}

/* Files in groups the server takes in one request: at most max_images, and within the upload limit
   with room for each multipart header. */
function batches(files) {
  const groups = [];
  let group = [], bytes = 0;
  files.forEach((file) => {
    const size = file.size + 512 + 3 * file.name.length;
    if (group.length && (group.length === SETTINGS.max_images || bytes + size > SETTINGS.max_upload_mb * MB)) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(file);
    bytes += size;
  });
  return group.length ? [...groups, group] : groups;
}

/* Analyse a new selection of files: it replaces the gallery, answers fill it in as they arrive. */
async function analyseFiles(files) {
  photos.items.forEach((item) => URL.revokeObjectURL(item.url));
  const run = ++photos.run;
  photos.items = files.map((file) => ({file, url: URL.createObjectURL(file), result: null, error: refusal(file)}));
  photos.shown = 0;
  $("#gallery").toggleClass("d-none", files.length < 2).empty().append(photos.items.map(galleryItem));
  render();
  const items = photos.items.filter((item) => !item.error);
  for (const group of batches(items.map((item) => item.file))) {
    const answered = await answers(group);
    if (run !== photos.run) return;
    answered.forEach((answer, i) => Object.assign(items.find((item) => item.file === group[i]), answer));
    render();
  }
}

/* {result} or {error} for each file of one request. A request of several that fails is sent again
   file by file, so that one bad file does not cost the others their answers. */
async function answers(files, mode = "faces") {
  try {
    const answer = await predictImages(files, mode);
    photos.model = answer.model;
    return answer.results.map((result) => ({result, error: null}));
  } catch (e) {
    if (files.length === 1 || e.status === 401) return files.map(() => ({result: null, error: e.message}));
    const each = [];
    for (const file of files) each.push(...await answers([file], mode));
    return each;
  }
}

/* Classify the photo on show as one face (for a close-up the detector missed). */
async function classifyWhole() {
  const item = photos.items[photos.shown];
  if (!item) return;
  const run = photos.run;
  Object.assign(item, {result: null, error: null});
  render();
  const [answer] = await answers([item.file], "whole");
  if (run === photos.run) Object.assign(item, answer);
  render();
}

/* Show the state of every photo: in the gallery (for several), then the one on show. */
function render() {
  const {items} = photos;
  const waiting = items.filter((item) => !item.result && !item.error).length;
  $("#gallery .gallery-item").each(function (i) {
    const item = items[i];
    $(this).attr("aria-pressed", i === photos.shown).toggleClass("failed", Boolean(item.error)).find(".state")
      .text(item.error ? "not analysed" : item.result ? counted(item.result.faces.length, "face") : "waiting");
  });
  $("#spinner-text").text(items.length > 1 ? `Analysing ${waiting} of ${items.length} photos…` : "Analysing…");
  const item = items[photos.shown];
  if (!item) return;
  const result = item.result;
  $("#spinner").toggleClass("d-none", !waiting);
  $("#error").toggleClass("d-none", !item.error).text(item.error || "");
  $("#no-face").toggleClass("d-none", !result || result.faces.length > 0);
  $("#result").toggleClass("d-none", Boolean(item.error));
  $("#export").toggleClass("d-none", !result);
  showPhoto(item);
}

/* A photo's button in the gallery; render fills in its state. */
function galleryItem(item, i) {
  return $("<button type='button' class='gallery-item'>").attr("data-item", i)
    .append($("<img alt=''>").attr("src", item.url).on("error", function () { this.hidden = true; }),
            $("<span class='name text-truncate'>").text(item.file.name), $("<span class='state'>"));
}

/* Show another photo of the gallery large. */
function choosePhoto(i) {
  photos.shown = i;
  render();
}

/* The photo on show, large, with its boxes, numbers and list of faces (once the image is decoded). */
async function showPhoto(item) {
  const img = $("#photo")[0];
  if (img.getAttribute("src") !== item.url) {
    img.src = item.url;
    $("#photo-overlay, #faces").empty().removeData("result");
    $("#summary").text("");
  }
  const result = item.result;
  if (!result || $("#photo-overlay").data("result") === result) return;
  await img.decode().catch(() => null);
  if (photos.items[photos.shown] !== item || item.result !== result) return;
  img.alt = `${item.file.name}, with a numbered box around each face`;
  drawOverlay($("#photo-overlay"), result, true);
  $("#faces").empty().append(result.faces.map((face, i) => faceCard(img, result, face, i)));
  const faces = counted(result.faces.length, "face");
  $("#faces-heading").text(result.faces.length ? faces : "Faces");
  $("#summary").text(`${faces} in ${result.image.width}x${result.image.height} px, ` +
    `found and classified in ${Math.round(result.timing_ms.decode + result.timing_ms.detect + result.timing_ms.classify)} ms ` +
    `(${result.mode === "whole" ? "whole image" : "face detection"}).`);
}

/* One face in the list: a thumbnail cut from the photo, its number, dominant emotion and confidence;
   the summary folds out the seven bars (open at once when the photo has a single face). */
function faceCard(img, result, face, i) {
  const $bars = emotionBars();
  setBars($bars, face.emotions, face.dominant_emotion);
  return $("<details class='face-card'>").attr("data-face", i).prop("open", result.faces.length === 1).append(
    $("<summary>").append(faceThumb(img, result, face.box), $("<span class='face-number'>").text(i + 1),
      $("<span>").append($("<strong>").text(face.dominant_emotion), ` ${percentText(face.confidence)}`)),
    $("<div class='bars'>").append($bars));
}

/* A square cut of the photo around a face, with a margin, on a canvas. */
function faceThumb(img, result, [x, y, w, h]) {
  const canvas = Object.assign(document.createElement("canvas"), {width: THUMB_PX, height: THUMB_PX, className: "face-thumb"});
  canvas.setAttribute("aria-hidden", "true");
  const scale = img.naturalWidth / result.image.width;
  const side = 1.3 * Math.max(w, h) * scale;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#6c757d";
  ctx.fillRect(0, 0, THUMB_PX, THUMB_PX);
  ctx.drawImage(img, (x + w / 2) * scale - side / 2, (y + h / 2) * scale - side / 2, side, side, 0, 0, THUMB_PX, THUMB_PX);
  return canvas;
}

/* Every answered photo, for the JSON export: its place in the gallery (from 1), its file name and the
   API's result for it. The model is said once at the top; a result's own model and request time are
   left out, since only a request of one photo has them. */
function exportJson() {
  const results = photos.items.map((item, i) => {
    if (!item.result) return null;
    const result = {image_index: i + 1, file: item.file.name, ...item.result};
    delete result.model;
    delete result.time_ms;
    return result;
  }).filter(Boolean);
  return JSON.stringify({model: photos.model, results}, null, 2);
}

/* A photo's CSV rows: one per face, else one saying why there is none (with the face's fields empty). */
function photoRows(item, index) {
  const faces = item.result ? item.result.faces : [];
  if (!faces.length) return [[index, item.file.name, item.error || (item.result ? "no face" : "waiting")]];
  return faces.map((face, n) => [index, item.file.name, "ok", n + 1, ...face.box,
                                 ...LABELS.map((label) => face.emotions[label]), face.dominant_emotion]);
}

/* Every photo in gallery order, numbered from 1 (two may share a file name): a row per face, or one
   with its status ("no face", why it was not analysed, or "waiting"). */
function exportCsv() {
  const header = ["image_index", "image", "status", "face", "x", "y", "width", "height", ...LABELS, "dominant_emotion"];
  const rows = photos.items.flatMap((item, i) => photoRows(item, i + 1));
  return [header, ...rows].map((row) => csvLine(header.map((name, k) => row[k]))).join("");
}

/* The name of a file to save: the photo's name (or "photos" for several) with `ending`. */
function exportName(ending, item = photos.items.length === 1 && photos.items[0]) {
  return `${(item && item.file.name.replace(/\.[^.]*$/, "")) || "photos"}${ending}`;
}

/* Save the photo on show with its boxes and numbers drawn in. The photo is decoded afresh: the one on
   the page may still be loading when it was just chosen in the gallery. */
async function exportPng() {
  const item = photos.items[photos.shown];
  if (!item || !item.result) return;
  const img = Object.assign(new Image(), {src: item.url});
  const png = await img.decode().then(() => annotatedPng(img, item.result), () => null);
  if (png) download(exportName("-faces.png", item), png);
  else $("#export-status").text("The browser could not make the image; try again.");
}

/* Put the JSON export on the clipboard, and say whether that worked. */
async function copyJson() {
  try {
    await navigator.clipboard.writeText(exportJson());
    $("#export-status").text("JSON copied.");
  } catch (e) {
    $("#export-status").text("The browser did not allow copying; use Download JSON instead.");
  }
}
