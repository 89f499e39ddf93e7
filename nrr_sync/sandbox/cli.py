"""``nrr-sync sandbox ...`` commands."""

import typer

app = typer.Typer(no_args_is_help=True)


@app.command()
def serve() -> None:
    """Run the Stripe sandbox server in the foreground."""
    typer.echo("nrr-sync sandbox serve: not implemented yet", err=True)
    raise typer.Exit(1)
