"""The `text2node` command-line app; each cli module adds its commands to it."""
import typer

app = typer.Typer(
    name="text2node",
    help="spacy-text2node: taxonomies, node and word vectors, linking and bulk processing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
