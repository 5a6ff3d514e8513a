"""One short video, from its file's bytes to the JSON-ready timeline of each face (POST /predict/video)."""
from recognition.batch import faces_in_frames, source_rows
from recognition.classifier import classify
from recognition.tracking import track_summaries
from recognition.video import VideoOverLimit, open_video, sample_frames


def analyze_clip(data, classifier, detector, fps, max_seconds, max_pixels):
    """Each track's timeline and share of time per emotion in a video held in memory; VideoError if it
    cannot be decoded, VideoOverLimit if it is longer than max_seconds or its frames larger than max_pixels."""
    with open_video(data) as (capture, info):
        if info.duration_s > max_seconds:
            raise VideoOverLimit(f"the video is {info.duration_s:.1f} s long; the limit is {max_seconds:g} s")
        if info.width * info.height > max_pixels:
            raise VideoOverLimit(f"the video's frames are {info.width}x{info.height} pixels; "
                                 f"the limit is {max_pixels:,}")
        faces = faces_in_frames(sample_frames(capture, info, fps, max_seconds=max_seconds), detector)
    probs = classify(classifier, faces.pop("crops"))
    rows = source_rows("upload", [{"start": 0, **faces, "probs": probs}], classifier.labels)
    result = {"video": {"width": info.width, "height": info.height, "fps": round(info.fps, 3),
                        "duration_s": round(info.duration_s, 3), "sampled_fps": fps, "frames_analysed": faces["count"]},
              "tracks": timelines(rows, classifier.labels)}
    if not result["tracks"]:
        result["message"] = "no face found in the sampled frames"
    return result


def timelines(rows, labels):
    """The rows of a video grouped by track: the share of time per emotion and the face at every sample."""
    faces = [row for row in rows if row["track"] is not None]
    tracks = []
    for summary in track_summaries(faces, labels) if faces else []:
        shares = {label: summary[label] for label in labels}
        tracks.append({
            "track": summary["track"], "samples": summary["samples"],
            "dominant_emotion": max(shares, key=shares.get), "summary": shares,
            "timeline": [{"frame": row["frame"], "time_s": row["time_s"], "box": [row[k] for k in "xywh"],
                          "emotions": {label: row[label] for label in labels},
                          "dominant_emotion": row["dominant_emotion"]}
                         for row in faces if row["track"] == summary["track"]]})
    return tracks
