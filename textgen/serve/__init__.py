"""`textgen serve`: the HTTP app (`app`), its request schemas (`schema`), the micro-batcher that lets
concurrent requests share one decode (`microbatch`) and the page served at / (`page`)."""

from __future__ import annotations

from pathlib import Path

from textgen.errors import UserError


def start(ckpt: list[Path], host: str, port: int, device: str = "auto", allow_hosts: list[str] = (), **limits) -> None:
    """Serve `ckpt` (several: their ensemble) until Ctrl-C; `limits` are `microbatch.Limits` fields (the rest
    keep their defaults). The `serve` extra's packages are checked first, so that a plain install gets one line
    saying what to install."""
    try:
        import pydantic  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UserError("textgen serve needs starlette, uvicorn and pydantic: pip install 'textgen[serve]'") from None
    from textgen.serve.app import Limits, serve

    serve(ckpt, host, port, device, Limits(**limits), list(allow_hosts))
