"""The ASGI entry point: ``hypercorn asgi:app``."""

from flaskr_async import create_app

app = create_app()
