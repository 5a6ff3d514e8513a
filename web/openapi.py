"""The OpenAPI 3.1 description served at /openapi.json."""
from recognition.images import MAX_JPEG_SCANS
from recognition.pipeline import MODES


def openapi_spec(version, labels, config):
    """The API description, with the live limits and label order filled in."""
    error = {"$ref": "#/components/schemas/Error"}
    errors = {
        "400": ("missing, undecodable or invalid image, bad base64 or JSON, bad mode, too many images", error),
        "401": ("API token required and not given (only when the server sets FER_API_TOKEN)", error),
        "413": (f"body over {config['MAX_UPLOAD_MB']:g} MB, image over {config['MAX_PIXELS'] / 1e6:g} megapixels, "
                f"or JPEG with more than {MAX_JPEG_SCANS} scans", error),
        "415": ("unsupported Content-Type or image format", error),
    }
    face = {
        "type": "object",
        "required": ["box", "roll", "emotions", "dominant_emotion", "confidence"],
        "properties": {
            "box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                    "description": "[x, y, width, height] in pixels of the upright (EXIF-rotated) image"},
            "roll": {"type": "number", "description": "degrees the face's eye line turns clockwise from level; "
                                                      "the face is turned level before it is classified (0 when unknown)"},
            "emotions": {"type": "object", "required": labels,
                         "properties": {k: {"type": "number", "minimum": 0, "maximum": 1} for k in labels},
                         "description": "probabilities summing to 1"},
            "dominant_emotion": {"type": "string", "enum": labels},
            "confidence": {"type": "number", "description": "probability of the dominant emotion"},
        },
    }
    result = {
        "type": "object",
        "required": ["faces", "image"],
        "properties": {
            "faces": {"type": "array", "items": face, "description": "largest face first"},
            "image": {"type": "object", "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}}},
            "mode": {"type": "string", "enum": list(MODES)},
            "message": {"type": "string", "description": "present when no face was found"},
            "timing_ms": {"type": "object", "additionalProperties": {"type": "number"}},
            "model": {"type": "object"},
            "time_ms": {"type": "number"},
        },
    }
    image_part = {"type": "string", "contentMediaType": "image/*"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Facial emotion recognition", "version": version,
                 "description": "Find every face in a photo and the probability of each of seven emotions."},
        "paths": {
            "/predict": {"post": {
                "summary": "Classify the emotions of every face in one or more images",
                "parameters": [{"name": "mode", "in": "query", "required": False,
                                "schema": {"type": "string", "enum": list(MODES), "default": MODES[0]},
                                "description": "whole: classify the whole image as one face"}],
                "security": [{}, {"bearer": []}],
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
                        "image": {"oneOf": [image_part, {"type": "array", "items": image_part}],
                                  "description": "one or more images (field 'file' also accepted); several give {results: [...]}"},
                        "mode": {"type": "string", "enum": list(MODES)}}}},
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": {"type": "object", "required": ["image"], "properties": {
                        "image": {"type": "string", "description": "base64 or a data: URL"},
                        "mode": {"type": "string", "enum": list(MODES)}}}},
                }},
                "responses": {
                    "200": {"description": "faces found (possibly none)", "content": {"application/json": {"schema": {
                        "oneOf": [result, {"type": "object", "required": ["results"], "not": {"required": ["faces"]},
                                           "properties": {"results": {"type": "array", "items": result}}}]}}}},
                    **{code: {"description": text, "content": {"application/json": {"schema": schema}}}
                       for code, (text, schema) in errors.items()},
                },
            }},
            "/predict/video": video_path(labels, config),
            "/healthz": {"get": {"summary": "Model loaded, labels, face detector and version",
                                 "responses": {"200": {"description": "the service is up"}}}},
        },
        "components": {
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}}}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def video_path(labels, config):
    """POST /predict/video: a short clip in, each face's track with its timeline and share of time per emotion out."""
    error = {"$ref": "#/components/schemas/Error"}
    errors = {
        "400": "no video, or one that FFmpeg cannot decode",
        "401": "API token required and not given (only when the server sets FER_API_TOKEN)",
        "413": (f"video over {config['MAX_VIDEO_MB']:g} MB, longer than {config['MAX_VIDEO_SECONDS']:g} s, "
                f"or with frames over {config['MAX_PIXELS'] / 1e6:g} megapixels"),
        "415": "not a video: the Content-Type of the body or form part is not video/* or application/octet-stream",
    }
    emotions = {"type": "object", "required": labels,
                "properties": {k: {"type": "number", "minimum": 0, "maximum": 1} for k in labels}}
    point = {"type": "object", "properties": {
        "frame": {"type": "integer", "description": "index of the frame in the video"},
        "time_s": {"type": "number"},
        "box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                "description": "[x, y, width, height] in pixels of the frame"},
        "emotions": emotions, "dominant_emotion": {"type": "string", "enum": labels}}}
    track = {"type": "object", "properties": {
        "track": {"type": "integer", "description": "the same person across frames, numbered from 1"},
        "samples": {"type": "integer", "description": "sampled frames in which the track's face was found"},
        "dominant_emotion": {"type": "string", "enum": labels, "description": "the emotion with the largest share"},
        "summary": {"type": "object", "properties": {k: {"type": "number"} for k in labels},
                    "description": "share of the track's samples in which each emotion was the dominant one"},
        "timeline": {"type": "array", "items": point}}}
    video = {"type": "string", "contentMediaType": "video/*"}
    return {"post": {
        "summary": f"Follow the faces of a short video (at most {config['MAX_VIDEO_SECONDS']:g} s) and classify "
                   f"their emotions {config['VIDEO_FPS']:g} times a second",
        "security": [{}, {"bearer": []}],
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["video"], "properties": {
                "video": {**video, "description": "MP4, MOV, AVI, WebM or MKV (field 'file' also accepted)"}}}},
            "video/*": {"schema": {"type": "string", "format": "binary"}},
        }},
        "responses": {
            "200": {"description": "the faces' tracks (possibly none)", "content": {"application/json": {"schema": {
                "type": "object", "required": ["video", "tracks"], "properties": {
                    "video": {"type": "object",
                              "description": "width, height, fps, duration_s, sampled_fps, frames_analysed"},
                    "tracks": {"type": "array", "items": track},
                    "message": {"type": "string", "description": "present when no face was found"},
                    "model": {"type": "object"}, "time_ms": {"type": "number"}}}}}},
            **{code: {"description": text, "content": {"application/json": {"schema": error}}}
               for code, text in errors.items()},
        },
    }}
