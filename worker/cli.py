"""Placeholder until the worker runtime lands."""


def main() -> None:
    raise SystemExit("taskstore-worker: not implemented yet")
