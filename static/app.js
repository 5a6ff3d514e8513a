/* The page's wiring: drop zones, paste, samples, the token, the gallery, exports and the webcam's
   buttons. The work is in static/js/: photo.js, webcam.js and video.js, over common.js, charts.js
   and overlay.js. */
"use strict";

/* A drop zone and its file input: a click, Enter or Space opens the picker; the files chosen or
   dropped go to `handle` as an array. */
function wireDropZone(zone, input, handle) {
  $(input).on("change", function () {
    if (this.files.length) handle(Array.from(this.files));
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
      e.originalEvent.dataTransfer.dropEffect = "copy";
      $(zone).addClass("dragging");
    })
    .on("dragleave drop", () => $(zone).removeClass("dragging"))
    .on("drop", (e) => {
      e.preventDefault();
      const files = Array.from(e.originalEvent.dataTransfer.files);
      if (files.length) handle(files);
    });
}

/* Name a sample's file after its address, so that exports say which photo a row is about. */
async function sampleFile(src) {
  const response = await fetch(src);
  if (!response.ok) throw new Error(response.statusText);
  const blob = await response.blob();
  return new File([blob], src.split("/").pop(), {type: blob.type});
}

$(function () {
  if (SETTINGS.token_required && !token()) $("#token-box").removeClass("d-none");
  $("#token-form").on("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("fer-token", $("#token-input").val());
    $("#token-box").addClass("d-none");
    if (photos.items.length) analyseFiles(photos.items.map((item) => item.file));
  });

  wireDropZone("#drop-zone", "#file-input", analyseFiles);
  wireDropZone("#video-drop", "#video-input", (files) => analyseVideo(files[0]));
  // A file dropped beside a zone would make the browser leave the page to show it.
  $(document).on("dragover drop", (e) => {
    e.preventDefault();
    if (!$(e.target).closest(".drop-zone").length) e.originalEvent.dataTransfer.dropEffect = "none";
  });
  $(document).on("paste", (e) => {
    const files = Array.from((e.originalEvent.clipboardData && e.originalEvent.clipboardData.files) || []);
    if (files.length && $("#tab-photo").hasClass("active")) analyseFiles(files);
  });
  $(".sample").on("click", async function () {
    try {
      analyseFiles([await sampleFile($(this).data("src"))]);
    } catch (e) {
      $("#error").removeClass("d-none").text("Could not load the sample photo.");
    }
  });
  $("#classify-whole").on("click", classifyWhole);
  $("#gallery").on("click", ".gallery-item", function () {
    choosePhoto($(this).data("item"));
  });

  $("#export-json").on("click", () => download(exportName("-faces.json"), exportJson(), "application/json"));
  $("#export-csv").on("click", () => download(exportName("-faces.csv"), exportCsv(), "text/csv"));
  $("#export-png").on("click", exportPng);
  $("#copy-json").on("click", copyJson);

  // A face's box, number and row light up together; a box or number leads to the row.
  $(document).on("mouseenter focusin", "[data-face]", function () {
    $(`[data-face='${$(this).data("face")}']`).addClass("active");
  });
  $(document).on("mouseleave focusout", "[data-face]", function () {
    $(`[data-face='${$(this).data("face")}']`).removeClass("active");
  });
  $(document).on("click", "#photo-overlay [data-face]", function () {
    const $card = $(`.face-card[data-face='${$(this).data("face")}']`);
    $card.find("summary").trigger("focus");
    $card[0].scrollIntoView({block: "nearest"});
  });
  const resized = new ResizeObserver((entries) => entries.forEach((entry) => placeBadges($(entry.target).find(".overlay"))));
  $(".stage").each((i, stage) => resized.observe(stage));

  $("#webcam-start").on("click", webcamStart);
  $("#webcam-stop").on("click", webcamStop);
  $("#webcam-csv").on("click", () => download("webcam-timeline.csv", webcamCsv(), "text/csv"));
  $("#webcam-bars").append(emotionBars());
  $("#webcam-legend").append(legend());
  $("#tab-webcam").on("hide.bs.tab", webcamStop);
});
