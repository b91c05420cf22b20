"""Datasets from video and photo folders (PyAV, numpy and Pillow only -- no torch here).

The entry points are :func:`cyclegan.frames.pipeline.build_from_videos` and
:func:`cyclegan.frames.pipeline.import_images`; ``cyclegan frames`` and ``cyclegan images``
are thin click wrappers around them (:mod:`cyclegan.frames.cli`).
"""
