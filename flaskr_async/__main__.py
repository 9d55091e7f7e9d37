"""`python -m flaskr_async serve`: the serve command (flaskr_async/serving/command.py)."""

from flaskr_async.serving.command import main

raise SystemExit(main())
