"""``python -m serve`` and the ``cyclegan-serve`` script: the torch-free serving CLI."""

from __future__ import annotations

from serve.cli import cli


def main() -> None:
    cli(prog_name="python -m serve" if __name__ == "__main__" else None)


if __name__ == "__main__":
    main()
