"""Sharing models on the Hugging Face Hub: ``cyclegan push`` (what goes into the repository, its model card).

Downloading is serving's business (``hf://`` model paths, :mod:`serve.hub`); both use ``huggingface_hub``'s
own calls and cache.
"""
