"""Render templates without thread hops, and synchronously: no template awaits anything."""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

from jinja2 import Template
from quart import Quart
from quart.templating import Environment

from flaskr_async.quoting import quoted
from flaskr_async.quoting import shortened


class SyncTemplate(Template):
    """A template compiled for sync rendering that Quart's render_template can still await."""

    async def render_async(self, *args: Any, **kwargs: Any) -> str:
        """Render in one go: every value the templates read is already there."""
        return self.render(*args, **kwargs)


class SyncEnvironment(Environment):
    """Quart's Jinja environment, compiling templates as plain (not async) generators."""

    template_class = SyncTemplate

    def __init__(self, app: Quart, **options: Any) -> None:
        super().__init__(app, **options)
        # Quart forces enable_async (async rendering measured ~2x the sync cost); templates
        # compile from is_async, so resetting it compiles them as plain generators.
        self.is_async = False


def inline(processor: Callable[[], Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    """Wrap a trivial sync context processor so Quart calls it inline, not in a thread."""

    async def inline_processor() -> dict[str, Any]:
        result: dict[str, Any] = processor()
        return result

    return inline_processor


def inline_context_processors(app: Quart) -> None:
    """Run sync context processors on the loop: Quart sends each to a thread on every render.

    quart-wtf registers one (a misspelt ``crsf_token``) and every blueprint inherits Flask's
    default one; two thread hops measured more than the whole template's rendering.
    """
    for processors in app.template_context_processors.values():
        processors[:] = [
            processor if iscoroutinefunction(processor) else inline(processor)
            for processor in processors
        ]


def init_app(app: Quart) -> None:
    """Make the app render its templates synchronously; add the filters for user text."""
    app.jinja_environment = SyncEnvironment
    # User text in a heading or a sentence: shortened (inside <bdi> in the page's markup), or
    # quoted (shortened and isolated as plain text) where no markup can go, as in <title>.
    app.add_template_filter(shortened)
    app.add_template_filter(quoted)
