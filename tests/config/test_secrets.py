"""Credentials in configs: masked, found for scrubbing, and the same helpers `provenance` records with."""

from __future__ import annotations

from mktlab.config import secrets
from mktlab.tracking import provenance


def test_mask_secrets_keeps_everything_else() -> None:
    config = {"a": {"token": "x", "tokens_per_batch": 5, "url": "http://u:p@h/x", "plain": "http://h/x"}, "n": [1, 2]}
    masked = secrets.mask_secrets(config)
    assert masked == {"a": {"token": "****", "tokens_per_batch": "****", "url": "http://u:****@h/x", "plain": "http://h/x"}, "n": [1, 2]}
    assert secrets.secret_values(config) >= {"x", "p"}


def test_provenance_records_with_the_same_helpers() -> None:
    assert provenance.mask_secrets is secrets.mask_secrets and provenance.secret_values is secrets.secret_values
    assert provenance.scrub_text is secrets.scrub_text and provenance.MASK == secrets.MASK == "****"
