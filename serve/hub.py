"""Where serving finds its models: ``.onnx`` files, folders of them, and models on the Hugging Face Hub.

One resolver for every entry point that takes a model (``stylize``, the bot's ``BOT_MODELS``, the web
page's ``--models``). A *model source* is one of:

* ``path/to/model.onnx`` -- one exported model;
* ``path/to/folder`` -- every ``*.onnx`` file in it, in name order;
* ``hf://user/name/file.onnx`` (``hf://user/name@revision/file.onnx``) -- one file of a model repository
  on the Hub, downloaded once into the Hub cache by :func:`huggingface_hub.hf_hub_download`, with its
  seam-free tiles companions (``file.stats.onnx``, ``file.tiles.onnx``) where the repository has them; later
  runs use the cached copies, also offline (``HF_HUB_OFFLINE=1``);
* ``hf://user/name`` -- every ``*.onnx`` file at the top of that repository
  (:func:`huggingface_hub.snapshot_download`, cached the same way).

The ``hf://`` syntax is the library's own (:func:`huggingface_hub.utils.parse_hf_uri`); the cache, token
(``HF_TOKEN`` or ``hf auth login``), endpoint (``HF_ENDPOINT``) and offline switch are the library's
environment variables. ``huggingface_hub`` is imported only when an ``hf://`` source is used, so local
models need nothing beyond the serving extras. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.tiles import companion_names, is_companion

HF_PREFIX = "hf://"
MODEL_SUFFIX = ".onnx"

__all__ = [
    "HF_PREFIX",
    "HubUnreachableError",
    "ModelSourceError",
    "is_hub_source",
    "resolve_model",
    "resolve_models",
    "split_sources",
]


class ModelSourceError(ToolkitError, ValueError):
    """A model source names nothing usable (missing file, empty folder, malformed ``hf://``, no such repo)."""


class HubUnreachableError(ModelSourceError):
    """The Hub cannot be reached (offline mode, no network) for what was asked: a model not in the cache, an upload."""


def is_hub_source(source: str | os.PathLike[str]) -> bool:
    return isinstance(source, str) and source.startswith(HF_PREFIX)


def split_sources(text: str) -> list[str]:
    """``"a.onnx, hf://u/n/b.onnx  models/"`` -> the sources, split on commas and whitespace."""
    return [part for part in text.replace(",", " ").split() if part]


def resolve_model(source: str | os.PathLike[str]) -> Path:
    """The local path of one model file: a path as given, or an ``hf://`` file downloaded into the Hub cache."""
    if is_hub_source(source):
        ref = _parse(str(source))
        if not ref.path_in_repo:
            raise ModelSourceError(
                f"{source} names a whole repository; name one model file in it, e.g. {source.rstrip('/')}/NAME.onnx"
            )
        return _download(str(source), ref)
    return Path(source)


def resolve_models(sources: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every model file the sources name (folders expanded to their ``*.onnx``), with distinct names.

    Raises :class:`ModelSourceError` for a source that names no model, and when two models would show
    under the same name (the file name without ``.onnx`` is a model's name in the bot and the web page).
    """
    paths: list[Path] = []
    for source in sources:
        if is_hub_source(source):
            ref = _parse(str(source))
            paths += [_download(str(source), ref)] if ref.path_in_repo else _download_repo(str(source), ref)
            continue
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.glob(f"*{MODEL_SUFFIX}") if p.is_file() and not is_companion(p))
            if not found:
                raise ModelSourceError(
                    f"no *{MODEL_SUFFIX} models in {path}: export one with `cyclegan export --out {path}`"
                )
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise ModelSourceError(f"no such model file or folder: {path}")
    if not paths:
        raise ModelSourceError("no models given")
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise ModelSourceError(
                f"two models are named {path.stem!r} ({seen[path.stem]} and {path}): rename one of the files"
            )
        seen[path.stem] = path
    return paths


# --------------------------------------------------------------------------------------------- the Hub


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ModelSourceError(
            "hf:// models need huggingface_hub: pip install 'cyclegan-toolkit[hub]' (or download the .onnx "
            "file yourself and pass its path)"
        ) from None
    return huggingface_hub


def _parse(source: str):
    _hub()
    from huggingface_hub.errors import HfUriError
    from huggingface_hub.utils import parse_hf_uri

    try:
        ref = parse_hf_uri(source)
    except HfUriError as exc:
        raise ModelSourceError(f"{exc.msg.strip()} (expected hf://user/name/file.onnx)") from None
    if ref.type != "model":
        raise ModelSourceError(f"{source}: models live in model repositories, not {ref.type}s (hf://user/name/...)")
    if ref.path_in_repo and not ref.path_in_repo.endswith(MODEL_SUFFIX):
        raise ModelSourceError(f"{source}: not an {MODEL_SUFFIX} file (serving runs exported ONNX models)")
    return ref


def _download(source: str, ref) -> Path:
    hub = _hub()
    with _hub_errors(source, ref.revision):
        path = Path(hub.hf_hub_download(ref.id, ref.path_in_repo, revision=ref.revision))
    _download_companions(source, ref)
    return path


def _download_companions(source: str, ref) -> None:
    """The model's seam-free tiles companions (``NAME.stats.onnx``, ``NAME.tiles.onnx``), into the same cache
    folder, where the repository has them. A repository without them is no error: the model still serves and
    large pictures are downscaled, with a note. Offline, a companion not in the cache is skipped likewise."""
    hub = _hub()
    folder, _, name = ref.path_in_repo.rpartition("/")
    for companion in companion_names(name):
        path_in_repo = f"{folder}/{companion}" if folder else companion
        try:
            with _hub_errors(source, ref.revision):
                hub.hf_hub_download(ref.id, path_in_repo, revision=ref.revision)
        except ModelSourceError:  # not in the repository, or offline and not in the cache
            continue


def _download_repo(source: str, ref) -> list[Path]:
    hub = _hub()
    with _hub_errors(source, ref.revision):
        folder = Path(hub.snapshot_download(ref.id, revision=ref.revision, allow_patterns=[f"*{MODEL_SUFFIX}"]))
    found = sorted(p for p in folder.glob(f"*{MODEL_SUFFIX}") if p.is_file() and not is_companion(p))
    if not found:
        raise ModelSourceError(f"{source} has no *{MODEL_SUFFIX} file at its top level")
    return found


@contextlib.contextmanager
def _hub_errors(source: str, revision: str | None = None) -> Iterator[None]:
    """Turn the library's exceptions into one line that says what happened and what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache, endpoint = constants.HF_HUB_CACHE, constants.ENDPOINT
    try:
        yield
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        if constants.HF_HUB_OFFLINE:
            raise HubUnreachableError(
                f"{source} is not in the Hub cache ({cache}) and HF_HUB_OFFLINE is set: unset it to download "
                "the model once, or pass a local .onnx file"
            ) from None
        raise HubUnreachableError(
            f"cannot reach the Hugging Face Hub at {endpoint} to download {source}, and it is not in the Hub "
            f"cache ({cache}): check the network (and HF_ENDPOINT), or pass a local .onnx file"
        ) from None
    except GatedRepoError:
        raise ModelSourceError(
            f"{source}: the repository is gated; accept its terms on the Hub and log in (HF_TOKEN or `hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise ModelSourceError(
            f"{source}: no such model repository on {endpoint} (or it is private: set HF_TOKEN or run `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise ModelSourceError(f"{source}: the repository has no revision {revision!r}") from None
    except RemoteEntryNotFoundError:
        raise ModelSourceError(f"{source}: the repository has no such file") from None
    except HfHubHTTPError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelSourceError(f"{source}: the Hub refused the download: {first}") from None
