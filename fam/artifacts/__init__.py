"""The files that pass between stages, one typed class each.

Each class owns its file name, its format string (or, for CSV, its columns), its fields,
``read(folder_or_path)`` (checks the format; a missing, malformed or foreign file is an
:class:`~fam.errors.InputError` naming the file and the command that writes it) and
``write(folder)`` (atomic, through :mod:`fam.io_utils`). Every writer and reader uses them:
the library, the validation suites, the lineage, the flows and the tests' fixtures.

========================================  =========================  ==========================
file                                      class                      written by
========================================  =========================  ==========================
``ALIGNED/manifest.csv``                  :class:`AlignManifest`     ``fam align``
``ALIGNED/align_summary.json``            :class:`AlignSummary`      ``fam align``
``INV/inversions.pt``                     :class:`Inversions`        ``fam invert``
``OUT/manifest.json`` (private)           :class:`ProtectManifest`   ``fam protect``
``OUT/release/release.json`` (public)     :class:`ReleaseIndex`      ``fam protect``
``OUT/loss_curve.csv``                     :class:`LossCurve`         ``fam protect``
``OUT/rejects.json``, ``INV/rejects.json``  :class:`Rejects`         ``fam protect``, ``fam invert``
``EVAL/metrics.json``                     :class:`Metrics`           ``fam evaluate``
``EVAL/metric_families.json``             :class:`Metrics`           ``fam evaluate``
``<any of the above>/settings.json``      :class:`ResolvedSettings`  each of them
========================================  =========================  ==========================

``EVAL/thresholds.json`` is owned by :mod:`fam.evaluate.thresholds` (format, typed record,
``save``/``load``), next to the code that estimates the thresholds.
"""

from fam.artifacts.align import AlignManifest, AlignRow, AlignSummary
from fam.artifacts.evaluation import Metrics
from fam.artifacts.inversions import Inversions
from fam.artifacts.loss_curve import LossCurve
from fam.artifacts.protect import KeyIdentity, ProtectItem, ProtectManifest, ReleaseFile, ReleaseIndex
from fam.artifacts.rejects import Reject, Rejects
from fam.artifacts.settings import ResolvedSettings

__all__ = [
    "AlignManifest",
    "AlignRow",
    "AlignSummary",
    "Inversions",
    "KeyIdentity",
    "LossCurve",
    "Metrics",
    "ProtectItem",
    "ProtectManifest",
    "Reject",
    "Rejects",
    "ReleaseFile",
    "ReleaseIndex",
    "ResolvedSettings",
]
