"""The Hugging Face Hub: model sources in serving (serve.hub), `cyclegan push` and its model card.

Round trips go through the real ``huggingface_hub`` client against tests/hub_server.py on 127.0.0.1 (the
client reads HF_ENDPOINT / HF_HUB_OFFLINE at import, so those runs are subprocesses). The offline paths are
the library's own: HF_HUB_OFFLINE=1, and an endpoint on 127.0.0.1 where nothing listens.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from browser import free_port
from click.testing import CliRunner
from hub_server import HubServer, Repo
from onnx_models import make_test_model
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import load_config
from cyclegan.contract.images import open_image
from cyclegan.generator_io import card_from_config, save_generator
from cyclegan.hub.card import model_card
from cyclegan.hub.release import ReleaseError, collect
from cyclegan.models import make_generator
from serve.hub import ModelSourceError, resolve_model, resolve_models
from serve.stylizer import ModelLoadError, Stylizer

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_test_token"


def run_folder(root: Path, steps: int = 1800) -> Path:
    """A training run as cyclegan.training writes it: config, generators with cards, metrics, samples."""
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", ["data.domain_a=photo", "data.domain_b=ink"])
    root.mkdir(parents=True)
    cfg.save(root / "config.yaml")
    for direction in ("A2B", "B2A"):
        card = card_from_config(cfg, direction, step=steps, epoch=6, ema=True)
        save_generator(root / "generators" / f"{direction}.safetensors", make_generator("resnet_6blocks", ngf=16), card)
    records = [{"step": s, "epoch": s // 300, "loss/G_A": 0.5} for s in range(20, steps + 1, 20)]
    records.insert(40, {"step": 900, "eval/kid": 0.08, "eval/cycle_mae": 12.5})
    records.append({"step": steps, "eval/kid": 0.0412, "eval/cycle_mae": 9.25})
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 18', "utf-8")
    (root / "samples").mkdir()
    for step in (200, steps):
        Image.new("RGB", (130, 66), (step % 255, 90, 160)).save(root / "samples" / f"step_{step:08d}.png")
    return root


def photo(path: Path, size: tuple[int, int] = (90, 70)) -> Path:
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


# ------------------------------------------------------------------------------------------- sources


def test_local_sources(tmp_path: Path) -> None:
    a = make_test_model(tmp_path / "models" / "a.onnx")
    b = make_test_model(tmp_path / "models" / "b.onnx")
    (tmp_path / "models" / "notes.txt").write_text("not a model")
    c = make_test_model(tmp_path / "c.onnx")
    assert resolve_models([str(tmp_path / "models"), str(c)]) == [a, b, c]
    assert resolve_model(str(c)) == c
    with pytest.raises(ModelSourceError, match=r"two models are named 'a'"):
        resolve_models([str(tmp_path / "models"), str(make_test_model(tmp_path / "other" / "a.onnx"))])
    with pytest.raises(ModelSourceError, match="no such model file or folder"):
        resolve_models([str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match=r"no \*\.onnx models in .*cyclegan export"):
        resolve_models([str(tmp_path / "empty")])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("hf://justone", r"namespace/name"),
        ("hf://datasets/user/name/m.onnx", r"not datasets"),
        ("hf://user/name/weights.bin", r"not an \.onnx file"),
    ],
)
def test_malformed_hub_sources_fail_before_any_download(source: str, message: str) -> None:
    with pytest.raises(ModelSourceError, match=message):
        resolve_models([source])


def test_a_whole_repository_is_not_one_model() -> None:
    with pytest.raises(ModelSourceError, match=r"names a whole repository; .*hf://user/name/NAME\.onnx"):
        resolve_model("hf://user/name")


# ------------------------------------------------------------------------------------------- the card


def test_model_card_from_a_run_and_models(tmp_path: Path) -> None:
    run_dir = run_folder(tmp_path / "runs" / "inkwash")
    models = tmp_path / "models"
    make_test_model(models / "inkwash_A2B.onnx", source_domain="photo", target_domain="ink", max_side=1024)
    release = collect([run_dir, models])
    assert [m.repo_path for m in release.models] == [
        "tiny_cpu_A2B.safetensors",
        "tiny_cpu_B2A.safetensors",
        "inkwash_A2B.onnx",
    ]
    (run,) = release.runs
    assert (run.name, run.step, run.sample_step) == ("tiny_cpu", 1800, 1800)
    assert run.eval_scores == {"kid": (0.0412, 1800), "cycle_mae": (9.25, 1800)}

    card = model_card(release, "me/inkwash", license="mit", examples=["inkwash_A2B.onnx"])
    text = str(card)
    assert card.data.library_name == "cyclegan-toolkit" and card.data.license == "mit"
    assert card.data.pipeline_tag == "image-to-image" and "cyclegan" in card.data.tags
    assert "| `tiny_cpu_A2B.safetensors` | photo → ink (A2B) | ResNet 6 blocks, 16 filters, instance norm |" in text
    assert "| `tiny_cpu_B2A.safetensors` | ink → photo (B2A) |" in text
    assert "step 1,800, epoch 6, EMA" in text
    assert (
        "| `inkwash_A2B.onnx` | photo → ink (A2B) | ResNet 9 blocks, 64 filters, instance norm | - | fp32 | 1024 px |"
        in text
    )
    assert "Run `tiny_cpu`: 1,800 steps (6 epochs), 64 px crops (loaded at 72 px), batch 1, lsgan GAN loss" in text
    assert "| tiny_cpu | kid | 0.0412 | 1,800 |" in text and "| tiny_cpu | cycle_mae | 9.25 | 1,800 |" in text
    assert "![training samples](samples.png)" in text and "![examples](examples.png)" in text
    assert "python -m serve stylize hf://me/inkwash/inkwash_A2B.onnx" in text
    assert "BOT_MODELS=hf://me/inkwash/inkwash_A2B.onnx" in text and "--models hf://me/inkwash" in text
    assert "cyclegan export tiny_cpu_A2B.safetensors --out models/" in text


def test_imported_generators_say_where_they_came_from(tmp_path: Path) -> None:
    torch.save(make_generator("resnet_6blocks", ngf=4).state_dict(), tmp_path / "ink.pth")
    args = ["import-pth", str(tmp_path / "ink.pth"), "--generator", "resnet_6blocks", "--ngf", "4"]
    assert CliRunner().invoke(main, [*args, "--name", "ink", "--domains", "photo,ink"]).exit_code == 0
    text = str(model_card(collect([tmp_path / "ink_A2B.safetensors"]), "me/ink"))
    assert "imported from `ink.pth` (junyanz/pytorch-CycleGAN-and-pix2pix)" in text
    assert "- `ink_A2B.safetensors`: `ink.pth` (sha256 `" in text
    assert "No evaluation scores were recorded" in text and "No sample grid was pushed." in text


def test_release_errors(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="no such file or folder"):
        collect([tmp_path / "absent"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleaseError, match="holds no .onnx or .safetensors models"):
        collect([tmp_path / "empty"])
    make_test_model(tmp_path / "one" / "x.onnx")
    make_test_model(tmp_path / "two" / "x.onnx")
    with pytest.raises(ReleaseError, match=r"would both be x\.onnx in the repository"):
        collect([tmp_path / "one", tmp_path / "two"])
    make_test_model(tmp_path / "foreign.onnx", with_metadata=False)
    with pytest.raises(ModelLoadError, match="foreign.onnx has no 'cyclegan' metadata"):
        collect([tmp_path / "foreign.onnx"])
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ReleaseError, match="expected an .onnx or .safetensors model"):
        collect([tmp_path / "notes.txt"])


def test_push_argument_errors(tmp_path: Path) -> None:
    model = make_test_model(tmp_path / "m.onnx")
    cases = [
        (["push", str(model), "--repo", "nouser"], 2, "user/name"),
        (["push", str(model), "--repo", "me/bad name"], 2, "Invalid value for '--repo'"),
        (["push", str(tmp_path / "absent"), "--repo", "me/x"], 2, "error: no such file or folder"),
        (["push", str(model), "--repo", "me/x", "--examples", str(tmp_path / "none")], 2, "--examples"),
        (["push", str(model), "--repo", "me/x", "--examples", str(tmp_path)], 2, "no images there"),
    ]
    for args, code, message in cases:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == code and message in result.output, (args, result.output)


# ------------------------------------------------------------------------------------------- round trips


def test_push_then_serve_from_the_hub_then_offline_from_the_cache(tmp_path: Path) -> None:
    run_dir = run_folder(tmp_path / "run")
    models = tmp_path / "models"
    make_test_model(models / "ink_A2B.onnx", kind="conv", target_domain="ink", max_side=64)
    src = photo(tmp_path / "in.png")
    with HubServer(token=TOKEN) as hub:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf")}
        pushed = run(
            ["-m", "cyclegan", "push", str(run_dir), str(models), "--repo", "me/ink", "--examples", str(src)], env
        )
        assert pushed.returncode == 0, pushed.stderr
        assert "uploaded 3 model(s), README.md, grids to " in pushed.stdout
        files = hub.repos["me/ink"].files
        assert set(files) == {
            "tiny_cpu_A2B.safetensors",
            "tiny_cpu_B2A.safetensors",
            "ink_A2B.onnx",
            "README.md",
            "samples.png",
            "examples.png",
        }
        assert files["ink_A2B.onnx"] == (models / "ink_A2B.onnx").read_bytes()
        assert files["samples.png"] == (run_dir / "samples" / "step_00001800.png").read_bytes()
        assert "hf://me/ink/ink_A2B.onnx" in files["README.md"].decode()
        grid = Image.open(io.BytesIO(files["examples.png"]))
        assert grid.size == (90 + 4 + 90, 70)  # the photo, a gap, its stylized copy

        out = tmp_path / "out"
        styled = run(["-m", "serve", "stylize", "hf://me/ink/ink_A2B.onnx", str(src), "--out", str(out)], env)
        assert styled.returncode == 0, styled.stderr
        expected = Stylizer(models / "ink_A2B.onnx").stylize(open_image(src))
        assert np.array_equal(np.asarray(Image.open(out / "in.png")), np.asarray(expected))

        # The bot (BOT_MODELS) and the web page take the same sources; a whole repository lists its models.
        check = (
            "from serve.bot import load_stylizers; from serve.bot_config import BotSettings; "
            "from serve.web import WebSettings, load_styles; "
            "bot = load_stylizers(BotSettings(token='1:abc', models_dir=None, models=('hf://me/ink/ink_A2B.onnx',))); "
            "web = load_styles(WebSettings(models=('hf://me/ink',))); "
            "print([s.name for s in bot], [s.label for s in web])"
        )
        loaded = run(["-c", check], env)
        assert loaded.returncode == 0, loaded.stderr
        assert "['ink_A2B'] ['photo → ink']" in loaded.stdout

        served = len(hub.requests)
        offline = run(
            ["-m", "serve", "stylize", "hf://me/ink/ink_A2B.onnx", str(src), "--out", str(tmp_path / "again")],
            {**env, "HF_HUB_OFFLINE": "1"},
        )
        assert offline.returncode == 0, offline.stderr
        assert len(hub.requests) == served  # downloaded once: the cache served it

        refused = run(["-m", "cyclegan", "push", str(models), "--repo", "me/ink"], {**env, "HF_TOKEN": "hf_wrong"})
        assert refused.returncode == 1
        assert "the Hub needs a token with write access" in refused.stderr and "nothing was uploaded" in refused.stderr
        missing = run(["-m", "serve", "stylize", "hf://me/ink/nope.onnx", str(src), "--out", str(out)], env)
        assert missing.returncode == 2 and "hf://me/ink/nope.onnx: the repository has no such file" in missing.stderr
        absent = run(["-m", "serve", "stylize", "hf://me/none/x.onnx", str(src), "--out", str(out)], env)
        assert absent.returncode == 2 and "no such model repository" in absent.stderr


def _last_line(process: subprocess.CompletedProcess[str]) -> str:
    return process.stderr.strip().splitlines()[-1]


def test_offline_and_unreachable_hub_say_so_in_one_line(tmp_path: Path) -> None:
    """HF_HUB_OFFLINE=1 and an endpoint where nothing listens: exit 2 and one line saying what to do.

    The library retries an unreachable endpoint for about 20 s before it gives up on a first download,
    so those runs go side by side.
    """
    src = photo(tmp_path / "in.png")
    model = make_test_model(tmp_path / "m.onnx")
    dead = f"http://127.0.0.1:{free_port()}"
    base = {"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": TOKEN}
    jobs = {
        "stylize offline": (
            ["-m", "serve", "stylize", "hf://me/x/m.onnx", str(src), "--out", str(tmp_path / "o")],
            {"HF_HUB_OFFLINE": "1"},
        ),
        "stylize unreachable": (
            ["-m", "serve", "stylize", "hf://me/x/m.onnx", str(src), "--out", str(tmp_path / "o")],
            {"HF_ENDPOINT": dead},
        ),
        "web offline": (["-m", "serve", "web", "--models", "hf://me/x"], {"HF_HUB_OFFLINE": "1"}),
        "push offline": (["-m", "cyclegan", "push", str(model), "--repo", "me/x"], {"HF_HUB_OFFLINE": "1"}),
        "push unreachable": (["-m", "cyclegan", "push", str(model), "--repo", "me/x"], {"HF_ENDPOINT": dead}),
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **base, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name, (args, extra) in jobs.items()
    }
    done = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=120)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    for name, result in done.items():
        assert result.returncode == 2, (name, result.stderr)
    assert _last_line(done["stylize offline"]) == (
        f"error: hf://me/x/m.onnx is not in the Hub cache ({tmp_path / 'hf' / 'hub'}) and HF_HUB_OFFLINE is set: "
        "unset it to download the model once, or pass a local .onnx file"
    )
    assert _last_line(done["stylize unreachable"]).startswith(
        f"error: cannot reach the Hugging Face Hub at {dead} to download hf://me/x/m.onnx, and it is not in the "
        "Hub cache"
    )
    assert "HF_HUB_OFFLINE is set" in _last_line(done["web offline"])
    assert (
        _last_line(done["push offline"])
        == "error: HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it and push again"
    )
    assert _last_line(done["push unreachable"]).startswith(f"error: cannot reach the Hugging Face Hub at {dead}")
    assert "Traceback" not in "".join(r.stderr for r in done.values())


def test_a_hub_model_brings_its_tiles_companions_when_the_repository_has_them(tmp_path: Path) -> None:
    """hf://user/name/NAME.onnx also fetches NAME.stats.onnx / NAME.tiles.onnx (same cache folder, so the model
    tiles seam-free), also from a sub-folder and offline from the cache; a repository without them still serves."""
    from tiled_models import export_small_resnet

    variant = export_small_resnet(tmp_path)
    names = [variant.path.name, *(p.name for p in variant.companions)]
    files = {name: (variant.path.parent / name).read_bytes() for name in names}
    plain = make_test_model(tmp_path / "plain.onnx")
    check = (
        "import sys; from serve.hub import resolve_model; from serve.stylizer import Stylizer; "
        "paths = [resolve_model(s) for s in sys.argv[1:]]; "
        "print([(p.name, sorted(q.name for q in p.parent.iterdir() if q.is_file()), Stylizer(p).can_tile) "
        "for p in paths])"
    )
    with HubServer() as hub:
        hub.repos["me/tiles"] = Repo(files={**files, **{f"sub/{name}": data for name, data in files.items()}})
        hub.repos["me/plain"] = Repo(files={"plain.onnx": plain.read_bytes()})
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf")}
        sources = ["hf://me/tiles/small_A2B.onnx", "hf://me/tiles/sub/small_A2B.onnx", "hf://me/plain/plain.onnx"]
        got = run(["-c", check, *sources], env)
        assert got.returncode == 0, got.stderr
        assert eval(got.stdout.strip().splitlines()[-1]) == [
            ("small_A2B.onnx", sorted(names), True),
            ("small_A2B.onnx", sorted(names), True),
            ("plain.onnx", ["plain.onnx"], False),  # exported without companions: it serves, downscaling large pictures
        ]
        served = len(hub.requests)
        offline = run(["-c", check, *sources], {**env, "HF_HUB_OFFLINE": "1"})
        assert offline.returncode == 0, offline.stderr
        assert offline.stdout == got.stdout and len(hub.requests) == served
