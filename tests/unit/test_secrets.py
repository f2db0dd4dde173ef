"""Credentials in URIs are redacted by raygan.secrets, and everything that shows a config uses it."""
import logging

import pytest
import yaml

from raygan.config import load_config
from raygan.secrets import one_line, redact


@pytest.mark.parametrize("text, kept", [
    ("http://user:secret@127.0.0.1:5000/api", "http://user:***@127.0.0.1:5000/api"),
    ("s3://AKIDKEY:secret@bucket/prefix?region=eu", "s3://AKIDKEY:***@bucket/prefix?region=eu"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=secret&X-Amz-Signature=secret&x=1",
     "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&x=1"),
    ("s3://bucket/p?access_key=secret&secret_key=secret&endpoint_override=h:9000",
     "s3://bucket/p?access_key=***&secret_key=***&endpoint_override=h:9000"),
    ("error at 'http://u:secret@h:1' (refused)", "error at 'http://u:***@h:1' (refused)"),
    ("mirror/s3%3A%2F%2Fkey%3Asecret%40bucket%2Fp", "mirror/s3%3A%2F%2Fkey%3A***%40bucket%2Fp"),
    ("key id AKIAIOSFODNN7EXAMPLE leaked", "key id *** leaked"),
])
def test_redact_masks_the_secret_and_keeps_the_rest(text, kept):
    assert redact(text) == kept


@pytest.mark.parametrize("text", ["http://127.0.0.1:5000/x@y", "sqlite:///runs/mlflow.db",
                                  "runs/default/run", "user@example.org", "s3://bucket/a:b"])
def test_redact_leaves_uris_without_credentials_alone(text):
    assert redact(text) == text


def test_one_line_joins_a_multi_line_message():
    assert one_line(ValueError("first\n\n  http://u:secret@h\nlast")) == "first; http://u:***@h; last"


def test_printed_config_is_redacted_but_the_config_itself_keeps_the_uri():
    uri = "http://user:secret@mlflow.internal:5000"
    cfg = load_config(overrides=[f"tracking.tracking_uri={uri}"])
    assert cfg.tracking.tracking_uri == uri  # what the job uses
    text = cfg.to_yaml()  # what is printed and saved as config.yaml
    assert "secret" not in text
    assert yaml.safe_load(text)["tracking"]["tracking_uri"] == "http://user:***@mlflow.internal:5000"


def test_log_lines_are_redacted(capsys):
    from raygan import logs

    logs.configure("info")
    logging.getLogger("raygan.test").info("joining http://user:secret@h:1 now")
    out = capsys.readouterr().out
    assert "joining http://user:***@h:1 now" in out and "secret" not in out
