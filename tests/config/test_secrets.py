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


def test_uri_passwords_are_masked_wherever_they_sit_in_a_notebooks_text() -> None:
    """An executed notebook: long base64 image lines around URIs with and without credentials."""
    import base64
    import json

    image = base64.b64encode(bytes(range(256)) * 400).decode()
    text = json.dumps({"outputs": [{"image/png": [image[i:i + 76] + "\n" for i in range(0, len(image), 76)]},
                                   {"text": "store postgresql+psycopg2://ann:pw-123@db.internal:5432/mlflow, "
                                            "server http://127.0.0.1:5000/#/runs, s3://bucket/key, MLFLOW://bob:s3cr%40t@h"}]})
    scrubbed = secrets.scrub_text(text, set())
    assert "pw-123" not in scrubbed and "s3cr%40t" not in scrubbed
    assert "postgresql+psycopg2://ann:****@db.internal:5432/mlflow" in scrubbed and "MLFLOW://bob:****@h" in scrubbed
    assert "http://127.0.0.1:5000/#/runs" in scrubbed and "s3://bucket/key" in scrubbed and image[:76] in scrubbed
    assert scrubbed == secrets.URI_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:****@", text)  # as the scheme-first search masks
