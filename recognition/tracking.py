"""Follow faces across the sampled frames of a video, smooth each track's probabilities, and sum up a track."""
from itertools import groupby

import numpy as np

# A face continues a track when its box overlaps the track's last box by at least this much
# (intersection over union): a face that moves 80% of its width between two samples still
# overlaps by 0.11, while the faces of two people side by side do not overlap at all.
MIN_IOU = 0.1
# A track that has not been seen for longer than this is closed: a face that comes back later
# (or another person in the same place) starts a new track.
MAX_GAP_S = 1.0


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    inter = max(0, w) * max(0, h)
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def assign_tracks(times, boxes, min_iou=MIN_IOU, max_gap_s=MAX_GAP_S):
    """Track numbers 1, 2, ... of faces given in time order: each face joins the open track its box overlaps most."""
    tracks = []  # per track: [last box, last time]
    numbers = [0] * len(times)
    for time, group in groupby(range(len(times)), key=lambda i: times[i]):
        faces = list(group)
        open_tracks = [k for k, (_, last) in enumerate(tracks) if time - last <= max_gap_s]
        pairs = sorted((-iou(boxes[i], tracks[k][0]), i, k) for i in faces for k in open_tracks)
        taken = set()
        for negative_overlap, i, k in pairs:
            if -negative_overlap < min_iou:
                break
            if numbers[i] == 0 and k not in taken:
                numbers[i], tracks[k] = k + 1, [boxes[i], time]
                taken.add(k)
        for i in faces:
            if numbers[i] == 0:
                tracks.append([boxes[i], time])
                numbers[i] = len(tracks)
    return numbers


def smooth_tracks(probs, tracks, window):
    """Each face's probabilities averaged with those of its track's previous window - 1 faces (1: unchanged)."""
    probs = np.asarray(probs, np.float64)
    smoothed = probs.copy()
    tracks = np.asarray(tracks)
    for track in np.unique(tracks):
        members = np.flatnonzero(tracks == track)
        for j, i in enumerate(members):
            smoothed[i] = probs[members[max(0, j - window + 1):j + 1]].mean(0)
    return smoothed


def emotion_shares(dominant, labels):
    """The share of faces (sampled frames of a track) in which each label was the dominant emotion."""
    total = max(1, len(dominant))
    return {label: round(sum(d == label for d in dominant) / total, 4) for label in labels}


def track_summaries(rows, labels):
    """Per track of a video's rows: source, track, samples, and the share of samples per dominant emotion."""
    tracks = sorted({row["track"] for row in rows if row["track"] is not None})
    summaries = []
    for track in tracks:
        dominant = [row["dominant_emotion"] for row in rows if row["track"] == track]
        summaries.append({"source": rows[0]["source"], "track": track, "samples": len(dominant),
                          **emotion_shares(dominant, labels)})
    return summaries
