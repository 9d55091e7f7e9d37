"""Templates compiled once per test process, not once per test app: Jinja's bytecode cache.

Each test makes an app of its own, and each app's Jinja environment compiled every template it
rendered afresh (about 10 ms a template, 8 ms of a typical page test's CPU). Jinja's bytecode
cache reuses the code compiled from the same source; kept in memory here, keyed also by the
options the compiled code depends on, so apps that compile differently never share it.
"""

from __future__ import annotations

from types import CodeType

from jinja2 import Environment
from jinja2.bccache import Bucket
from jinja2.bccache import BytecodeCache


def compile_options(environment: Environment) -> tuple[object, ...]:
    """Return what Jinja's compiled code depends on besides the source: syntax, mode, escaping."""
    escaping = environment.autoescape
    return (
        type(environment).__qualname__,
        environment.is_async,
        environment.optimized,
        environment.finalize is not None,
        getattr(escaping, "__qualname__", escaping),
        tuple(sorted(environment.extensions)),
        # The lexer's own cache key (jinja2.lexer.get_lexer).
        environment.block_start_string,
        environment.block_end_string,
        environment.variable_start_string,
        environment.variable_end_string,
        environment.comment_start_string,
        environment.comment_end_string,
        environment.line_statement_prefix,
        environment.line_comment_prefix,
        environment.trim_blocks,
        environment.lstrip_blocks,
        environment.newline_sequence,
        environment.keep_trailing_newline,
    )


class SharedTemplateCode(BytecodeCache):
    """Compiled templates by name, compile options and source checksum, for every app here."""

    def __init__(self) -> None:
        self.code: dict[str, tuple[str, CodeType]] = {}

    def get_bucket(
        self, environment: Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        """Return the template's bucket, keyed by its compile options as well as its name."""
        keyed = f"{name}\0{compile_options(environment)!r}"
        return super().get_bucket(environment, keyed, filename, source)

    def load_bytecode(self, bucket: Bucket) -> None:
        """Give the bucket the code compiled from the same source, if any."""
        stored = self.code.get(bucket.key)
        if stored is not None and stored[0] == bucket.checksum:
            bucket.code = stored[1]

    def dump_bytecode(self, bucket: Bucket) -> None:
        """Keep the code just compiled for the next app."""
        assert bucket.code is not None
        self.code[bucket.key] = (bucket.checksum, bucket.code)
