"""FaceAnonyMixer: cancelable faces by identity-consistent latent space mixing.

The library holds the method (models, keys, mixing, losses, optimisation, evaluation) and
nothing of Prefect, MLflow or DVC: those live in ``tasks/`` and ``flows/``.
"""

__version__ = "0.1.0"
