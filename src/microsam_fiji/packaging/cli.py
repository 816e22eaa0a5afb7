"""CLI commands for Model Zoo packages (``export``, ``validate``); filled in by the packaging work."""


def register(sub) -> None:
    pass
