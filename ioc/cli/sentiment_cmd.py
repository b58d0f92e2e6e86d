"""``ioc sentiment``: the Vietnamese sentiment lexicon of online mentions (docs/kpi.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Vietnamese sentiment of online mentions (docs/kpi.md, Online information).",
                  no_args_is_help=True)  # fmt: skip


@app.command("eval")
def evaluate_cmd(
    file: Annotated[Path | None, typer.Option(help="Labelled TSV (label, split, text); default: the shipped set.")] = (
        None
    ),
) -> None:
    """Print the lexicon's accuracy on a labelled set as one JSON line (tune and holdout splits, and a
    majority-class baseline side by side).

    Example: ioc sentiment eval
    """
    from ioc.sentiment.evaluate import evaluate, load_examples
    from ioc.settings import PROJECT_ROOT

    path = file or PROJECT_ROOT / "tests" / "data" / "sentiment_vi.tsv"
    if not path.is_file():
        typer.echo(f"cannot read {path}", err=True)
        raise typer.Exit(3)
    typer.echo(json.dumps(evaluate(load_examples(path))))


@app.command("score")
def score_cmd(text: Annotated[str, typer.Argument(help="Vietnamese text, with or without diacritics.")]) -> None:
    """Print the verdict on one text (label, score, the phrases that counted, topic tags) as JSON.

    Example: ioc sentiment score "Đường sạt lở, rất nguy hiểm"
    """
    from ioc.sentiment import analyse, tag

    verdict = analyse(text)
    hits = [{"phrase": h.phrase, "weight": h.weight} for h in verdict.hits]
    typer.echo(json.dumps({"label": verdict.label, "score": verdict.score, "phrases": hits, "tags": tag(text)},
                          ensure_ascii=False))  # fmt: skip
