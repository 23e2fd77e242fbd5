"""The evaluation suite of the paper's section 4.

Modules, one concern each:

* :mod:`~fam.evaluate.images` - reading aligned inputs and releases, batched image loading.
* :mod:`~fam.evaluate.scoring` - batched embedding, chunked similarity, labelled pair scores.
* :mod:`~fam.evaluate.thresholds` - FR thresholds at fixed FMRs from clean impostor scores.
* :mod:`~fam.evaluate.verification` - PSR, ROC, EER, AUC.
* :mod:`~fam.evaluate.unlinkability` - Gomez-Barrero D(s) and D_sys.
* :mod:`~fam.evaluate.fid` - Frechet Inception Distance with the packaged TF-port Inception.
* :mod:`~fam.evaluate.attacks` - latent replacement and the learned mapper (registry ``ATTACKS``).
* :mod:`~fam.evaluate.baselines` - blur and pixelation (registry ``BASELINES``).
* :mod:`~fam.evaluate.plots` / :mod:`~fam.evaluate.report` - figures and the Markdown report.
* :mod:`~fam.evaluate.context` - the inputs of one run and the embeddings its evaluations share.
* :mod:`~fam.evaluate.metrics` - the registry of evaluations, one module per table of the report.
* :mod:`~fam.evaluate.runner` - :func:`evaluate_release`: plan, then every registered evaluation in order.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate_release"]


def evaluate_release(*args: Any, **kwargs: Any) -> Any:
    """See :func:`fam.evaluate.runner.evaluate_release` (imported lazily: it pulls in torch models)."""
    from fam.evaluate.runner import evaluate_release as _impl

    return _impl(*args, **kwargs)
