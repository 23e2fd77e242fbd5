"""Training the embedded default models: a compact face StyleGAN2 prior and its W+ encoder.

Modules: ``splits`` (who may be trained on), ``pack`` (the compact data file the device machine
receives), ``data`` (batches from it), ``discriminator``, ``augment`` (DiffAugment), ``losses``,
``checkpoint`` (atomic, resumable state), ``prior`` and ``encoder`` (the two loops).
"""
