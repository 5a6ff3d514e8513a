"""The web app's entry point; the code is in web/.

    gunicorn 'app:create_app()'       (see Procfile and gunicorn.conf.py)
    flask --app app run                for development
"""
from web import __version__, create_app

__all__ = ["create_app", "__version__"]
