"""The OpenAPI 3.1 description served at /openapi.json."""


def openapi_spec(version, labels, config):
    """The API description, with the live limits and label order filled in."""
    error = {"$ref": "#/components/schemas/Error"}
    errors = {
        "400": ("missing, undecodable or invalid image, bad base64 or JSON, bad mode, too many images", error),
        "401": ("API token required and not given (only when the server sets FER_API_TOKEN)", error),
        "413": (f"body over {config['MAX_UPLOAD_MB']:g} MB, or image over {config['MAX_PIXELS'] / 1e6:g} megapixels", error),
        "415": ("unsupported Content-Type or image format", error),
    }
    face = {
        "type": "object",
        "required": ["box", "emotions", "dominant_emotion", "confidence"],
        "properties": {
            "box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                    "description": "[x, y, width, height] in pixels of the upright (EXIF-rotated) image"},
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
            "mode": {"type": "string", "enum": ["faces", "whole"]},
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
                                "schema": {"type": "string", "enum": ["faces", "whole"], "default": "faces"},
                                "description": "whole: classify the whole image as one face"}],
                "security": [{}, {"bearer": []}],
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "properties": {
                        "image": {"oneOf": [image_part, {"type": "array", "items": image_part}],
                                  "description": "one or more images (field 'file' also accepted); several give {results: [...]}"},
                        "mode": {"type": "string", "enum": ["faces", "whole"]}}}},
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": {"type": "object", "required": ["image"], "properties": {
                        "image": {"type": "string", "description": "base64 or a data: URL"},
                        "mode": {"type": "string", "enum": ["faces", "whole"]}}}},
                }},
                "responses": {
                    "200": {"description": "faces found (possibly none)", "content": {"application/json": {"schema": {
                        "oneOf": [result, {"type": "object", "properties": {"results": {"type": "array", "items": result}}}]}}}},
                    **{code: {"description": text, "content": {"application/json": {"schema": schema}}}
                       for code, (text, schema) in errors.items()},
                },
            }},
            "/healthz": {"get": {"summary": "Model loaded, labels, face detector and version",
                                 "responses": {"200": {"description": "the service is up"}}}},
        },
        "components": {
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}}}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
