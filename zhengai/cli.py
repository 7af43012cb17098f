"""The `zhengai` command line."""
import sys


def main(argv: list[str] | None = None) -> int:
    print("zhengai: not wired yet", file=sys.stderr)
    return 2
