"""What every evaluation reads: the plan's inputs and the embeddings they share, computed once.

An evaluation (:mod:`fam.evaluate.metrics`) is a function ``EvaluationContext -> EvaluationOutput``.
The context holds what :func:`~fam.evaluate.runner.plan_evaluation` decided (releases, evaluators,
thresholds, settings) and computes on first request, then caches, what several evaluations
need: the embeddings of the originals, of each release's protected images, of each baseline's
transform of the originals, the attacks' reconstructions and the labelled pair scores. Two
evaluations asking for the same embeddings get the same tensor; no image is embedded twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fam.artifacts.evaluation import Family
from fam.config import EvaluateConfig, Params
from fam.evaluate import thresholds as thr
from fam.evaluate.baselines import Transform
from fam.evaluate.images import Release, iter_image_batches, match_items, resize_batch
from fam.evaluate.scoring import embed_batches, labelled_pair_scores
from fam.interfaces import FaceRecognizer, Generator, Inverter
from fam.keys import Key

if TYPE_CHECKING:
    from fam.evaluate.attacks import Reconstruction

Say = Callable[..., None]


@dataclass
class EvaluationOutput:
    """One evaluation's contribution: metrics with their family, a report section, notes."""

    values: dict[str, tuple[float, Family]] = field(default_factory=dict)
    section: str = ""  # Markdown, starting with its "## " title; "" when there is nothing to show
    notes: list[str] = field(default_factory=list)  # what was not computed, and why

    def add(self, name: str, value: float, family: Family) -> None:
        if name in self.values:
            raise ValueError(f"metric {name!r} is computed twice by one evaluation")
        self.values[name] = (float(value), family)

    def value(self, name: str) -> float | None:
        return self.values[name][0] if name in self.values else None


