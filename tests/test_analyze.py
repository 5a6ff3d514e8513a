"""Batch analysis of folders and videos (python -m recognition.analyze) and POST /predict/video."""
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from recognition import analyze as analyze_module
from recognition.analyze import analyze, main
from recognition.batch import IMAGES_PER_TASK, Collector, Job, Unit, find_sources, plan_units, tasks
from recognition.engine_local import local_results
from recognition.tracking import assign_tracks, smooth_tracks
from recognition.video import VideoInfo, is_sampled, parts
from scripts.analysis_media import write_photos, write_video
from tests.support import ROOT

MODEL = str(ROOT / "model" / "fer.pt")
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
REQUIRED = ["source", "frame", "time_s", "track", "x", "y", "w", "h", *LABELS, "dominant_emotion"]
JOB = Job(MODEL)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A folder with three one-face photos, a corrupt JPEG, and (one level down) a 4 s video of two moving faces."""
    root = tmp_path_factory.mktemp("media")
    write_photos(root, 3)
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (root / "clips").mkdir()
    write_video(root / "clips" / "two-faces.mp4", seconds=4, fps=15)
    return root


@pytest.fixture(scope="module")
def video(media):
    return media / "clips" / "two-faces.mp4"


@pytest.fixture(scope="module")
def folder_rows(media, tmp_path_factory):
    """The rows of the whole folder, analysed once in this process, and what was skipped."""
    out = tmp_path_factory.mktemp("out") / "results.csv"
    _, skipped, _ = analyze([str(media)], out, JOB, progress=False)
    return read_csv(out), skipped


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_folder_is_searched_recursively_in_order(media):
    sources = find_sources([str(media)])
    assert [Path(s).name for s in sources] == ["two-faces.mp4", "corrupt.jpg", "photo-00000.jpg",
                                              "photo-00001.jpg", "photo-00002.jpg"]


def test_rows_have_the_documented_columns_and_answers(folder_rows):
    rows, _ = folder_rows
    assert list(rows[0]) == REQUIRED
    photos = [r for r in rows if r["source"].endswith(".jpg")]
    assert len(photos) == 3
    for row in rows:
        probs = [float(row[label]) for label in LABELS]
        assert abs(sum(probs) - 1) < 1e-4
        assert row["dominant_emotion"] == LABELS[int(np.argmax(probs))]
    for row in photos:
        assert row["frame"] == row["time_s"] == row["track"] == ""
        assert row["dominant_emotion"] == "happy"  # the astronaut's known emotion (tests/support/known_answers.py)


def test_two_moving_faces_keep_one_track_each(folder_rows):
    rows, _ = folder_rows
    faces = [r for r in rows if r["source"].endswith(".mp4")]
    tracks = {}
    for row in faces:
        tracks.setdefault(row["track"], []).append(row)
    assert sorted(tracks) == ["1", "2"]
    for track in tracks.values():
        assert [int(r["frame"]) for r in track] == list(range(0, 60, 3))  # 15 fps sampled at 5
        assert [float(r["time_s"]) for r in track] == [round(f / 15, 3) for f in range(0, 60, 3)]
        xs = [int(r["x"]) for r in track]
        ys = {int(r["y"]) < 240 for r in track}
        assert len(ys) == 1, "a track jumped between the upper and the lower face"
        upper = ys.pop()
        assert xs == sorted(xs, reverse=not upper), "the upper face moves right, the lower one left"


def test_a_corrupt_file_is_named_on_stderr_and_skipped(media, tmp_path, capsys):
    main([str(media / "corrupt.jpg"), str(media / "photo-00000.jpg"), str(tmp_path / "missing.png"),
          "--out", str(tmp_path / "r.csv"), "--workers", "1"])
    err = capsys.readouterr().err
    assert f"skipped {media / 'corrupt.jpg'}: the upload is not an image" in err
    assert f"skipped {tmp_path / 'missing.png'}: No such file or directory" in err
    assert "1 sources written" in err and "2 skipped" in err
    assert [r["source"] for r in read_csv(tmp_path / "r.csv")] == [str(media / "photo-00000.jpg")]


def test_the_corrupt_file_of_the_folder_run_is_skipped(folder_rows, media):
    rows, skipped = folder_rows
    assert list(skipped) == [str(media / "corrupt.jpg")]
    assert str(media / "corrupt.jpg") not in {r["source"] for r in rows}


def test_an_image_without_a_face_gets_one_row_with_its_source_only(tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 90, np.uint8))
    analyze([str(blank)], tmp_path / "r.csv", JOB, progress=False)
    assert read_csv(tmp_path / "r.csv") == [{**dict.fromkeys(REQUIRED, ""), "source": str(blank)}]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_resume_skips_the_sources_already_written(media, tmp_path, suffix, monkeypatch):
    out = tmp_path / f"r{suffix}"
    photos = sorted(str(p) for p in media.glob("photo-*.jpg"))
    analyze(photos[:2], out, JOB, progress=False)
    planned = []
    real_plan = analyze_module.plan_units
    monkeypatch.setattr(analyze_module, "plan_units",
                        lambda sources, fps: planned.extend(sources) or real_plan(sources, fps))
    analyze(photos, out, JOB, progress=False, resume=True)
    assert planned == photos[2:]
    if suffix == ".csv":
        sources = [r["source"] for r in read_csv(out)]
    else:
        sources = [json.loads(line)["source"] for line in out.read_text().splitlines()]
    assert sources == photos


def test_resume_refuses_a_file_with_other_columns(media, tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("source,score\nx.jpg,1\n")
    with pytest.raises(SystemExit, match="cannot be resumed"):
        main([str(media / "photo-00000.jpg"), "--out", str(out), "--resume", "--workers", "1"])


def test_jsonl_holds_the_same_rows_with_nulls(media, tmp_path):
    analyze([str(media / "photo-00001.jpg")], tmp_path / "r.jsonl", JOB, progress=False)
    row = json.loads((tmp_path / "r.jsonl").read_text())
    assert list(row) == REQUIRED and row["frame"] is None and row["track"] is None and row["w"] > 0


def test_video_parts_give_the_rows_of_one_pass(video):
    def rows(part_s):
        units = plan_units([str(video)], 5.0, part_s)
        collector = Collector(units, LABELS)
        done = [collector.add(result) for result in local_results(JOB, units, workers=1)]
        return len(units), [row for d in done if d for row in d[1]]

    one_unit, whole = rows(10)
    three_units, parted = rows(1.5)
    assert (one_unit, three_units) == (1, 3)
    assert parted == whole


def test_smoothing_averages_each_track_over_time(video, tmp_path):
    analyze([str(video)], tmp_path / "raw.csv", JOB, progress=False)
    analyze([str(video)], tmp_path / "smooth.csv", JOB, progress=False, smooth=3)
    raw, smooth = read_csv(tmp_path / "raw.csv"), read_csv(tmp_path / "smooth.csv")
    track = [i for i, r in enumerate(raw) if r["track"] == "1"]
    happy = np.array([float(raw[i]["happy"]) for i in track])
    expected = [happy[max(0, j - 2):j + 1].mean() for j in range(len(happy))]
    assert [float(smooth[i]["happy"]) for i in track] == pytest.approx(expected, abs=2e-6)


def test_plot_writes_a_timeline_per_video_and_a_summary(media, video, tmp_path, capsys):
    analyze([str(video), str(media / "photo-00000.jpg")], tmp_path / "r.csv", JOB, plot=tmp_path / "plots",
            progress=False)
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert len(pngs) == 1 and pngs[0].endswith("two-faces.mp4.png")
    assert cv2.imread(str(tmp_path / "plots" / pngs[0])) is not None
    summary = read_csv(tmp_path / "plots" / "summary.csv")
    assert [(r["track"], r["samples"], r["happy"]) for r in summary] == [("1", "20", "1.0"), ("2", "20", "1.0")]
    assert "happy" in capsys.readouterr().out


def test_two_worker_processes_give_the_same_rows(media, folder_rows, tmp_path):
    analyze([str(media)], tmp_path / "r.csv", JOB, workers=2, progress=False)
    assert_same_rows(read_csv(tmp_path / "r.csv"), folder_rows[0])


def test_the_ray_engine_gives_the_local_engines_rows(media, folder_rows, tmp_path):
    import ray
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        _, skipped, _ = analyze([str(media)], tmp_path / "r.csv", JOB, engine="ray", progress=False)
    finally:
        ray.shutdown()
    assert list(skipped) == list(folder_rows[1])
    assert_same_rows(read_csv(tmp_path / "r.csv"), folder_rows[0])


def assert_same_rows(rows, expected):
    """Equal rows, probabilities within 1e-5 (a batch of another size may round the last digit apart)."""
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected):
        assert {k: row[k] for k in REQUIRED if k not in LABELS} == {k: want[k] for k in REQUIRED if k not in LABELS}
        assert [float(row[k]) for k in LABELS] == pytest.approx([float(want[k]) for k in LABELS], abs=1e-5)


# ---- tracking and sampling, as plain functions ----

def test_a_face_gone_for_over_a_second_starts_a_new_track():
    box = (100, 100, 50, 50)
    assert assign_tracks([0.0, 0.2, 0.4, 1.6], [box] * 4) == [1, 1, 1, 2]


def test_two_faces_in_a_frame_never_share_a_track():
    a, b = (0, 0, 50, 50), (10, 0, 50, 50)
    assert assign_tracks([0.0, 0.0, 0.2, 0.2], [a, b, b, a]) == [1, 2, 2, 1]


def test_smoothing_stays_within_each_track():
    probs = np.eye(2)[[0, 1, 1, 0]]
    assert smooth_tracks(probs, [1, 2, 1, 2], 2).tolist() == [[1, 0], [0, 1], [0.5, 0.5], [0.5, 0.5]]


@pytest.mark.parametrize("native,fps,per_second", [(30, 5, 5), (25, 5, 5), (15, 5, 5), (24, 10, 10), (4, 5, 4)])
def test_sampling_takes_fps_frames_a_second(native, fps, per_second):
    assert sum(is_sampled(i, native, fps) for i in range(native * 3)) == per_second * 3


def test_parts_cover_the_video_and_the_last_is_open():
    assert parts(VideoInfo(30, 700, 640, 480), 10) == [(0, 300), (300, 600), (600, None)]
    assert parts(VideoInfo(30, 0, 640, 480), 10) == [(0, None)]


# ---- POST /predict/video ----

def test_a_clip_gives_each_face_a_timeline(client, video):
    response = client.post("/predict/video", data={"video": (io.BytesIO(video.read_bytes()), "clip.mp4")},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["video"] == {"width": 640, "height": 480, "fps": 15.0, "duration_s": 4.0, "sampled_fps": 5.0,
                             "frames_analysed": 20}
    tracks = [(t["track"], t["samples"], t["dominant_emotion"]) for t in body["tracks"]]
    assert tracks == [(1, 20, "happy"), (2, 20, "happy")]
    point = body["tracks"][0]["timeline"][1]
    assert (point["frame"], point["time_s"], list(point["emotions"])) == (3, 0.2, LABELS)
    assert body["model"]["name"] and body["time_ms"] > 0


def test_a_clip_is_decoded_from_memory(client, video, monkeypatch):
    opened = []
    real = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda source, *args: opened.append(type(source)) or real(source, *args))
    response = client.post("/predict/video", data=video.read_bytes(), content_type="video/mp4")
    assert response.status_code == 200 and opened == [io.BytesIO]


@pytest.mark.parametrize("setting,value,message", [
    ("MAX_VIDEO_SECONDS", 3, "the video is 4.0 s long; the limit is 3 s"),
    ("MAX_VIDEO_MB", 0.01, "the video is larger than the 0.01 MB limit"),
    ("MAX_PIXELS", 100_000, "the video's frames are 640x480 pixels; the limit is 100,000"),
])
def test_a_clip_over_a_limit_is_413(app, client, video, monkeypatch, setting, value, message):
    monkeypatch.setitem(app.config, setting, value)
    response = client.post("/predict/video", data=video.read_bytes(), content_type="video/mp4")
    assert response.status_code == 413
    assert response.json == {"error": {"code": "video_too_large", "message": message}}


@pytest.mark.parametrize("kwargs,status,code", [
    ({"data": b"\xff\xd8\xff\xe0", "content_type": "image/jpeg"}, 415, "unsupported_media_type"),
    ({"json": {"video": "x"}}, 415, "unsupported_media_type"),
    ({"data": {"video": (io.BytesIO(b"GIF89a"), "a.gif", "image/gif")}, "content_type": "multipart/form-data"},
     415, "unsupported_media_type"),
    ({"data": b"not a video at all" * 100, "content_type": "video/mp4"}, 400, "invalid_video"),
    ({"data": {"image": (io.BytesIO(b"x"), "a.mp4")}, "content_type": "multipart/form-data"}, 400, "missing_video"),
    ({}, 400, "missing_video"),
])
def test_a_bad_clip_gets_a_json_4xx(client, kwargs, status, code):
    response = client.post("/predict/video", **kwargs)
    assert response.status_code == status
    assert response.json["error"]["code"] == code


def test_a_truncated_mp4_is_400(client, video):
    # OpenCV's MP4 writer puts the index (moov atom) last: without it FFmpeg cannot read any frame.
    data = video.read_bytes()
    response = client.post("/predict/video", data=data[: len(data) // 2], content_type="video/mp4")
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_video"


def test_a_truncated_avi_gives_the_frames_it_has(client, tmp_path):
    data = write_video(tmp_path / "clip.avi", seconds=4, fps=15).read_bytes()
    response = client.post("/predict/video", data=data[: len(data) // 2], content_type="video/x-msvideo")
    assert response.status_code == 200
    assert response.json["video"]["frames_analysed"] == 10  # the first half of the 20 sampled frames


def test_the_app_needs_nothing_from_the_batch_requirements():
    # Heroku installs requirements.txt only: the video endpoint must not pull in the batch path's packages
    # (tqdm is left out: torch.hub imports it wherever it is installed).
    code = "import sys, app; print(sorted({'matplotlib', 'ray', 'pandas', 'pyarrow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_openapi_describes_predict_video(client):
    spec = client.get("/openapi.json").json["paths"]["/predict/video"]["post"]
    assert {"200", "400", "413", "415"} <= set(spec["responses"])


def test_tasks_group_runs_of_images_and_keep_each_video_part_alone():
    images = [Unit(f"{i}.jpg", f"/{i}.jpg") for i in range(IMAGES_PER_TASK + 3)]
    parts = [Unit("v.mp4", "/v.mp4", start, start + 300) for start in (0, 300)]
    work = list(tasks(images[:2] + parts[:1] + images[2:] + parts[1:] + images[:1]))
    assert [len(task) for task in work] == [2, 1, IMAGES_PER_TASK, 1, 1, 1]
    assert work[1] == [parts[0]] and work[4] == [parts[1]]
    assert [unit for task in work for unit in task] == images[:2] + parts[:1] + images[2:] + parts[1:] + images[:1]
