/* Boxes and numbers over a photo or the live video, and the same drawn into a PNG. The numbers are
   placed so that none covers another and all stay inside the image, however crowded the faces. */
"use strict";

const BADGE_GAP = 1; // pixels kept free between two numbers

/* Whether two {x, y, w, h} rectangles come closer than `gap`. */
function overlaps(a, b, gap = 0) {
  return a.x < b.x + b.w + gap && b.x < a.x + a.w + gap && a.y < b.y + b.h + gap && b.y < a.y + a.h + gap;
}

/* Top-left corners to try for a w x h number of the box at (x, y, bw, bh), each with whether it is
   near the box: the box's corners first, then rings around its top-left corner, up to `reach`. */
function* spotsAround(x, y, bw, bh, w, h, reach) {
  for (const [sx, sy] of [[x, y - h], [x, y], [x + bw - w, y - h], [x + bw - w, y], [x - w, y], [x + bw, y],
                          [x, y + bh], [x, y + bh - h]]) yield [sx, sy, true];
  for (let r = h / 2; r <= reach; r += h / 2) {
    const steps = Math.max(8, Math.ceil(2 * Math.PI * r / (h / 2)));
    for (let k = 0; k < steps; k++) {
      yield [x + r * Math.cos(2 * Math.PI * k / steps), y - r * Math.sin(2 * Math.PI * k / steps), r <= 2 * h];
    }
  }
}

/* Where each face's number goes ({x, y, w, h}, in the units of the boxes), or null where no place is
   free. Faces are placed in order (the API gives the largest first), each at the first spot inside the
   image that covers no number already placed; near its box, a spot that covers no other face either
   is preferred, but not at the price of a number far from its face. */
function layoutBadges(boxes, sizes, width, height) {
  const placed = [];
  const faces = boxes.map(([x, y, w, h]) => ({x, y, w, h}));
  return faces.map((face, i) => {
    const [w, h] = sizes[i];
    if (w > width || h > height) return null;
    let chosen = null;
    for (const [sx, sy, near] of spotsAround(face.x, face.y, face.w, face.h, w, h, Math.max(width, height))) {
      if (chosen && !near) break;
      const spot = {x: Math.min(Math.max(sx, 0), width - w), y: Math.min(Math.max(sy, 0), height - h), w, h};
      if (placed.some((other) => overlaps(spot, other, BADGE_GAP))) continue;
      chosen = chosen || spot;
      if (faces.every((other, j) => j === i || !overlaps(spot, other))) {
        chosen = spot;
        break;
      }
    }
    if (chosen) placed.push(chosen);
    return chosen;
  });
}

/* Boxes in percent of the image, so that they follow it when it is resized; a number per face,
   placed in pixels by placeBadges. Interactive boxes are buttons that lead to the face's row. */
function drawOverlay($overlay, result, interactive) {
  $overlay.empty().data("result", result);
  const {width, height} = result.image;
  const pct = (v, total) => `${(100 * v / total).toFixed(3)}%`;
  result.faces.forEach((face, i) => {
    const [x, y, w, h] = face.box;
    const $box = $(interactive ? "<button type='button'>" : "<div>").addClass("face-box").attr("data-face", i)
      .css({left: pct(x, width), top: pct(y, height), width: pct(w, width), height: pct(h, height)});
    if (interactive) $box.attr("aria-label", `Face ${i + 1}: ${face.dominant_emotion}`);
    $overlay.append($box, $("<span class='face-badge' aria-hidden='true'>").attr("data-face", i).text(i + 1));
  });
  placeBadges($overlay);
}

/* Place the overlay's numbers for the image's size on screen (again after every resize). */
function placeBadges($overlay) {
  const result = $overlay.data("result");
  const width = $overlay.width(), height = $overlay.height();
  if (!result || !width || !height) return;
  const sx = width / result.image.width, sy = height / result.image.height;
  const badges = $overlay.find(".face-badge").toArray();
  const boxes = result.faces.map(({box: [x, y, w, h]}) => [x * sx, y * sy, w * sx, h * sy]);
  const spots = layoutBadges(boxes, badges.map((b) => [b.offsetWidth, b.offsetHeight]), width, height);
  badges.forEach((badge, i) => {
    badge.classList.toggle("d-none", !spots[i]);
    if (spots[i]) Object.assign(badge.style, {left: `${spots[i].x}px`, top: `${spots[i].y}px`});
  });
}

/* The photo at full size with each face's box and number drawn in, as a PNG blob. */
function annotatedPng(img, result) {
  const {width, height} = result.image;
  const canvas = Object.assign(document.createElement("canvas"), {width, height});
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0, width, height);
  const line = Math.max(2, Math.round(Math.max(width, height) / 300));
  const size = Math.max(16, Math.round(Math.max(width, height) / 40));
  ctx.lineWidth = line;
  ctx.strokeStyle = ctx.fillStyle = "#ffc107";
  result.faces.forEach(({box: [x, y, w, h]}) => ctx.strokeRect(x + line / 2, y + line / 2, w - line, h - line));
  ctx.font = `700 ${Math.round(size * 0.7)}px sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  const sizes = result.faces.map((face, i) => [Math.max(size, ctx.measureText(String(i + 1)).width + size / 2), size]);
  layoutBadges(result.faces.map((face) => face.box), sizes, width, height).forEach((spot, i) => {
    if (!spot) return;
    ctx.fillStyle = "#ffc107";
    ctx.fillRect(spot.x, spot.y, spot.w, spot.h);
    ctx.fillStyle = "#000";
    ctx.fillText(String(i + 1), spot.x + spot.w / 2, spot.y + spot.h / 2);
  });
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}
