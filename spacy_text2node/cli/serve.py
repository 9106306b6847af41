"""`text2node serve MODEL`: the linking service with its review page (FastAPI on uvicorn)."""

import os
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from ._app import app, describe_error

FACTORY = "spacy_text2node.serve.app:create_app_from_env"


@app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve_cmd(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Pipeline: installed package, folder from nlp.to_disk, or a .cfg config."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes; each loads the pipeline once."),
    mentions: Optional[str] = typer.Option(
        None,
        "--mentions",
        help="Treat MODEL as a linker pipeline and put a mention finder in front: noun_chunks, ruler or ner.",
    ),
    negation: bool = typer.Option(
        False, "--negation", help="Add negspacy's negex (en_clinical terms): spans say whether they are negated."
    ),
    span_key: List[str] = typer.Option(
        ["ents"], "--span-key", help="Span source: 'ents' or a span group key (repeatable)."
    ),
    top_k: Optional[int] = typer.Option(
        None, "--top-k", help="Candidates kept per span (default: all the linker gives)."
    ),
    max_chars: int = typer.Option(
        100_000, "--max-chars", help="Longest text accepted (characters); longer ones get 413."
    ),
    max_batch: int = typer.Option(64, "--max-batch", help="Most texts in one request; more get 413."),
    max_body_bytes: int = typer.Option(
        10_000_000, "--max-body-bytes", help="Largest request body accepted; larger get 413."
    ),
    timeout: float = typer.Option(
        30.0, "--timeout", help="Seconds a request may take, waiting included, before it gets 503."
    ),
    log_level: str = typer.Option(
        "info", "--log-level", help="uvicorn's log level: critical, error, warning, info, debug."
    ),
) -> None:
    """Serve MODEL over HTTP: POST /link (one text or a batch; the records of `text2node link`),
    GET /concepts/{id}, /health, /info, the OpenAPI docs at /docs and a review page at /.
    The pipeline is loaded before the server starts (a mistake is one line), then once per worker.
    Extra `--section.key value` options override a .cfg MODEL (e.g. --paths.linker DIR)."""
    from spacy.cli._util import parse_config_overrides

    from ..bulk.clinical import MENTION_MODES
    from ._app import check_choice

    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        msg.fail(
            f"text2node serve needs the serve extra ({e.name} is missing): pip install 'spacy-text2node[serve]'.",
            exits=1,
        )
        return
    from ..serve.app import create_app
    from ..serve.service import LinkService
    from ..serve.settings import ENV_VAR, ServeSettings

    try:
        overrides = parse_config_overrides(ctx.args)
    except SystemExit:
        raise typer.Exit(2) from None
    if mentions is not None:
        check_choice(mentions, "--mentions", MENTION_MODES)
    check_choice(log_level, "--log-level", ("critical", "error", "warning", "info", "debug"))
    for flag, value in (("--workers", workers), ("--port", port)):
        if value < (0 if flag == "--port" else 1):
            msg.fail(f"{flag} must be at least {0 if flag == '--port' else 1}, not {value}.", exits=2)  # type: ignore[call-overload]
    settings = ServeSettings(
        model=model,
        mentions=mentions,
        negation=negation,
        span_keys=tuple(span_key),
        top_k=top_k,
        max_chars=max_chars,
        max_batch=max_batch,
        max_body_bytes=max_body_bytes,
        timeout=timeout,
        single_thread=workers > 1,
        overrides=overrides,
    )
    try:
        settings.check()
    except ValueError as e:
        msg.fail(str(e), exits=2)  # type: ignore[call-overload]
    if model.endswith(".cfg") or Path(model).exists():
        settings.model = str(Path(model).resolve())  # worker processes may start elsewhere
    try:
        service = LinkService.load(settings)
    except (ValueError, TypeError, OSError) as e:
        msg.fail(describe_error(e), exits=1)
        return
    msg.good(f"Loaded {model}: {', '.join(service.nlp.pipe_names)}")
    msg.info(f"Review page http://{host}:{port}/ · API docs http://{host}:{port}/docs · {workers} worker(s)")
    if workers == 1:
        uvicorn.run(create_app(service=service), host=host, port=port, log_level=log_level)
        return
    service.close()
    del service  # each worker loads its own copy
    os.environ[ENV_VAR] = settings.to_env()
    uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level)
