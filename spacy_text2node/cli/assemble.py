"""`text2node assemble CONFIG OUTPUT`: build a pipeline from a config that sources trained
components (a mention finder, a linker) and save it, ready for `spacy.load` and `spacy package`.

`spacy assemble` does the same for plain configs; this command also applies what a config
gives beside a sourced `text2node_linker` (`spans`, `composite`, ...), as `text2node link` does.
"""

from pathlib import Path
from typing import Any, Dict

import typer
from wasabi import msg

from ._app import app, user_errors


@app.command("assemble", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def assemble_cmd(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="A .cfg config, e.g. configs/documents.cfg."),
    output: Path = typer.Argument(..., help="Folder to write the pipeline to (nlp.to_disk)."),
) -> None:
    """Build the pipeline of CONFIG (overrides such as --paths.linker DIR after it) and save it to OUTPUT."""
    from spacy.cli._util import parse_config_overrides

    from ..bulk.pipeline_loading import load_pipeline

    if config.suffix != ".cfg" or not config.exists():
        msg.fail(f"{config}: not an existing .cfg config file.")
        raise SystemExit(2)
    overrides: Dict[str, Any] = parse_config_overrides(ctx.args)
    with user_errors(f"Cannot assemble {config}"):
        nlp = load_pipeline(str(config), overrides=overrides)
        output.mkdir(parents=True, exist_ok=True)
        nlp.to_disk(output)
    msg.good(f"Saved {nlp.pipe_names} to {output}")
