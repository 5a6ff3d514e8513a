/* Drawing: the seven probability bars, the colour legend and a timeline of emotions on a canvas. */
"use strict";

/* One row per label, empty, as one jQuery set; setBars fills them in. */
function emotionBars() {
  return $(LABELS.map((label) => $("<div class='bar-row'>").attr("data-label", label).append(
    $("<span class='name'>").text(label),
    $("<div class='progress' role='progressbar' aria-valuemin='0' aria-valuemax='100'>").attr("aria-label", label)
      .append("<div class='progress-bar'>"),
    $("<span class='pct'>"))[0]));
}

/* Show a face's probabilities in the rows emotionBars made (all empty when emotions is null). */
function setBars($rows, emotions, dominant) {
  $rows.each(function () {
    const label = this.dataset.label;
    const text = emotions ? percentText(emotions[label]) : "-";
    $(this).find(".progress").attr({"aria-valuenow": emotions ? (100 * emotions[label]).toFixed(1) : 0,
                                    "aria-valuetext": emotions ? text : "no face"});
    $(this).find(".progress-bar").css("width", emotions ? text : "0").toggleClass("bg-success", label === dominant);
    $(this).find(".pct").text(text);
  });
}

/* The colour of each emotion's line, for the timelines. */
function legend() {
  return LABELS.map((label, i) =>
    $("<span>").append($("<span class='swatch'>").css("background", COLOURS[i]), document.createTextNode(label)));
}

/* Size a canvas's pixels to its displayed size (sharp on any screen); returns its context in CSS pixels. */
function fittedContext(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 900, height = canvas.clientHeight || 180;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return {ctx, width, height};
}

/* Each emotion's probability against time, from `start` to `end` seconds across and 0 to 1 up.
   points: [{time_s, emotions}], emotions null where no face was seen (the lines break there). */
function drawTimeline(canvas, points, start, end) {
  const {ctx, width, height} = fittedContext(canvas);
  const style = getComputedStyle(document.body);
  const pad = {left: 34, right: 8, top: 8, bottom: 22};
  const span = Math.max(end - start, 1e-9);
  const x = (t) => pad.left + (width - pad.left - pad.right) * (t - start) / span;
  const y = (p) => height - pad.bottom - (height - pad.top - pad.bottom) * p;
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = style.getPropertyValue("--bs-secondary-color");
  ctx.strokeStyle = style.getPropertyValue("--bs-border-color");
  ctx.lineWidth = 1;
  [0, 0.5, 1].forEach((p) => {
    ctx.beginPath();
    ctx.moveTo(pad.left, y(p));
    ctx.lineTo(width - pad.right, y(p));
    ctx.stroke();
    ctx.fillText(p.toFixed(1), 4, y(p) + 4);
  });
  const step = Math.max(1, Math.ceil(span / Math.max(2, Math.floor(width / 70))));
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ctx.fillText(`${t} s`, x(t) - 6, height - 6);
  ctx.lineWidth = 2;
  LABELS.forEach((label, i) => {
    ctx.strokeStyle = COLOURS[i];
    ctx.beginPath();
    let drawing = false;
    points.forEach((point) => {
      if (point.emotions && point.time_s >= start) {
        (drawing ? ctx.lineTo : ctx.moveTo).call(ctx, x(point.time_s), y(point.emotions[label]));
      }
      drawing = Boolean(point.emotions) && point.time_s >= start;
    });
    ctx.stroke();
  });
}
