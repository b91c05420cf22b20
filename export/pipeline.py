"""The export pipeline: safetensors generator -> verified fp32 ONNX -> optional fp16/int8 variants.

File names: see :mod:`export.sources`. Every file is written to a temporary name in the output folder,
checked, and only then renamed into place: a failed check leaves no file behind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from torch import nn

from cyclegan.contract import files, runtime
from cyclegan.contract.card import DIRECTIONS, MAX_OUTLINES, PRECISIONS, GeneratorCard
from cyclegan.contract.files import ensure_writable_dir
from cyclegan.contract.sizes import round_up
from cyclegan.contract.tiles import companion_names, needs_stats, tileable
from export import onnx_export, quantize, verify
from export.onnx_export import DEFAULT_OPSET
from export.sources import ExportError, default_name, output_path, refuse_existing, resolve_sources

DEFAULT_MAX_SIDE = 1024
REDUCED_PSNR_WARN_DB = 30.0
INT8_MIN_PSNR_DB = 30.0  # default floor: below it `--precision int8` writes nothing (unless --force)
HELD_OUT_IMAGES = 4  # calibration-folder images kept out of calibration to measure PSNR against fp32
FP16_CPU_NOTE = (
    "note: fp16 is slower than fp32 on CPUs (onnxruntime computes it through casts); "
    "it is meant for GPU providers (CUDA, TensorRT, DirectML)"
)
Echo = Callable[[str], None]


class Int8FloorError(ExportError):
    """No int8 recipe keeps the picture: PSNR against fp32 under the floor (exit 2, nothing written)."""


@dataclass
class VariantReport:
    precision: str
    path: Path
    ms_per_image: float | None = None  # best-of-N onnxruntime latency at `bench_side`
    bench_side: int | None = None
    psnr_db: float | None = None  # against the fp32 ONNX output; None for fp32 itself
    companions: tuple[Path, ...] = ()  # the seam-free tiles graphs written next to it (fp32 only)
    recipe: str | None = None  # int8: the recipe chosen
    float_convs: list[str] = field(default_factory=list)  # int8: convolutions kept in float
    fp32_ms: float | None = None  # fp32 timed interleaved with this variant (the speed ratio's baseline)

    @property
    def speed_vs_fp32(self) -> float | None:
        return self.fp32_ms / self.ms_per_image if self.fp32_ms and self.ms_per_image else None


@dataclass
class ExportReport:
    source: Path
    direction: str
    exporter: str
    parity: list[verify.ParityCase] = field(default_factory=list)
    variants: list[VariantReport] = field(default_factory=list)


@dataclass(frozen=True)
class ExportOptions:
    precisions: tuple[str, ...] = ("fp32",)
    opset: int = DEFAULT_OPSET
    max_side: int = DEFAULT_MAX_SIDE
    calibration_dir: Path | None = None
    calibration_count: int = 32
    exporter: str = "auto"
    bench_side: int = 256  # 0 disables the speed measurement
    bench_repeats: int = 3
    threads: int | None = None
    tolerance: float = verify.FP32_TOLERANCE  # max abs difference onnxruntime vs PyTorch for fp32
    overwrite: bool = False  # replace existing .onnx files (otherwise an existing one stops the export)
    int8_min_psnr: float = INT8_MIN_PSNR_DB  # int8 is written only at or above this PSNR against fp32
    force: bool = False  # write int8 under the floor anyway (with a warning)
    outlines: float = 0.0  # > 0: the exported model draws dark outlines of this sigma (px) on its output

    def validate(self) -> None:
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown or not self.precisions:
            raise ExportError(f"unknown precision(s) {unknown}: choose from {', '.join(PRECISIONS)}")
        if self.max_side <= 0:
            raise ExportError(f"--max-side must be > 0, got {self.max_side}")
        if self.opset < 17:
            raise ExportError(f"--opset must be >= 17 (dynamo exporter), got {self.opset}")
        if not (math.isfinite(self.outlines) and 0 <= self.outlines <= MAX_OUTLINES):
            raise ExportError(f"--outlines must be a line sigma from 0 to {MAX_OUTLINES:g} px, got {self.outlines}")
        if not (0 <= self.int8_min_psnr < 200):
            raise ExportError(f"--int8-min-psnr must be between 0 and 200 dB, got {self.int8_min_psnr}")


def load_source(path: Path) -> tuple[nn.Module, GeneratorCard]:
    from cyclegan.generator_io import load_generator

    try:
        return load_generator(path, device="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure here is "this file is not a usable generator"
        raise ExportError(
            f"cannot load generator {path}: {type(exc).__name__}: {exc} "
            "(is it a complete .safetensors file written by `cyclegan train`?)"
        ) from None


def export_generator(
    source: Path,
    out_dir: Path,
    options: ExportOptions,
    *,
    name: str | None = None,
    echo: Echo = lambda _msg: None,
) -> ExportReport:
    """Export one generator file to every requested precision; raises ExportError/ParityError on failure."""
    options.validate()
    module, card = load_source(source)
    if options.outlines:
        from cyclegan.generator_io import with_outlines

        if not card.global_skip:
            raise ExportError(
                f"--outlines needs a generator with the image skip (trained with model.global_skip=true); "
                f"{source} ({card.generator}) has none"
            )
        module, card = with_outlines(module, card, options.outlines)
    if "int8" in options.precisions:  # fail before the slow part when calibration images are missing or unusable
        calibration_files, held_out_files = quantize.split_held_out(
            quantize.list_calibration_images(options.calibration_dir, None),
            options.calibration_count,
            HELD_OUT_IMAGES,
        )
        calibration = quantize.load_calibration_inputs(calibration_files, card)
        held_out = quantize.load_calibration_inputs(held_out_files, card)
    else:
        calibration, held_out = [], []
    name = name or default_name(source, card)
    max_side = options.max_side
    finals = [output_path(out_dir, name, card.direction, precision) for precision in options.precisions]
    finals += _companion_paths(card, out_dir, name, options)
    if not options.overwrite:
        refuse_existing(finals)
    ensure_writable_dir(out_dir, "--out")
    removed = files.remove_stale_temporaries(out_dir)
    if removed:
        echo(f"removed {removed} temporary file(s) left in {out_dir} by an interrupted export")

    proto, exporter = onnx_export.to_onnx_proto(module, card, opset=options.opset, exporter=options.exporter)  # type: ignore[arg-type]
    onnx_export.check_io(proto)
    report = ExportReport(source=source, direction=card.direction, exporter=exporter)

    fp32_card = onnx_export.export_card(card, precision="fp32", opset=options.opset, max_side=max_side)
    companion_finals = _companion_paths(card, out_dir, name, options)
    companion_protos = _companion_protos(module, card, options, echo) if companion_finals else None
    if companion_protos is not None:
        fp32_card.stats_model, fp32_card.tiles_model = (p.name for p in companion_finals)
        fp32_card.stats_size = companion_protos[2]
        fp32_card.validate()
    fp32_tmp = onnx_export.save_single_file(
        onnx_export.attach_card(proto, fp32_card), output_path(out_dir, name, card.direction, "fp32")
    )
    tmp_files = [fp32_tmp]
    try:
        fp32_session = verify.make_session(fp32_tmp, options.threads)
        report.parity = verify.check_parity(
            module,
            fp32_session,
            input_nc=card.input_nc,
            size_multiple=card.size_multiple,
            tolerance=options.tolerance,
            where=f"{source} ({card.direction}, {exporter} exporter)",
        )
        worst = max(c.max_abs_diff for c in report.parity)
        echo(
            f"{card.direction}: {card.generator} exported ({exporter}, opset {options.opset}); parity with PyTorch "
            f"at {len(report.parity)} shapes, max abs diff {worst:.2e} < {options.tolerance:g}"
        )
        companion_moves: list[tuple[Path, Path]] = []
        if companion_protos is not None:
            companion_moves = _write_companions(
                module, card, companion_protos, companion_finals, options, tmp_files, where=f"{source}"
            )
            echo(
                f"{card.direction}: seam-free tiles companions {', '.join(p.name for p in companion_finals)} "
                "(parity with PyTorch checked)"
            )

        bench = _bench_input(card, options.bench_side)
        fp32_ms = verify.time_session(fp32_session, bench, options.bench_repeats) if bench is not None else None
        eval_inputs = _eval_inputs(card, held_out)
        fp32_eval = [verify.run_session(fp32_session, x) for x in eval_inputs]
        written: list[tuple[Path, VariantReport]] = []
        for precision in options.precisions:
            final = output_path(out_dir, name, card.direction, precision)
            if precision == "fp32":
                tmp, variant = fp32_tmp, VariantReport("fp32", final, fp32_ms, options.bench_side or None)
            else:
                variant = VariantReport(precision, final)
                if precision == "fp16":
                    reduced = quantize.to_fp16(onnx.load(str(fp32_tmp)))
                    variant.psnr_db = _psnr(reduced, eval_inputs, fp32_eval, options.threads)
                    echo("  " + FP16_CPU_NOTE)
                else:
                    reduced = _choose_int8(fp32_tmp, calibration, eval_inputs, fp32_eval, options, variant, echo)
                session = verify.make_session_from(reduced, options.threads)
                if bench is not None:  # fp32 timed again, interleaved with this one: a ratio from one moment
                    variant.fp32_ms, variant.ms_per_image = verify.time_sessions(
                        [fp32_session, session], bench, options.bench_repeats
                    )
                    variant.bench_side = options.bench_side
                variant_card = onnx_export.export_card(
                    card, precision=precision, opset=options.opset, max_side=max_side
                )
                variant_card = _measured_card(variant_card, variant)
                tmp = onnx_export.save_single_file(onnx_export.attach_card(reduced, variant_card), final)
                tmp_files.append(tmp)
            written.append((tmp, variant))
            echo("  " + describe(variant, fp32_ms))
            if variant.psnr_db is not None and variant.psnr_db < REDUCED_PSNR_WARN_DB:
                echo(
                    f"  warning: {precision} PSNR {variant.psnr_db:.1f} dB is below {REDUCED_PSNR_WARN_DB:.0f} dB "
                    "against fp32: expect visible differences"
                )
        for tmp, final in companion_moves:  # before the model that names them
            _move_into_place(tmp, final, options.overwrite)
        for tmp, variant in written:
            if variant.precision == "fp32":
                variant.companions = tuple(final for _, final in companion_moves)
            _move_into_place(tmp, variant.path, options.overwrite)
            report.variants.append(variant)
    finally:
        for tmp in tmp_files:
            tmp.unlink(missing_ok=True)
    return report


def _companion_paths(card: GeneratorCard, out_dir: Path, name: str, options: ExportOptions) -> list[Path]:
    """The stats and tiles graphs an fp32 export of an instance-norm ResNet writes next to the model."""
    if "fp32" not in options.precisions or not (tileable(card.generator) and needs_stats(card.norm)):
        return []
    model = output_path(out_dir, name, card.direction, "fp32")
    return [out_dir / n for n in companion_names(model.name)]


def _companion_protos(
    module: nn.Module, card: GeneratorCard, options: ExportOptions, echo: Echo
) -> tuple[onnx.ModelProto, onnx.ModelProto, int] | None:
    from export import tiles

    try:
        return (
            tiles.export_stats(module, card, options.opset),
            tiles.export_tiles(module, card, options.opset),
            tiles.stats_size(module),
        )
    except Exception as exc:  # noqa: BLE001 - the plain model is still useful: warn and export it alone
        echo(f"warning: could not export the seam-free tiles companions ({type(exc).__name__}: {exc}); large "
             "images will be downscaled instead of tiled")  # fmt: skip
        return None


def _write_companions(
    module: nn.Module,
    card: GeneratorCard,
    protos: tuple[onnx.ModelProto, onnx.ModelProto, int],
    finals: list[Path],
    options: ExportOptions,
    tmp_files: list[Path],
    *,
    where: str,
) -> list[tuple[Path, Path]]:
    from export import tiles

    moves = []
    for proto, final in zip(protos[:2], finals):
        proto.producer_name = "cyclegan-toolkit"
        tmp = onnx_export.save_single_file(proto, final)
        tmp_files.append(tmp)
        moves.append((tmp, final))
    sessions = [verify.make_session(tmp, options.threads) for tmp, _ in moves]
    tiles.check_companions(module, *sessions, card, tolerance=options.tolerance, where=where)
    return moves


def _psnr(
    model: onnx.ModelProto, inputs: Sequence[np.ndarray], references: Sequence[np.ndarray], threads: int | None
) -> float:
    session = verify.make_session_from(model, threads)
    return verify.psnr_over(references, [verify.run_session(session, x) for x in inputs])


def _choose_int8(
    fp32_path: Path,
    calibration: Sequence[np.ndarray],
    eval_inputs: Sequence[np.ndarray],
    fp32_eval: Sequence[np.ndarray],
    options: ExportOptions,
    variant: VariantReport,
    echo: Echo,
) -> onnx.ModelProto:
    """The first int8 recipe reaching the floor; under it, Int8FloorError, or (``--force``) the best one."""
    floor = options.int8_min_psnr
    trial, tried = quantize.choose_int8(
        fp32_path, calibration, lambda m: _psnr(m, eval_inputs, fp32_eval, options.threads), floor, echo=echo
    )
    variant.psnr_db, variant.recipe, variant.float_convs = trial.psnr_db, trial.recipe.name, trial.float_convs
    if trial.psnr_db < floor:
        best = f"int8 PSNR {trial.psnr_db:.1f} dB against fp32 (best of {len(tried)} recipes, {trial.recipe.name})"
        if not options.force:
            raise Int8FloorError(
                f"{best} is below the floor of {floor:g} dB: nothing written; pass --force to write it anyway, "
                "or lower --int8-min-psnr"
            )
        echo(
            f"  WARNING: {best} is below the floor of {floor:g} dB; writing it because of --force: EXPECT VISIBLE "
            "DIFFERENCES from the fp32 model"
        )
    return trial.model


def _measured_card(card: GeneratorCard, variant: VariantReport) -> GeneratorCard:
    """``card`` with the variant's measurements (PSNR, speed vs fp32, CPU, int8 recipe) filled in."""
    import dataclasses

    speed = variant.speed_vs_fp32
    return dataclasses.replace(
        card,
        psnr_vs_fp32_db=round(variant.psnr_db, 2)
        if variant.psnr_db is not None and np.isfinite(variant.psnr_db)
        else None,
        speed_vs_fp32=round(speed, 3) if speed else None,
        bench_side=variant.bench_side if speed else None,
        bench_cpu=runtime.cpu_model() if speed else None,
        quant_recipe=variant.recipe,
        float_nodes=tuple(variant.float_convs),
    )


