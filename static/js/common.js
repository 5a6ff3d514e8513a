/* What the photo, webcam and video parts share: the server's settings, requests to the API,
   files to download and CSV lines. */
"use strict";

// Labels and limits come from the server (templates/index.html), so the page follows the served model.
const SETTINGS = JSON.parse(document.getElementById("settings").textContent);
const LABELS = SETTINGS.labels;
const MB = 1024 * 1024;
const IMAGE_TYPES = SETTINGS.image_types; // what /predict decodes, as MIME types
// One colour per emotion, in LABELS order: matplotlib's tab10, as in the command's --plot PNGs.
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];

const UNSUPPORTED = `That file type is not supported. Use a ${SETTINGS.image_names} image.`;
const MESSAGES = {
  payload_too_large: () => `That file is too large: the limit is ${SETTINGS.max_upload_mb} MB.`,
  too_many_pixels: () => `That image has too many pixels to analyse (the limit is ${SETTINGS.max_pixels / 1e6} megapixels).`,
  unsupported_image_type: () => UNSUPPORTED,
  unsupported_media_type: () => UNSUPPORTED,
  invalid_image: () => "That file is not an image that can be read (it may be damaged or not an image at all).",
  empty_image: () => "That file is empty.",
  unauthorized: () => "This server needs a valid API token: enter it above.",
};

/* The API token this tab was given, if any. */
function token() {
  return sessionStorage.getItem("fer-token") || "";
}

/* A sentence for people from an error answer: ours where we have one for its code, else the server's. */
function explain(status, body, messages) {
  const code = body && body.error && body.error.code;
  if (code && messages[code]) return messages[code]();
  if (code) return body.error.message;
  return `The server answered ${status} without an explanation.`;
}

/* POST to the API; resolves to the JSON answer, rejects with a sentence for people. */
async function post(url, body, headers = {}, messages = MESSAGES) {
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let response;
  try {
    response = await fetch(url, {method: "POST", headers, body});
  } catch (e) {
    throw new Error("Could not reach the server. Check your connection and try again.");
  }
  const answer = await response.json().catch(() => null);
  if (response.status === 401) $("#token-box").removeClass("d-none");
  if (!response.ok) throw Object.assign(new Error(explain(response.status, answer, messages)), {status: response.status});
  return answer;
}

/* POST images to /predict: one as the raw body, several as multipart fields named image.
   Resolves to one result per image (the API answers {results: [...]} for several) and the model. */
async function predictImages(files, mode = "faces") {
  const url = `/predict${mode === "whole" ? "?mode=whole" : ""}`;
  if (files.length === 1) {
    const answer = await post(url, files[0], {"Content-Type": files[0].type || "application/octet-stream"});
    return {results: [answer], model: answer.model};
  }
  const form = new FormData();
  files.forEach((file) => form.append("image", file, file.name));
  return post(url, form);
}

/* "1 face", "2 faces". */
function counted(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/* 0.8809 -> "88.1%". */
function percentText(p) {
  return `${(100 * p).toFixed(1)}%`;
}

/* Offer text or a blob as a file to save. */
function download(name, content, type) {
  const url = URL.createObjectURL(content instanceof Blob ? content : new Blob([content], {type}));
  const link = Object.assign(document.createElement("a"), {href: url, download: name});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/* One CSV line (RFC 4180): a field with a comma, quote or line break is quoted. A text that a
   spreadsheet would run as a formula (a file named "=HYPERLINK(...).jpg") gets a leading apostrophe;
   numbers are left as they are. */
function csvLine(fields) {
  return fields.map((f) => {
    const text = f === null || f === undefined ? "" : String(f);
    const safe = typeof f === "string" && /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
    return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
  }).join(",") + "\r\n";
}
