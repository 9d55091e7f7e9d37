"""Templates compiled once per test process, not once per test app: Jinja's bytecode cache.

Each test makes an app of its own, and each app's Jinja environment compiled every template it
rendered afresh (about 10 ms a template, 8 ms of a typical page test's CPU). Jinja's bytecode
cache reuses the code compiled from the same source; kept in memory here, keyed also by what
the compiled code depends on (compile_options), so apps that compile differently never share it.
"""

from __future__ import annotations

from types import CodeType

from jinja2 import Environment
from jinja2.bccache import Bucket
from jinja2.bccache import BytecodeCache


def passes(function: object) -> object:
    """Return what Jinja passes a filter, test or finalize function first (its context, ...)."""
    return getattr(function, "jinja_pass_arg", None)


def compile_options(environment: Environment, name: str) -> tuple[object, ...]:
    """Return what a template's compiled code depends on besides its source.

    Jinja compiles calls to the filters and tests it knows (and what each is passed), the
    finalize function's, and autoescaping as the environment answers it for this template.
    """
    escaping = environment.autoescape
    kind = type(environment)
    return (
        f"{kind.__module__}.{kind.__qualname__}",
        environment.is_async,
        environment.optimized,
        escaping(name) if callable(escaping) else escaping,
        environment.finalize is not None and passes(environment.finalize),
        tuple(sorted((key, repr(passes(value))) for key, value in environment.filters.items())),
        tuple(sorted((key, repr(passes(value))) for key, value in environment.tests.items())),
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
        keyed = f"{name}\0{compile_options(environment, name)!r}"
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
