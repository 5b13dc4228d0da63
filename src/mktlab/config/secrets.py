"""Credentials in configs and text: finding them and masking them.

A config value under a key that names a credential (password, token, secret, api_key,
...) and the password inside a URI (`postgresql://user:pw@host`) are secrets. Nothing
mktlab logs, writes or prints holds one in clear: configs are masked with
`mask_secrets`, and free text (notebooks, messages, folders) is scrubbed of every secret
value with `scrub_text`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "****"
SECRET_KEY = re.compile(r"(password|passwd|secret|token|api[_-]?key|access[_-]?key|credential|private[_-]?key)", re.I)
URI_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<password>[^@/\s]+)@", re.I)
# The same credentials found from their `://` on: a search that starts with a fixed string skips ahead to each
# occurrence, where one that starts with the scheme's letters tries every position of a long text (a notebook's
# images in base64 are long runs of such letters): a quarter of a second per executed notebook.
URI_CREDENTIALS = re.compile(r"://(?P<user>[^:/@\s]+):(?P<password>[^@/\s]+)@")


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy of a config (dicts, lists, scalars) with credentials masked."""
    if isinstance(value, Mapping):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask_secrets(v, key) for v in value)
    if key and SECRET_KEY.search(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return mask_uri(value)
    return value


def mask_uri(text: str) -> str:
    """`scheme://user:pw@host` -> `scheme://user:****@host`, wherever it occurs in `text`."""
    return URI_CREDENTIALS.sub(lambda m: f"://{m['user']}:{MASK}@", text)


def secret_values(value: Any, key: str = "") -> set[str]:
    """Every string a config holds that `mask_secrets` would hide (to scrub them from text)."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for k, v in value.items():
            found |= secret_values(v, str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            found |= secret_values(v, key)
    elif key and SECRET_KEY.search(key) and value not in (None, ""):
        found.add(str(value))
    elif isinstance(value, str):
        found |= {m["password"] for m in URI_PASSWORD.finditer(value)}
    return found


def secrets_in_overrides(overrides: Iterable[str]) -> set[str]:
    """The secret values of command-line overrides (`+tags.api_token=...`, `tracking.uri=http://u:pw@h`)."""
    found: set[str] = set()
    for override in overrides:
        key, _, value = override.partition("=")
        found |= secret_values({key.lstrip("+~").rsplit(".", 1)[-1]: value})
        found |= secret_values(value)
    return found


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` replaced by the mask (longest first), and URI passwords masked."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return mask_uri(text)
