"""Bad input and faults for the web page's handlers (serve/web.py): names in any script, a full or read-only
result cache, decompression bombs. Through :class:`StylePage`, as tests/test_web.py does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason="the web page needs the `web` extra (gradio)")

from faults import leftovers, tmpfs  # noqa: E402
from media import texture  # noqa: E402
from onnx_models import make_test_model  # noqa: E402
from PIL import Image  # noqa: E402
from test_faults_export import png_header  # noqa: E402

from serve.web import SERVER_STORAGE, StylePage, WebSettings, load_styles  # noqa: E402


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> StylePage:
    folder = tmp_path_factory.mktemp("models")
    make_test_model(folder / "cartoon.onnx", kind="permute", max_side=256)
    settings = WebSettings(models=(str(folder),), max_video_seconds=3)
    return StylePage(load_styles(settings), settings)


def upload(path: Path, size: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(texture(size, size, 4)).save(path)
    return path


def test_an_upload_named_in_any_script_keeps_a_readable_result_name(
    page: StylePage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    _, result = page.stylize_photo(str(upload(tmp_path / "фото с пробелом.png")), "cartoon")
    assert Path(result.value["path"]).name == "фото_с_пробелом_cartoon.png"


@pytest.mark.parametrize("read_only", [False, True])
def test_a_full_or_read_only_result_cache_is_a_message(
    page: StylePage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool
) -> None:
    photo = upload(tmp_path / "big.png", size=300)  # ~270 kB of PNG: more than the 64 kB disk
    with tmpfs(tmp_path / "cache", "64k", read_only=read_only) as cache:
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
        with pytest.raises(gr.Error) as info:
            page.stylize_photo(str(photo), "cartoon")
        assert SERVER_STORAGE in str(info.value)
        if not read_only:
            assert leftovers(cache) == []


def test_a_gigapixel_upload_is_refused_before_decoding(page: StylePage, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(32768, 32768))
    with pytest.raises(gr.Error, match="bomb.png: image has too many pixels"):
        page.stylize_photo(str(bomb), "cartoon")
    assert np.asarray(page.open(str(upload(tmp_path / "ok.png")))).shape == (40, 40, 3)
