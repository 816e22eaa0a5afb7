"""CLI commands of the bridge (``rois``, ``labels``); filled in by the bridge work."""


def register(sub) -> None:
    pass
