"""The app's own words for every HTTP error, where werkzeug's default would show."""

from __future__ import annotations

from werkzeug.exceptions import HTTPException

# Each status the app answers with a page (templates/error.html), said as this site would:
# what happened and what to do. A view's own abort message (a missing post, a form too large)
# is kept; these replace werkzeug's generic text only.
DESCRIPTIONS = {
    400: "The request could not be understood. Go back, reload the page and try again.",
    403: "Only a post's author can edit or delete it.",
    404: "There is no page at this address. Check it, or go back to the posts.",
    405: "This address does not take that kind of request. Use the site's own links and forms.",
    408: "The request took too long to arrive. Try again.",
    413: "What was sent is larger than this site accepts.",
    416: "The part of the file asked for (the Range header) is not in it.",
    429: "Too many requests. Wait a little and try again.",
    500: "Something went wrong on the server, and it was logged. Try again in a moment.",
    503: "The server is too busy to answer just now. Try again in a few seconds.",
}


def description_of(error: HTTPException) -> str:
    """Return the error's own message, or this site's words instead of werkzeug's default."""
    if error.description != type(error).description:
        return str(error.description)
    # Statuses no route answers today still get a sentence of the site's, never werkzeug's.
    default = f"This request could not be answered ({error.code} {error.name})."
    return DESCRIPTIONS.get(error.code or 500, default)
