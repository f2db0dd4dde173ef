"""`python -m raygan <command>`: the `raygan` command, and what `ray job submit` runs
(`ray job submit --working-dir . -- python -m raygan pipeline --config configs/digits.yaml`)."""
from raygan.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
