"""Credentials in URIs: the one redaction that every printed, saved, logged or raised text goes through.

A tracking or storage URI may carry a password (``http://user:password@host``, pyarrow's
``s3://access_key:secret_key@bucket``), a signed query (``?X-Amz-Signature=...``) or keys given as
query parameters (``?access_key=...&secret_key=...``). :func:`redact` replaces the secret part with
``***`` and keeps the rest, so a message still says which server or bucket it is about. It is applied
to the resolved config (printed and saved as config.yaml), MLflow params and tags, raygan's log lines
and every error message the command prints, MLflow's and pyarrow's exception text included.
"""
from __future__ import annotations

import re
from typing import Any

MASK = "***"

# user:password@ after a scheme; the password ends at the last @ before the host (a password may hold
# @ only percent-encoded, so the first @ after the colon ends it).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:'\"]*:)[^/?#@\s'\"]+(?=@)")
# The same inside a percent-encoded URI (a mirror folder named after quote(uri), MLflow's messages).
_QUOTED_USERINFO = re.compile(r"(?P<head>%3A%2F%2F[^/%@\s'\"]*%3A)[^/@\s'\"]+?(?=%40)", re.IGNORECASE)
# Query parameters that carry credentials: AWS/GCS signed URLs, Azure SAS tokens, pyarrow's S3 keys.
_SECRET_PARAMS = (r"x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|"
                  r"x-goog-credential|awsaccesskeyid|signature|sig|access_key|secret_key|"
                  r"secret_access_key|session_token|security_token|token|access_token|api_key|apikey|"
                  r"password|passwd|pwd|secret|client_secret|sas|key")
_QUERY = re.compile(rf"(?P<head>[?&;](?:{_SECRET_PARAMS})=)[^&#\s'\"]+", re.IGNORECASE)
_QUOTED_QUERY = re.compile(rf"(?P<head>(?:%3F|%26)(?:{_SECRET_PARAMS})(?:%3D|=))[^%&\s'\"]+",
                           re.IGNORECASE)
# An AWS access key id on its own (in an error message that quotes a credential file or header).
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def redact(text: Any) -> str:
    """``text`` (or str(text)) with the credentials of every URI in it replaced by ``***``."""
    text = str(text)
    if not text:
        return text
    for pattern in (_USERINFO, _QUOTED_USERINFO, _QUERY, _QUOTED_QUERY):
        text = pattern.sub(lambda m: m.group("head") + MASK, text)
    return _AWS_KEY_ID.sub(MASK, text)


def redact_tree(value: Any) -> Any:
    """A copy of a nested dict / list structure with every string redacted (a config's to_dict())."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_tree(v) for v in value)
    return value


def one_line(err: BaseException | str) -> str:
    """An error's text as one redacted line (a multi-line message joined with '; ')."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return redact("; ".join(lines))
