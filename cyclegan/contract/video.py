"""What reading and writing videos share (no PyAV import here): file extensions and the colour-tag guess."""

from __future__ import annotations

from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
        ".wmv", ".flv", ".3gp", ".ogv",
    }
)  # fmt: skip
# FFmpeg's AVColorSpace / AVColorPrimaries / AVColorRange values used when tagging what we write.
BT709 = 1
UNSPECIFIED = 2
MPEG_RANGE = 1


def is_video_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def untagged_colorspace(height: int) -> str:
    """The YUV matrix players assume for a stream without colour tags: BT.709 for HD, BT.601 for SD.

    The value is PyAV's ``src_colorspace`` name for ``VideoFrame.to_image`` / ``to_ndarray`` / ``reformat``.
    """
    return "ITU709" if height >= 720 else "ITU601"
