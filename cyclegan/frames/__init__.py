"""Datasets from video and photo folders (PyAV, numpy and Pillow only -- no torch here).

The entry points are :func:`cyclegan.frames.pipeline.build_from_videos` and
:func:`cyclegan.frames.pipeline.import_images`; ``cyclegan frames`` and ``cyclegan images``
are thin click wrappers around them (:mod:`cyclegan.frames.cli`).

Modules, one job each: ``video`` (PyAV sampling with keyframe seeking, rotation, truncation
checks), ``quality`` (brightness/contrast/sharpness scores and thresholds), ``dedup`` (dHash and
Hamming-distance de-duplication), ``geometry`` (letterbox, resize, crops), ``store`` (the dataset
folder, ``manifest.jsonl``, ``dataset.json``, train/test split), ``rgb`` (any image mode to RGB).
"""
