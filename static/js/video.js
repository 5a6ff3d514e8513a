/* A video: POST /predict/video -> each face's track with a timeline of its emotions. */
"use strict";

// The image messages would misdescribe a video's errors: the server's own words serve there.
const VIDEO_MESSAGES = {unauthorized: MESSAGES.unauthorized};

/* POST a video file; resolves to the JSON answer, rejects with a sentence for people. */
function predictVideo(file) {
  if (file.size > SETTINGS.max_video_mb * MB) {
    return Promise.reject(new Error(`That video is too large: the limit is ${SETTINGS.max_video_mb} MB.`));
  }
  return post("/predict/video", file, {"Content-Type": file.type || "application/octet-stream"}, VIDEO_MESSAGES);
}

/* One face's track: its dominant emotion, its shares of time and a canvas for its timeline. */
function trackCard(track) {
  const shares = LABELS.filter((label) => track.summary[label] > 0)
    .sort((a, b) => track.summary[b] - track.summary[a])
    .map((label) => `${label} ${(100 * track.summary[label]).toFixed(0)}%`).join(", ");
  return $("<div class='track-card'>").attr("data-track", track.track).append(
    $("<div class='fw-semibold'>").text(`Face ${track.track}: mostly ${track.dominant_emotion}`),
    $("<div class='small text-body-secondary mb-1'>").text(`${track.samples} samples; time as the dominant emotion: ${shares}`),
    $("<canvas class='timeline' role='img'>")
      .attr("aria-label", `Track ${track.track}: each emotion's probability over time; mostly ${track.dominant_emotion}`));
}

/* The summary, legend and a card per track of a video's answer. */
function showVideo(result) {
  const {video, tracks} = result;
  const duration = Math.max(video.duration_s, ...tracks.flatMap((t) => t.timeline.map((p) => p.time_s)));
  $("#video-summary").text(`${counted(tracks.length, "face")} followed through ` +
    `${video.frames_analysed} frames of a ${video.duration_s.toFixed(1)} s, ${video.width}x${video.height} video, ` +
    `answered in ${(result.time_ms / 1000).toFixed(1)} s.` + (result.message ? ` ${result.message}.` : ""));
  $("#video-legend").empty().append(legend());
  $("#video-tracks").empty().append(tracks.map(trackCard));
  $("#video-result").removeClass("d-none");
  // Drawn once shown, so that each canvas is sized to its place on the page.
  tracks.forEach((track, i) => drawTimeline($("#video-tracks canvas")[i], track.timeline, 0, duration));
}

/* Send a video and show its answer or what went wrong. */
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
