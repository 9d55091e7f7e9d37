"""The ASGI entry point: ``hypercorn asgi:app``."""

from flaskr_async import check_serving
from flaskr_async import create_app
from flaskr_async.settings import InvalidSetting

try:
    app = create_app()
    # Importing this module means serving: a weak key is refused here in one line, as a bad
    # setting is; the app's start-up refuses it too, but hypercorn adds its traceback there.
    check_serving(app)
except InvalidSetting as error:
    # One line, not a traceback, from the server's worker process; hypercorn 0.18 still exits 0.
    raise SystemExit(f"Start-up failed: {error}") from None