def _move_into_place(tmp: Path, final: Path, overwrite: bool) -> None:
    """Rename the verified file to its final name; without ``overwrite`` never over an existing file, even one
    that another export wrote meanwhile (a hard link fails where the name exists)."""
    try:
        if overwrite:
            os.replace(tmp, final)
            return
        os.link(tmp, final)
    except FileExistsError:
        raise ExportError(
            f"{final} appeared while exporting (another export into {final.parent}?): pass --overwrite to replace "
            "it, or --name NAME"
        ) from None
    except OSError as exc:
        raise files.output_error(final, exc) from None
    tmp.unlink()


def export_source(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: ExportOptions,
    *,
    direction: str | None = None,
    name: str | None = None,
    echo: Echo = lambda _msg: None,
) -> list[ExportReport]:
    """Export a run folder (both directions or one) or a single .safetensors generator."""
    sources = resolve_sources(source, direction)
    if len(sources) == 1 and direction in DIRECTIONS:
        from cyclegan.generator_io import read_card

        try:
            card_direction = read_card(sources[0]).direction
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"cannot read the metadata of {sources[0]}: {exc}") from None
        if card_direction != direction:
            raise ExportError(
                f"{sources[0]} holds the {card_direction} generator, but --direction {direction} was asked"
            )
    if not options.overwrite:  # every direction checked before the first one is exported
        refuse_existing([path for f in sources for path in _planned_outputs(f, Path(out_dir), options, name)])
    return [export_generator(f, Path(out_dir), options, name=name, echo=echo) for f in sources]


