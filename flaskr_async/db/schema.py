"""What both backends share about the schema: its tables, and how its scripts are split."""

from __future__ import annotations

# Children first; schema_version too, so that a reset database is stamped afresh.
TABLES = (
    "post_event",
    "login_attempt",
    "user_session",
    "post",
    "user",
    "schema_version",
)


def split_statements(script: str) -> list[str]:
    """Split a schema script into statements (it has no semicolons in literals or comments)."""
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in code.split(";") if statement.strip()]
