"""``cyclegan push``: upload models, a generated model card and sample grids to a Hugging Face Hub repository.

Everything goes up in one commit (``HfApi.create_commit`` with ``CommitOperationAdd``), so the repository
shows all of it or none of it. Authentication, endpoint and offline mode are the library's (``HF_TOKEN`` or
``hf auth login``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from cyclegan.contract.errors import EXIT_FAILED, ToolkitError, reports_errors
from cyclegan.contract.images import list_images
from cyclegan.hub.card import EXAMPLES_FILE, SAMPLES_FILE, examples_grid, model_card
from cyclegan.hub.release import Release, ReleaseError, collect
from serve.hub import HubUnreachableError


class UploadRefusedError(ToolkitError):
    """The Hub answered but refused the upload (no or a read-only token, another user's repository, ...)."""

    exit_code = EXIT_FAILED


def example_photos(paths: Sequence[Path]) -> list[Path]:
    """Image files named directly or found (top level) in folders, in order."""
    photos: list[Path] = []
    for path in paths:
        if path.is_dir():
            photos += list_images(path, recursive=False)
        elif path.is_file():
            photos.append(path)
        else:
            raise ReleaseError(f"--examples {path}: no such file or folder")
    if paths and not photos:
        raise ReleaseError(f"--examples {', '.join(map(str, paths))}: no images there")
    return photos


def operations(release: Release, readme: str, examples_png: bytes | None) -> list:
    """The commit: every model file, README.md, the last training samples and the example grid."""
    from huggingface_hub import CommitOperationAdd

    ops = [CommitOperationAdd(m.repo_path, str(m.path)) for m in release.models]
    ops += [CommitOperationAdd(path.name, str(path)) for path in release.companions]
    ops.append(CommitOperationAdd("README.md", readme.encode("utf-8")))
    sampled = [run for run in release.runs if run.sample is not None]
    if sampled:
        ops.append(CommitOperationAdd(SAMPLES_FILE, str(sampled[0].sample)))
    if examples_png is not None:
        ops.append(CommitOperationAdd(EXAMPLES_FILE, examples_png))
    return ops


@contextlib.contextmanager
def hub_errors(repo: str) -> Iterator[None]:
    """The library's exceptions as one line: offline or unreachable -> exit 2 (nothing done), refused -> exit 1."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled:
        raise HubUnreachableError(
            "HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it and push again"
        ) from None
    except (httpx2.TransportError, ConnectionError) as exc:
        raise HubUnreachableError(
            f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({exc}): check the network (and HF_ENDPOINT); "
            "nothing was uploaded"
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            why = "the Hub needs a token with write access: run `hf auth login` or set HF_TOKEN"
        elif status == 403:
            why = f"this token may not write to {repo} (a repository of another user, or a read-only token)"
        else:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UploadRefusedError(f"the Hub refused the upload to {repo}: {why}; nothing was uploaded") from None


def _repo_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError as exc:
        raise click.BadParameter(str(exc).splitlines()[0]) from None
    if value.count("/") != 1:
        raise click.BadParameter(f"{value!r}: give the full repository id, user/name (or org/name)")
    return value


@click.command("push", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--repo", required=True, callback=_repo_id, help="Hub model repository, user/name (created if needed).")
@click.option("--private", is_flag=True, help="Create the repository private (an existing one keeps its setting).")
@click.option("--license", "license_", default=None, help="License identifier for the card, e.g. mit or cc-by-4.0.")
@click.option(
    "--examples",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Photos (or a folder of them) to show through every ONNX model in the card's example grid.",
)
@click.option("--message", default=None, help="Commit message (default: what is uploaded).")
@click.option("--dry-run", is_flag=True, help="Print the files and the model card; upload nothing.")
@reports_errors
def push(
    sources: tuple[Path, ...],
    repo: str,
    private: bool,
    license_: str | None,
    examples: tuple[Path, ...],
    message: str | None,
    dry_run: bool,
) -> None:
    """Upload SOURCES to the Hub: training runs (their safetensors generators), folders of exported ONNX
    models and single model files, with a model card (README.md) written from what they hold.

    Example: cyclegan push runs/monet models/ --repo me/monet-cyclegan --examples photos/
    """
    release = collect(sources)
    photos = example_photos(examples)
    if photos and not release.onnx:
        raise ReleaseError("--examples needs exported .onnx models among the sources (the grid runs them)")
    grid = None
    if photos:
        buffer = io.BytesIO()
        examples_grid(release.onnx, photos).save(buffer, "PNG")
        grid = buffer.getvalue()
    card = model_card(release, repo, license=license_, examples=[m.repo_path for m in release.onnx] if grid else ())
    ops = operations(release, str(card), grid)
    summary = f"{len(release.models)} model(s), README.md" + ("" if len(ops) == len(release.models) + 1 else ", grids")
    if dry_run:
        for op in ops:
            source = op.path_or_fileobj if isinstance(op.path_or_fileobj, str) else "(generated)"
            click.echo(f"{op.path_in_repo}  <-  {source}")
        click.echo("\n" + str(card))
        return

    from huggingface_hub import HfApi

    api = HfApi()
    with hub_errors(repo):
        api.create_repo(repo, private=private or None, exist_ok=True)
        commit = api.create_commit(repo, operations=ops, commit_message=message or f"cyclegan push: {summary}")
    click.echo(f"uploaded {summary} to {commit.commit_url}")
    for model in release.onnx:
        click.echo(f"  python -m serve stylize hf://{repo}/{model.repo_path} photo.jpg --out stylized/")
