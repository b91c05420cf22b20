"""The repository's README.md (a Hugging Face model card) and its example grid, from what a release holds.

The card is :class:`huggingface_hub.ModelCard`: YAML metadata (``library_name``, ``pipeline_tag``, tags,
license) over a Markdown body with the domains and architecture of every file, how it was trained, the
evaluation scores a run recorded, a sample grid and the commands that run the models with this toolkit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from cyclegan.contract.card import GeneratorCard
from cyclegan.hub.release import ModelFile, Release, RunFacts

LIBRARY = "cyclegan-toolkit"
TAGS = ("cyclegan", "image-to-image", "style-transfer", "onnx", "unpaired-image-translation")
SAMPLES_FILE = "samples.png"  # the last training sample grid of a run
EXAMPLES_FILE = "examples.png"  # --examples photos through every ONNX model
EXAMPLE_SIDE = 256


def provenance(card: GeneratorCard) -> str:
    if card.extra.get("imported_from"):
        source = card.extra.get("reference", "another implementation")
        return f"imported from `{card.extra['imported_from']}` ({source})"
    if card.step:
        return f"step {card.step:,}, epoch {card.epoch}" + (", EMA" if card.ema else "")
    return "untrained" if not card.run_name else "-"


def _table(rows: Sequence[Sequence[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _models_section(release: Release) -> str:
    rows = [("file", "maps", "architecture", "weights", "precision", "max side")]
    for m in release.models:
        c = m.card
        rows.append(
            (
                f"`{m.repo_path}`",
                f"{c.source_domain} → {c.target_domain} ({c.direction})",
                c.architecture,
                provenance(c),
                c.precision or ("fp32 (PyTorch)" if m.kind == "safetensors" else "-"),
                f"{c.max_side} px" if c.max_side else "-",
            )
        )
    return "## Models\n\n" + _table(rows)


def _training_section(release: Release) -> str:
    lines = ["## Training", ""]
    if not release.runs:
        imported = [m for m in release.models if m.card.extra.get("imported_from")]
        if imported:
            lines.append("Weights imported from released checkpoints with `cyclegan import-pth`:")
            for m in imported:
                sha = m.card.extra.get("imported_sha256", "?")
                lines.append(f"- `{m.repo_path}`: `{m.card.extra['imported_from']}` (sha256 `{sha}`)")
        else:
            lines.append("Training details travel in each file's card (`cyclegan` metadata); no run folder was pushed.")
        return "\n".join(lines)
    for run in release.runs:
        lines.append(f"Run `{run.name}`: {_run_summary(run)}.")
    return "\n".join(lines)


def _run_summary(run: RunFacts) -> str:
    parts = []
    if run.step is not None:
        parts.append(f"{run.step:,} steps" + (f" ({run.epoch} epochs)" if run.epoch is not None else ""))
    cfg = run.config
    model, data, loss, optim, train = (cfg.get(k, {}) or {} for k in ("model", "data", "loss", "optim", "train"))
    if data.get("crop_size"):
        parts.append(f"{data['crop_size']} px crops (loaded at {data.get('load_size', '?')} px)")
    if train.get("batch_size"):
        parts.append(f"batch {train['batch_size']}")
    if loss:
        parts.append(
            f"{loss.get('gan_mode', '?')} GAN loss, cycle λ {loss.get('lambda_a', '?')}/{loss.get('lambda_b', '?')}, "
            f"identity {loss.get('lambda_identity', '?')}"
            + (f", change TV {loss['lambda_change_tv']}" if loss.get("lambda_change_tv") else "")
        )
    if optim.get("lr"):
        parts.append(f"Adam lr {optim['lr']} ({optim.get('scheduler', '?')} schedule)")
    if model.get("discriminator"):
        parts.append(f"{model['discriminator']} discriminator")
    if train.get("mixed_precision"):
        parts.append(f"mixed precision {train['mixed_precision']}")
    return ", ".join(parts) or "no config.yaml or metrics.jsonl found"


def _eval_section(release: Release) -> str:
    rows = [("run", "score", "value", "at step")]
    for run in release.runs:
        for name, (value, step) in sorted(run.eval_scores.items()):
            rows.append((run.name, name, f"{value:.4g}", f"{step:,}" if step is not None else "-"))
    if len(rows) == 1:
        return "## Evaluation\n\nNo evaluation scores were recorded for these models."
    return "## Evaluation\n\n" + _table(rows)


def _samples_section(release: Release, examples: Sequence[str]) -> str:
    parts = []
    sampled = [run for run in release.runs if run.sample is not None]
    if sampled:
        run = sampled[0]
        parts.append(
            f"![training samples]({SAMPLES_FILE})\n\nTraining samples of `{run.name}` at step "
            f"{run.sample_step if run.sample_step is not None else '?'}: each row is a held-out image, then its "
            "translation, its reconstruction and the identity mapping."
        )
    if examples:
        columns = ", ".join(f"`{m}`" for m in examples)
        parts.append(f"![examples]({EXAMPLES_FILE})\n\nEach row: the input photo, then {columns}.")
    return "## Samples\n\n" + ("\n\n".join(parts) if parts else "No sample grid was pushed.")


def _usage_section(release: Release, repo_id: str) -> str:
    onnx = [m.repo_path for m in release.onnx]
    lines = ["## Use it with this toolkit", ""]
    if onnx:
        first = f"hf://{repo_id}/{onnx[0]}"
        every = ",".join(f"hf://{repo_id}/{name}" for name in onnx)
        lines += [
            "Torch-free serving downloads `hf://` models once into the Hugging Face cache "
            "(install the toolkit's `serve` extra: `pip install -c constraints.txt '.[serve]'` in its checkout):",
            "",
            "```bash",
            f"python -m serve stylize {first} photo.jpg holidays/ clip.mp4 --out stylized/",
            f"BOT_TOKEN=123:abc BOT_MODELS={every} python -m serve bot   # the Telegram bot",
            f"python -m serve web --models hf://{repo_id}   # a web page with every style ('web' extra)",
            "```",
        ]
    safetensors = [m.repo_path for m in release.models if m.kind == "safetensors"]
    if safetensors:
        lines += [
            "",
            "The `.safetensors` generators (weights plus card, no pickles) load with "
            "`cyclegan.generator_io.load_generator` and export to ONNX with "
            f"`cyclegan export {safetensors[0]} --out models/`.",
        ]
    return "\n".join(lines)


def model_card(release: Release, repo_id: str, *, license: str | None = None, examples: Sequence[str] = ()):
    """The README.md of the repository as a :class:`huggingface_hub.ModelCard`."""
    from huggingface_hub import ModelCard, ModelCardData

    domains = sorted({f"{m.card.source_domain} → {m.card.target_domain}" for m in release.models})
    data = ModelCardData(
        library_name=LIBRARY,
        pipeline_tag="image-to-image",
        tags=list(TAGS),
        license=license,
        model_name=repo_id.split("/")[-1],
    )
    body = "\n\n".join(
        [
            f"# {repo_id.split('/')[-1]}",
            f"CycleGAN generators ({', '.join(domains)}) made with {LIBRARY}: unpaired image-to-image "
            "translation, exported to ONNX for torch-free serving.",
            _models_section(release),
            _training_section(release),
            _eval_section(release),
            _samples_section(release, examples),
            _usage_section(release, repo_id),
        ]
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def examples_grid(models: Sequence[ModelFile], photos: Sequence[Path], side: int = EXAMPLE_SIDE) -> Image.Image:
    """One row per photo: the photo, then its translation by each ONNX model (torch-free, as serving runs them)."""
    from cyclegan.contract.images import open_image
    from serve.stylizer import Stylizer

    stylizers = [Stylizer(m.path, max_side=side) for m in models]
    rows = []
    for photo in photos:
        image = stylizers[0].prepare(open_image(photo), max_side=side)
        rows.append([image] + [s.stylize(image, max_side=side).convert("RGB") for s in stylizers])
    gap = 4
    width = max(sum(cell.width for cell in row) + gap * (len(row) - 1) for row in rows)
    height = sum(max(cell.height for cell in row) for row in rows) + gap * (len(rows) - 1)
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for row in rows:
        x = 0
        for cell in row:
            grid.paste(cell.convert("RGB"), (x, y))
            x += cell.width + gap
        y += max(cell.height for cell in row) + gap
    return grid