@dataclass
class EvaluationContext:
    """The inputs of one evaluation run and the shared, lazily computed embeddings."""

    params: Params
    out_dir: Path
    release: Release  # release 1: every per-image metric is about its items
    release2: Release | None  # same inputs under a second key
    key_releases: tuple[Release, ...]  # more keys (table 6)
    naive: Release | None  # made without optimisation
    recognizers: tuple[FaceRecognizer, ...]
    thresholds: dict[str, thr.EvaluatorThresholds]  # per evaluator, at the FMRs of evaluate.fmrs
    literature: dict[str, thr.EvaluatorThresholds]  # the published table, where it has the evaluator
    key: Key | None
    models: tuple[Generator, Inverter] | None
    score_size: int = 0  # px every image set is loaded at before embedding (0: its own size)
    say: Say = print
    _embeddings: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict, repr=False)
    _pairs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    _reconstructions: dict[str, Reconstruction] | None = field(default=None, repr=False)
    _attack_notes: list[str] = field(default_factory=list, repr=False)

    @property
    def cfg(self) -> EvaluateConfig:
        return self.params.evaluate

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.recognizers]

    @property
    def kinds(self) -> dict[str, str]:
        """Each evaluator's relation to the method: white-box when it is the identity model the
        anonymity loss optimised against (its numbers flatter the method), else black-box."""
        white = self.params.models.identity.name
        return {n: "white-box" if n == white else "black-box" for n in self.names}

    @property
    def persons(self) -> list[str]:
        return self.release.persons

    @property
    def plots_dir(self) -> Path:
        return self.out_dir / "plots"

    # -- embeddings, each computed once per (evaluator, image set) --------------------------

    def _cached(self, rec: FaceRecognizer, what: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        key = (rec.name, what)
        if key not in self._embeddings:
            self._embeddings[key] = compute()
        return self._embeddings[key]

    def _embed_files(
        self, rec: FaceRecognizer, paths: list[Path], transform: Transform | None = None
    ) -> torch.Tensor:
        return embed_batches(rec, self.image_batches(paths, self.cfg.embed_batch, transform))

    def image_batches(
        self, paths: list[Path], batch: int, transform: Transform | None = None
    ) -> Iterator[torch.Tensor]:
        """Image batches at the scoring size (``transform`` after the resize)."""
        return iter_image_batches(paths, batch, self.score_size or None, transform)

    def originals(self, rec: FaceRecognizer) -> torch.Tensor:
        """``[N, D]`` embeddings of release 1's originals, in item order."""
        return self._cached(
            rec, "originals", lambda: self._embed_files(rec, [i.original for i in self.release.items])
        )

    def protected(self, rec: FaceRecognizer, release: Release | None = None) -> torch.Tensor:
        """``[N, D]`` embeddings of a release's protected images (default release 1), in its item order."""
        rel = release or self.release
        return self._cached(
            rec, f"protected:{rel.root}", lambda: self._embed_files(rec, [i.protected for i in rel.items])
        )

    def originals_for(self, rec: FaceRecognizer, release: Release) -> torch.Tensor:
        """Original embeddings for the items of ``release``, reusing release 1's where the input is shared."""
        index = {i.original.resolve(): n for n, i in enumerate(self.release.items)}
        rows = [index.get(i.original.resolve()) for i in release.items]
        if all(x is not None for x in rows):
            return self.originals(rec)[[int(x) for x in rows if x is not None]]
        return self._cached(
            rec,
            f"originals:{release.root}",
            lambda: self._embed_files(rec, [i.original for i in release.items]),
        )

    def baseline(self, rec: FaceRecognizer, name: str) -> torch.Tensor:
        """``[N, D]`` embeddings of release 1's originals after the baseline ``name``."""
        from fam.evaluate.baselines import baseline_transform

        transform = baseline_transform(name, self.cfg, self.release.resolution)
        return self._cached(
            rec,
            f"baseline:{name}",
            lambda: self._embed_files(rec, [i.original for i in self.release.items], transform),
        )

    def second_key(self, rec: FaceRecognizer) -> tuple[list[int], torch.Tensor]:
        """Release-1 indices matched in release 2, and release 2's protected embeddings in that order."""
        assert self.release2 is not None, "second_key() needs a second-key release"
        a_idx, b_idx = match_items(self.release, self.release2)
        return a_idx, self.protected(rec, self.release2)[b_idx]

    def reconstruction(self, rec: FaceRecognizer, attack: str) -> torch.Tensor:
        """``[n, D]`` embeddings of one attack's reconstructions."""
        images = self.reconstructions()[attack].images
        if self.score_size and images.shape[-1] != self.score_size:
            images = resize_batch(images, self.score_size)
        batch = self.cfg.embed_batch
        return self._cached(
            rec,
            f"attack:{attack}",
            lambda: embed_batches(rec, [images[i : i + batch] for i in range(0, len(images), batch)]),
        )

    # -- other shared results ---------------------------------------------------------------

    def labelled_pairs(self, rec: FaceRecognizer, what: str) -> tuple[np.ndarray, np.ndarray]:
        """(genuine, impostor) scores among release 1's people of its "originals", its "protected"
        images or "baseline:<name>" (the originals after that baseline)."""
        key = (rec.name, what)
        if key not in self._pairs:
            if what == "originals":
                emb = self.originals(rec)
            elif what == "protected":
                emb = self.protected(rec)
            elif what.startswith("baseline:"):
                emb = self.baseline(rec, what.removeprefix("baseline:"))
            else:
                raise ValueError(f"unknown image set {what!r}")
            self._pairs[key] = labelled_pair_scores(
                emb, self.persons, rec.similarity, chunk=self.cfg.score_chunk
            )
        return self._pairs[key]

    def reconstructions(self) -> dict[str, Reconstruction]:
        """Each runnable attack's reconstructions of held-out images (run once, on first request)."""
        if self._reconstructions is None:
            from fam.evaluate.attacks import run_attacks

            self._reconstructions, self._attack_notes = run_attacks(self)
        return self._reconstructions

    def adopt_attacks(self, reconstructions: dict[str, Reconstruction], notes: list[str]) -> None:
        """Take the attacks' results computed elsewhere (the runner runs them beside the thresholds)."""
        if self._reconstructions is not None:
            raise ValueError("the attacks of this evaluation have already run")
        self._reconstructions, self._attack_notes = reconstructions, list(notes)

    @property
    def attack_notes(self) -> list[str]:
        self.reconstructions()
        return list(self._attack_notes)


def build_models(params: Params, models: tuple[Generator, Inverter] | None) -> tuple[Generator, Inverter]:
    """``models`` if given, else the generator and inverter of ``params.models``; either way the
    generator runs ``runtime.modconv``'s path (``split`` on CPUs: the attacks call it hundreds of
    times, and the unprepared default is the slower ``fused``)."""
    from fam.runtime import resolve_engine

    engine = resolve_engine(params.runtime)
    if models is None:
        from fam.models.factory import BuildContext, build

        generator = build("generator", params.models.generator, BuildContext(engine.device))
        inverter = build("inverter", params.models.inverter, BuildContext(engine.device, generator=generator))
        models = generator, inverter
    engine.prepare(models[0])
    return models
