"""Templates render on the loop, synchronously, without a thread hop per render."""

from __future__ import annotations

from inspect import iscoroutinefunction
from typing import Any

from quart import Quart
from quart import render_template_string

from flaskr_async import create_app


def test_templates_compile_for_sync_rendering(app_config: dict[str, Any]) -> None:
    app = create_app(app_config)
    assert app.jinja_env.is_async is False
    assert app.jinja_env.from_string("{{ 1 + 1 }}").render() == "2"


def test_no_context_processor_goes_to_a_thread(app_config: dict[str, Any]) -> None:
    processors = create_app(app_config).template_context_processors
    assert sum(len(functions) for functions in processors.values()) >= 2
    assert all(iscoroutinefunction(f) for functions in processors.values() for f in functions)


async def test_context_processors_still_provide_their_values(app: Quart) -> None:
    async with app.test_request_context("/"):
        page = await render_template_string(
            "{{ config.POSTS_PER_PAGE }} {{ crsf_token() | length }}"
        )
    assert page.split()[0] == "20"
    assert int(page.split()[1]) > 20
