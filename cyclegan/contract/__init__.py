"""What the stages share, defined once: every stage (frames, training, export, serving, tests) imports it.

Torch-free (ruff bans torch here, see ``ruff.toml``), so the slim serving image can use it. One module per concept:

* :mod:`~cyclegan.contract.errors` -- :class:`ToolkitError`, the base of every error the toolkit raises on purpose,
  and the one place where command lines turn it into a message and an exit code;
* :mod:`~cyclegan.contract.card` -- :class:`GeneratorCard`, the description that travels with a generator from
  training to serving, and the architecture vocabulary (generator kinds, norms, upsampling);
* :mod:`~cyclegan.contract.sizes` -- size multiples and minimum sides per generator, rounding up and the padding
  convention;
* :mod:`~cyclegan.contract.pixels` -- the pixel convention (uint8 RGB <-> the model's [-1, 1] space) for numpy;
  the torch twins are in :mod:`cyclegan.models.pixels`;
* :mod:`~cyclegan.contract.images` -- opening untrusted images (EXIF, every mode to RGB, pixel limits), saving
  atomically, the image extensions;
* :mod:`~cyclegan.contract.video` -- video extensions and the colour-tag guess for untagged streams;
* :mod:`~cyclegan.contract.layout` -- the dataset folder layout (``trainA``/``testB``/``dataset.json``);
* :mod:`~cyclegan.contract.runtime` -- ONNX tensor names, onnxruntime session options, CPU counting.
"""
