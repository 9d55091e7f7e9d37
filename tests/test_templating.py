"""Templates render on the loop, synchronously, without a thread hop per render; the flashes."""

from __future__ import annotations

import re
from inspect import iscoroutinefunction
from typing import Any

import pytest
from markupsafe import escape
from quart import Quart
from quart import render_template_string
from quart.testing import QuartClient

from flaskr_async import create_app
from tests.helpers import STATE_CHANGING_FORMS
from tests.helpers import AuthActions
from tests.helpers import page_text


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


# Every state-changing form, and what the page it leads to says (None: nothing).
ACTIONS = {
    **STATE_CHANGING_FORMS,
    "password": (
        "/auth/password",
        {"current_password": "test", "new_password": "a-new-long-password"},
        True,
    ),
    "end other sessions": ("/auth/sessions/end-others", {}, True),
}
DONE_MESSAGES = {
    "register": "Registered as new. Please log in.",
    "login": None,  # the page it leads to names the user in its navigation
    "logout": "You are logged out.",
    "create": 'Post "created" was published.',
    "update": 'Post "updated" was saved.',
    "delete": 'Post "test title" was deleted.',
    "password": "Your password was changed.",
    "end other sessions": "Your other sessions were ended.",
}
FLASH = re.compile(r'<div class="flash (\w+)" role="(\w+)">([^<]*)</div>')


def test_every_action_is_listed() -> None:
    assert DONE_MESSAGES.keys() == ACTIONS.keys()


@pytest.mark.parametrize("action", ACTIONS)
async def test_each_completed_action_says_what_it_did(
    client: QuartClient, auth: AuthActions, action: str
) -> None:
    path, fields, needs_login = ACTIONS[action]
    if needs_login:
        await auth.login()
    response = await client.post(path, form=fields)
    assert response.status_code == 302
    page = await page_text(await client.get(response.headers["Location"]))
    message = DONE_MESSAGES[action]
    # A status: announced politely, after what the reader is hearing; an error is an alert.
    assert FLASH.findall(page) == ([] if message is None else [("info", "status", escape(message))])
    # Shown once.
    assert FLASH.findall(await page_text(await client.get(response.headers["Location"]))) == []


async def test_a_form_error_is_an_alert(client: QuartClient) -> None:
    response = await client.post("/auth/login", form={"username": "test", "password": "wrong"})
    page = await page_text(response)
    assert FLASH.findall(page) == [("message", "alert", "Incorrect username or password.")]
