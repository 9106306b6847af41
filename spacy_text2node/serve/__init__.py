"""`text2node serve`: a linking service with a review page (needs the `serve` extra: fastapi, uvicorn)."""

from .settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str):
    if name == "create_app":  # imported on use, so the package imports without fastapi
        from .app import create_app

        return create_app
    raise AttributeError(name)
