"""What the smoke tests' refusal checks share: the CLI called in this process, its --set arguments
and the files a run root holds."""
from pathlib import Path

from raygan.cli import main


def run_main(argv: list[str]) -> int:
    """raygan's exit code for ``argv``, whether main returns it or a job command raises SystemExit."""
    try:
        return main(argv)
    except SystemExit as done:
        return done.code


def sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))
