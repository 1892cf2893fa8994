"""Output streams of the command line: messages go to stderr, data to stdout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from niemphong.clients.i18n import Lang, translate
from niemphong.clients.render import dump_json


@dataclass
class Console:
    """The user's language and the two output streams of one command."""

    lang: Lang
    stdout: TextIO
    stderr: TextIO

    def say(self, message_id: str, **params: object) -> None:
        """Write a catalog message to stderr."""
        print(translate(self.lang, message_id, **params), file=self.stderr)

    def warn(self, message_id: str, **params: object) -> None:
        """Write a catalog message to stderr as a warning."""
        message = translate(self.lang, message_id, **params)
        print(translate(self.lang, "cli.warning", message=message), file=self.stderr)

    def fail(self, message: str) -> None:
        """Write an already localized error message to stderr."""
        print(translate(self.lang, "cli.error", message=message), file=self.stderr)

    def data(self, text: str) -> None:
        """Write command output to stdout."""
        print(text, file=self.stdout)

    def json(self, value: object) -> None:
        """Write a JSON document to stdout."""
        print(dump_json(value), file=self.stdout)

    def text(self, message_id: str, **params: object) -> str:
        """Return a catalog message in the user's language."""
        return translate(self.lang, message_id, **params)
