"""Names that become paths: a class name is one folder below members/, boosting/, an export's root and
a manifest key (``<class>/<member>``), so it must be one safe path segment (DESIGN principle 14).

raygan refuses a name that is not one, rather than encoding it: an encoded name would differ from the
name the user sees in reports, MLflow and exported folders. The rule is the same for every source of
class names (data.classes in the config, image-folder sub-folders, a parquet class_name column).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from raygan.config.fields import ConfigError

if TYPE_CHECKING:  # the schema imports the checks, which import this module
    from raygan.config.schema import Config

MAX_NAME_BYTES = 255  # the longest file name most filesystems allow


def segment_problem(name: str) -> str | None:
    """Why ``name`` is not one safe path segment, or None when it is."""
    if not name.strip():
        return "it is empty"
    if name in (".", ".."):
        return f"{name!r} names a folder itself"
    if "/" in name or "\\" in name:
        return "it holds a path separator (/ or \\)"
    if name.startswith("."):
        return "it starts with '.' (a hidden folder, skipped by image-folder readers)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it holds a control character"
    if name != name.strip():
        return "it starts or ends with a space"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes"
    return None


def check_class_names(names: Iterable[str], *, where: str, fix: str) -> None:
    """A one-line ConfigError for the first class name that is not one safe path segment; ``where``
    says where the names came from, ``fix`` what to change."""
    for name in names:
        problem = segment_problem(str(name))
        if problem is not None:
            raise ConfigError(f"class name {str(name)!r} ({where}) cannot name a folder of the run: "
                              f"{problem}; {fix}")


def check_config_names(cfg: Config) -> None:
    """data.classes' names, at load (so --dry-run refuses them too)."""
    if cfg.data.classes is not None:
        check_class_names(cfg.data.classes, where="a key of data.classes",
                          fix="rename it to a plain name such as tumour_a (letters, digits, - or _)")