def _planned_outputs(source: Path, out_dir: Path, options: ExportOptions, name: str | None) -> list[Path]:
    from cyclegan.generator_io import read_card

    try:
        card = read_card(source)
    except Exception:  # noqa: BLE001 - export_generator reports an unreadable file properly
        return []
    name = name or default_name(source, card)
    return [output_path(out_dir, name, card.direction, precision) for precision in options.precisions] + (
        _companion_paths(card, out_dir, name, options)
    )


def describe(variant: VariantReport, fp32_ms: float | None) -> str:
    parts = [f"{variant.precision:>4} -> {variant.path.name}"]
    if variant.ms_per_image is not None:
        parts.append(f"{variant.ms_per_image:.1f} ms/image at {variant.bench_side}px")
        if variant.speed_vs_fp32 and variant.precision != "fp32":
            parts.append(f"{variant.speed_vs_fp32:.2f}x fp32 ({variant.fp32_ms:.1f} ms, timed alternately)")
    if variant.psnr_db is not None:
        parts.append(f"PSNR {variant.psnr_db:.1f} dB vs fp32")
    if variant.recipe is not None:
        kept = ", ".join(variant.float_convs) if variant.float_convs else "none"
        parts.append(f"recipe {variant.recipe} (convolutions kept in float: {kept})")
    return ", ".join(parts)


def _bench_input(card: GeneratorCard, side: int) -> np.ndarray | None:
    if side <= 0:
        return None
    side = round_up(side, card.size_multiple, card.min_side)
    return verify.random_input(1, card.input_nc, side, side, seed=123)


def _eval_inputs(card: GeneratorCard, held_out: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Inputs for the reduced-precision PSNR: the held-out calibration-folder images, else a synthetic image."""
    if held_out:
        return list(held_out)
    side = round_up(quantize.CALIBRATION_SIDE, card.size_multiple, card.min_side)
    return [verify.random_input(2, card.input_nc, side, side, seed=7)]


__all__ = [
    "DEFAULT_MAX_SIDE",
    "DIRECTIONS",
    "ExportOptions",
    "ExportReport",
    "PRECISIONS",
    "VariantReport",
    "export_generator",
    "export_source",
    "output_path",
    "resolve_sources",
]
