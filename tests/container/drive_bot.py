"""Drive the bot *container* through one real round trip (run by smoke.sh, after the image is built).

Starts the fake Bot API server on 127.0.0.1, runs the image with ``--network host`` pointed at it,
sends /start and a PNG image file, and checks: the reply is the stylized image (equal to what the
host's Stylizer computes from the same model), the container's HEALTHCHECK passes, SIGTERM stops it
with exit code 0, and its logs never show the token. Needs podman configured (smoke.sh exports
CONTAINERS_CONF / CONTAINERS_STORAGE_CONF).
"""

from __future__ import annotations

import argparse
import io
import secrets
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent))

from fake_bot_api import FakeBotApi  # noqa: E402
from onnx_models import make_test_model  # noqa: E402

from serve.stylizer import Stylizer  # noqa: E402


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout)


def say(message: str) -> None:
    print(f"[drive_bot] {message}", file=sys.stderr, flush=True)


def test_image() -> bytes:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(72, 96, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def wait_healthy(name: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        result = podman("healthcheck", "run", name, check=False)
        last = (result.stdout + result.stderr).strip()
        if result.returncode == 0:
            return last or "healthy"
        time.sleep(1)
    raise AssertionError(f"HEALTHCHECK did not pass within {timeout:.0f}s: {last}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True)
    parser.add_argument(
        "--models", type=Path, required=True, help="folder to write the test model into (mounted at /models)"
    )
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args()

    model = make_test_model(args.models / "smoke_style.onnx", kind="conv", seed=3)
    model.chmod(0o644)
    args.models.chmod(0o755)
    token = f"987654:SMOKE-{secrets.token_hex(12)}"
    name = f"cyclegan-bot-smoke-{secrets.token_hex(4)}"
    user = 31337
    image_bytes = test_image()

    with FakeBotApi(token) as api:
        podman(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "-e",
            f"BOT_TOKEN={token}",
            "-e",
            f"BOT_API_BASE_URL={api.base_url}",
            "-e",
            f"BOT_API_FILE_URL={api.base_file_url}",
            "-e",
            "BOT_POLL_TIMEOUT=2",
            "-e",
            "BOT_HEARTBEAT_SECONDS=2",
            "-v",
            f"{args.models.resolve()}:/models:ro",
            args.image,
        )
        try:
            api.wait_for(lambda calls: any(c.method == "getUpdates" for c in calls), timeout=args.timeout)
            say("the container is polling the fake Bot API")
            api.push_updates(
                api.text_message(user, "/start"),
                api.document_message(user, image_bytes, file_name="smoke.png", mime_type="image/png"),
            )
            replies = api.wait_for_replies(user, count=2, timeout=args.timeout)
            methods = sorted(call.method for call in replies)
            assert methods == ["sendDocument", "sendMessage"], f"unexpected replies: {methods}"
            document = next(call for call in replies if call.method == "sendDocument").upload("document")
            got = np.asarray(Image.open(io.BytesIO(document.data)).convert("RGB"), dtype=np.int16)
            want = np.asarray(
                Stylizer(model).stylize(Image.open(io.BytesIO(image_bytes)).convert("RGB")), dtype=np.int16
            )
            assert got.shape == want.shape, f"stylized size {got.shape} != expected {want.shape}"
            worst = int(np.abs(got - want).max())
            assert worst <= 1, f"container output differs from the host Stylizer by up to {worst}"
            say(f"round trip ok: {document.filename} {got.shape[1]}x{got.shape[0]}, max diff to host Stylizer {worst}")

            say(f"healthcheck: {wait_healthy(name, timeout=30)}")
            podman("stop", "--time", "30", name, timeout=60)
            exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            logs = podman("logs", name, check=False)
            output = logs.stdout + logs.stderr
            assert exit_code == "0", f"container exit code {exit_code} after SIGTERM"
            assert "event=stylized" in output and "event=stopped" in output, "expected log events missing"
            assert token not in output and token.split(":")[1] not in output, "the token appears in the logs"
            say("SIGTERM: stopped cleanly (exit 0); token absent from the logs")
        except BaseException:
            logs = podman("logs", name, check=False)
            say("container logs:\n" + (logs.stdout + logs.stderr)[-6000:].replace(token, "<token>"))
            raise
        finally:
            podman("rm", "--force", name, check=False)


if __name__ == "__main__":
    main()
