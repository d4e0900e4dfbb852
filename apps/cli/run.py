"""Top-level commands: generate, chat, serve."""

from __future__ import annotations

from typing import Annotated

import typer

from apps.cli.options import BaseOption


def generate(
    prompt: Annotated[str, typer.Argument(help="The user message to answer.")],
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 128,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 is greedy.")] = 0.0,
    stream: Annotated[bool, typer.Option("--stream", help="Print the answer as it is generated.")] = False,
    base: BaseOption = None,
) -> None:
    """Answer one prompt with the base model."""
    from core_model import load_base
    from core_model.errors import DSuiteError
    from core_model.generation import GenerationSettings
    from core_model.generation import stream as stream_reply

    if not prompt.strip():
        raise DSuiteError('generate needs a prompt: pass the message to answer (dsuite generate "Hello").')
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature)
    loaded = load_base(base)
    if stream:
        for piece in stream_reply(loaded, prompt, settings):
            typer.echo(piece, nl=False)
        typer.echo()
    else:
        typer.echo("".join(stream_reply(loaded, prompt, settings)).strip())


def chat(
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens per reply.")] = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 is greedy.")] = 0.0,
    base: BaseOption = None,
) -> None:
    """Chat with the base model in the terminal (empty line or Ctrl-D to quit)."""
    from core_model import load_base
    from core_model.generation import GenerationSettings
    from core_model.generation import stream as stream_reply

    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature)
    loaded = load_base(base)
    history: list[dict] = []
    typer.echo(f"Chatting with {loaded.name} ({loaded.fingerprint}). Empty line to quit.")
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        history.append({"role": "user", "content": text})
        typer.echo("bot> ", nl=False)
        reply = ""
        for piece in stream_reply(loaded, history, settings):
            reply += piece
            typer.echo(piece, nl=False)
        typer.echo()
        history.append({"role": "assistant", "content": reply.strip()})


def serve(
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    base: BaseOption = None,
    share: Annotated[bool, typer.Option("--share", help="Ask Gradio for a public share link.")] = False,
    auth: Annotated[
        str | None,
        typer.Option(help="Require a login: user:password (several: comma-separated). Default: $DSUITE_AUTH.",
                     show_default=False),
    ] = None,
) -> None:
    """Serve the Gradio hub (with the industry apps and the adapter admin) in the browser."""
    from apps.serve import launch

    launch(host=host, port=port, base=base, share=share, auth=auth)


def route(
    text: Annotated[str, typer.Argument(help="A request, as typed into the hub.")],
) -> None:
    """Which industry pipeline the hub's domain router sends TEXT to (JSON; "pipeline": null = none)."""
    import json

    from domains.routing import load_domain_router

    result = load_domain_router().route(text)
    typer.echo(json.dumps({
        "pipeline": result.pipeline,
        "confidence": round(result.confidence, 4),
        "best": result.best,
        "runners_up": [[name, round(float(score), 4)] for name, score in result.runners_up],
        "claimed": result.claimed,
    }))


def build_routes() -> None:
    """Rebuild the hub's domain router from its exemplars (data/hub/domain_router, about a minute)."""
    import json

    from domains.routing import ROUTER_DIR, build_domain_router

    meta = build_domain_router().meta
    figures = {label: round(scores["accuracy"], 4) for label, scores in meta["test"].items()}
    typer.echo(f"Wrote {ROUTER_DIR}: threshold {meta['threshold']}, test accuracy {json.dumps(figures)}")


def register(app: typer.Typer) -> None:
    """Attach the top-level commands to the main app."""
    app.command()(generate)
    app.command()(chat)
    app.command()(serve)
    app.command()(route)
    app.command(name="build-routes")(build_routes)
