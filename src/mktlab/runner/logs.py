"""Log lines with credentials masked (Hydra's launchers print every job's overrides)."""

from __future__ import annotations

import logging
import re
import sys

from mktlab.config.secrets import SECRET_KEY, mask_uri, scrub_text, secrets_in_overrides

# `key=value` where the key names a credential: `+tags.api_token=abc`, `password=abc`
SECRET_OVERRIDE = re.compile(rf"(?P<key>[\w.+~/-]*{SECRET_KEY.pattern}[\w.-]*)=(?P<value>[^\s,'\"\]]+)", re.I)


def mask_line(text: str, secrets: set[str] = frozenset()) -> str:
    """`text` with known secret values, URI passwords and credential-named `key=value` values masked."""
    text = scrub_text(text, secrets)
    return SECRET_OVERRIDE.sub(lambda m: f"{m['key']}=****", mask_uri(text))


class SecretFilter(logging.Filter):
    """A logging filter that masks credentials in each record (the command line's secrets and any look-alikes)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = secrets_in_overrides(sys.argv[1:])

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_line(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, ()
        return True
