"""Code blocks of the docs that tests run: a fenced block opened with ```` ```python extending:NAME ````."""

from __future__ import annotations

import functools
import re
from typing import Any

from tests.helpers.paths import ROOT

_BLOCK = re.compile(r"^```python extending:(?P<name>[\w-]+)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


def snippets(doc: str = "docs/extending.md") -> dict[str, str]:
    """``{name: code}``; blocks of one name are joined in order."""
    found: dict[str, str] = {}
    for m in _BLOCK.finditer((ROOT / doc).read_text()):
        found[m["name"]] = found.get(m["name"], "") + m["code"]
    return found


@functools.cache  # a snippet registers names: run it once per session, as an import would
def run_snippet(name: str, doc: str = "docs/extending.md") -> dict[str, Any]:
    code = snippets(doc).get(name)
    if code is None:
        raise KeyError(f"{doc} has no ```python extending:{name} block")
    namespace: dict[str, Any] = {"__name__": f"docs_extending_{name}"}
    exec(compile(code, f"{doc}:{name}", "exec"), namespace)
    return namespace
