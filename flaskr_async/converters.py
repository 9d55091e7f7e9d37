"""URL converters: a post id is spelled one way only, in ASCII digits."""

from __future__ import annotations

from werkzeug.routing import BaseConverter
from werkzeug.routing import ValidationError

MAX_ID = 2**63 - 1  # SQLite's INTEGER and PostgreSQL's bigint


class PostIdConverter(BaseConverter):
    """Match 1 to 2**63 - 1 in ASCII digits without leading zeros; anything else is a 404.

    werkzeug 3.1's int converter matches any Unicode digit (an Arabic-Indic one routes to
    post 1: pallets/werkzeug#3243), and ``+1`` or ``01`` are other names for the same page.
    """

    # Python's [0-9] is ASCII only, unlike \d.
    regex = "[1-9][0-9]{0,18}"

    def to_python(self, value: str) -> int:
        """Return the id, or refuse the route (a 404) when it is past the largest id."""
        number = int(value)
        if number > MAX_ID:
            raise ValidationError()
        return number

    def to_url(self, value: int) -> str:
        """Write an id in its one canonical spelling."""
        return str(int(value))
