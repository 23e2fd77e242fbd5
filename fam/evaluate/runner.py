"""``evaluate_release``: every registered evaluation (:mod:`fam.evaluate.metrics`) of one release.

Inputs are the aligned originals, a release (``fam protect --out``), optionally the same inputs
released under a second key (unlinkability), further keys (key robustness, table 6) and a
release made without optimisation (the paper's naive FaceAnonyMixer). Outputs in ``out_dir``:
``metrics.json`` (flat ``{name: float}``) and ``metric_families.json`` (both
:class:`fam.artifacts.Metrics`), ``settings.json`` (the resolved settings), ``thresholds.json``,
``report.md``, ``plots/*.png`` and ``grid.png`` (faces: keep it out of git).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import cast

import torch

from fam.artifacts import Metrics, ResolvedSettings
from fam.artifacts.evaluation import Family
from fam.config import EvaluateConfig, Params
from fam.errors import InputError, KeyMaterialError
from fam.evaluate import metrics as metric_registry
from fam.evaluate import plots, report
from fam.evaluate import thresholds as thr
from fam.evaluate.attacks import KEY_ATTACKS, split_people
from fam.evaluate.context import EvaluationContext, EvaluationOutput, build_models
from fam.evaluate.images import (
    FaceImage,
    Release,
    data_hash,
    iter_image_batches,
    list_aligned,
    load_release,
    match_items,
    person_hash,
)
from fam.evaluate.scoring import embed_batches, labelled_pair_scores
from fam.faces.imageio import load_face
from fam.interfaces import FaceRecognizer, Generator, Inverter
from fam.io_utils import atomic_write_text
from fam.keys import Key
from fam.runtime import apply_threads, run_side_by_side


@dataclass
class EvaluationResult:
    out_dir: Path
    metrics: dict[str, float]  # as in metrics.json
    families: dict[str, Family]  # each metric's family, as in metric_families.json
    report_path: Path
    notes: list[str] = field(default_factory=list)  # what was not computed, and why


def build_recognizers(params: Params) -> list[FaceRecognizer]:
    """``evaluate.recognizers``, built on ``runtime.device`` unless an evaluator's options name a device."""
    from fam import recognizers
    from fam.models.factory import resolve_device

    device = resolve_device(params.runtime.device)
    return [
        recognizers.get(spec.name, **{"device": device, **dict(spec.options)})
        for spec in params.evaluate.recognizers
    ]


@dataclass(frozen=True)
class ThresholdSource:
    """Where the FMR thresholds come from: a saved ``thresholds.json``, or clean images to score."""

    root: Path  # the thresholds.json, or the aligned folder the images are taken from
    saved: dict[str, thr.EvaluatorThresholds] | None  # read from a thresholds.json
    images: tuple[FaceImage, ...]  # people not in the release (when computed in this run)


@dataclass(frozen=True)
class EvaluationPlan:
    """What :func:`evaluate_release` will do, decided before it writes anything (``--dry-run``)."""

    out_dir: Path
    params: Params
    release: Release
    release2: Release | None
    key_releases: tuple[Release, ...]
    naive: Release | None
    recognizers: tuple[FaceRecognizer, ...]
    thresholds: ThresholdSource
    score_size: int  # px every image set is scored at (0: each at its own size, evaluate.score_at)
    key: Key | None  # of the release; research keys come from its manifest
    models: tuple[Generator, Inverter] | None  # for the latent-replacement attack and the key face
    attacks: tuple[str, ...]  # attacks that will run (held-out people exist)

    def describe(self) -> dict[str, object]:
        rel, src = self.release, self.thresholds
        return {
            "command": "evaluate",
            "release": {"path": str(rel.root), "images": len(rel.items), "people": len(set(rel.persons))},
            "second_key_release": str(self.release2.root) if self.release2 else None,
            "key_releases": [str(r.root) for r in self.key_releases],
            "naive_release": str(self.naive.root) if self.naive else None,
            "thresholds": f"read from {src.root}"
            if src.saved is not None
            else f"computed from {len(src.images)} images of {len({i.person for i in src.images})} people "
            f"not in the release ({src.root})",
            "recognizers": [r.name for r in self.recognizers],
            "scored_at": f"{self.score_size} px" if self.score_size else "native sizes",
            "attacks": list(self.attacks),
            "key": {"fingerprint": self.key.fingerprint, "kind": self.key.kind} if self.key else None,
            "models": {"generator": self.models[0].generator_id, "inverter": type(self.models[1]).__name__}
            if self.models
            else None,
            "output": str(self.out_dir),
        }


def plan_evaluation(
    aligned_dir: str | Path,
    release_dir: str | Path,
    out_dir: str | Path,
    params: Params,
    *,
    release2_dir: str | Path | None = None,
    key_release_dirs: Sequence[str | Path] = (),
    naive_release_dir: str | Path | None = None,
    thresholds_from: str | Path | None = None,
    key: Key | None = None,
    recognizers: Sequence[FaceRecognizer] | None = None,
    models: tuple[Generator, Inverter] | None = None,
) -> EvaluationPlan:
    """Read the releases, check keys, thresholds and models as a run would; write nothing."""
    cfg = params.evaluate
    rel1 = load_release(release_dir)
    rel2 = load_release(release2_dir) if release2_dir is not None else None
    if rel2 is not None:
        match_items(rel1, rel2)
    extra = tuple(load_release(d) for d in key_release_dirs)
    naive = load_release(naive_release_dir) if naive_release_dir is not None else None
    recs = tuple(recognizers) if recognizers is not None else tuple(build_recognizers(params))
    score_size = rel1.resolution if cfg.score_at == "release" else 0
    for other in (rel2, naive, *extra):
        if other is not None and score_size and other.resolution != score_size:
            raise InputError(
                f"release {other.root} is at {other.resolution} px but {rel1.root} at {score_size} px; "
                "compare releases of one generator resolution"
            )
    source = _threshold_source(cfg, recs, aligned_dir, thresholds_from, set(rel1.persons), score_size)

    key = _resolve_key(rel1, key)
    train, held = split_people(rel1.persons, cfg.mapper.train_fraction)
    attacks = tuple(a for a in cfg.attacks if held and (a != "mapper" or train))
    with_key = [a for a in attacks if a in KEY_ATTACKS]
    if with_key and key is None:
        raise KeyMaterialError(
            f"the {' and '.join(with_key)} attack{'s need' if len(with_key) > 1 else ' needs'} the key "
            f"of {rel1.root} (a secret key): pass --key-file, or drop {', '.join(with_key)} from "
            "evaluate.attacks"
        )
    key_face = cfg.grid_rows > 0 and key is not None and any(a in KEY_ATTACKS for a in cfg.attacks)
    if models is None and (with_key or key_face):
        models = build_models(params, None)
    if with_key and models is not None:
        generator_id = models[0].generator_id
        if rel1.generator_id and rel1.generator_id != generator_id:
            raise InputError(
                f"release {rel1.root} was made with generator {rel1.generator_id}, params.models builds "
                f"{generator_id}; evaluate with the params the release was made with"
            )
    return EvaluationPlan(
        out_dir=Path(out_dir),
        params=params,
        release=rel1,
        release2=rel2,
        key_releases=extra,
        naive=naive,
        recognizers=recs,
        thresholds=source,
        score_size=score_size,
        key=key,
        models=models,
        attacks=attacks,
    )


def evaluate_release(
    aligned_dir: str | Path,  # `fam align` output holding the originals (and, by default, impostors)
    release_dir: str | Path,  # `fam protect --out` folder
    out_dir: str | Path,
    params: Params,
    *,
    release2_dir: str | Path | None = None,  # same inputs under a second key: unlinkability
    key_release_dirs: Sequence[str | Path] = (),  # more keys: PSR mean/std (table 6)
    naive_release_dir: str | Path | None = None,  # protected with optimise.steps = 0
    thresholds_from: str | Path | None = None,  # aligned folder of other people, or a thresholds.json
    key: Key | None = None,  # key of release 1 (attacks); research keys are read from the manifest
    recognizers: Sequence[FaceRecognizer] | None = None,  # default: built from evaluate.recognizers
    models: tuple[Generator, Inverter] | None = None,  # default: built from params.models
    progress: bool = True,
) -> EvaluationResult:
    plan = plan_evaluation(
        aligned_dir,
        release_dir,
        out_dir,
        params,
        release2_dir=release2_dir,
        key_release_dirs=key_release_dirs,
        naive_release_dir=naive_release_dir,
        thresholds_from=thresholds_from,
        key=key,
        recognizers=recognizers,
        models=models,
    )
    return run_evaluation(plan, progress=progress)


def run_evaluation(plan: EvaluationPlan, *, progress: bool = True) -> EvaluationResult:
    """Carry out a plan of :func:`plan_evaluation`: every registered evaluation, in report order."""
    params, cfg, out = plan.params, plan.params.evaluate, plan.out_dir
    (out / "plots").mkdir(parents=True, exist_ok=True)
    ResolvedSettings.of("evaluate", params).write(out)
    say = print if progress else (lambda *_a, **_k: None)
    rel1, names = plan.release, [r.name for r in plan.recognizers]
    notes: list[str] = []

    say(
        f"[evaluate] {len(rel1.items)} protected images of {len(set(rel1.persons))} people; "
        f"evaluators {names}"
    )
    lit = {
        n: s for n in names if cfg.literature_thresholds and (s := thr.literature(n, cfg.fmrs)) is not None
    }
    if cfg.literature_thresholds and len(lit) < len(names):
        notes.append(
            "literature thresholds exist only for "
            + ", ".join(thr.LITERATURE_THRESHOLDS)
            + f"; none used for {', '.join(n for n in names if n not in lit)}"
        )
    ctx = EvaluationContext(
        params=params,
        out_dir=out,
        release=rel1,
        release2=plan.release2,
        key_releases=plan.key_releases,
        naive=plan.naive,
        recognizers=plan.recognizers,
        thresholds={},  # computed below, beside the attacks, which do not read them
        literature=lit,
        key=plan.key,
        models=plan.models,
        score_size=plan.score_size,
        say=say,
    )
    evaluations = metric_registry.ordered()
    ctx, sets, early = _side_by_side(ctx, plan, [(n, e) for n, e in evaluations if e.standalone], say)
    thr.save(out / "thresholds.json", sets)
    values: dict[str, tuple[float, Family]] = {}
    sections: list[str] = []
    for name, evaluation in evaluations:
        started = time.perf_counter()
        result = early[name] if name in early else evaluation.run(ctx)
        if name not in early:
            say(f"[evaluate] {name}: {len(result.values)} metrics in {time.perf_counter() - started:.0f} s")
        taken = values.keys() & result.values.keys()
        if taken:
            raise ValueError(f"evaluation {name!r} computes metrics another one computed: {sorted(taken)}")
        values.update(result.values)
        sections += [result.section] if result.section else []
        notes += result.notes

    if cfg.grid_rows > 0:
        _grid(ctx)

    metrics = {k: v for k, (v, _) in values.items()}
    Metrics(metrics, {k: fam for k, (_, fam) in values.items()}).write(out)
    atomic_write_text(out / "report.md", _render(ctx, sets, lit, metrics, sections, notes))
    say(f"[evaluate] wrote {out / 'report.md'} and {len(metrics)} metrics")
    return EvaluationResult(
        out_dir=out,
        metrics=metrics,
        families={k: fam for k, (_, fam) in values.items()},
        report_path=out / "report.md",
        notes=notes,
    )


# --------------------------------------------------------------------------------------------


def _stable_order(items: Sequence[str]) -> list[int]:
    """Indices sorted by a hash of the text: a deterministic, content-defined 'random' order."""
    return sorted(range(len(items)), key=lambda i: hashlib.sha256(items[i].encode()).hexdigest())


def _threshold_source(
    cfg: EvaluateConfig,
    recs: Sequence[FaceRecognizer],
    aligned_dir: str | Path,
    source: str | Path | None,
    evaluated: set[str],
    score_size: int,
) -> ThresholdSource:
    evaluated_hashes = {person_hash(p) for p in evaluated}
    if source is not None and Path(source).is_file():
        sets = thr.load(source)
        missing = [r.name for r in recs if r.name not in sets]
        if missing:
            raise InputError(f"{source} holds no thresholds for {', '.join(missing)}; recompute them")
        other = sorted({sets[r.name].image_size for r in recs} - {score_size})
        if other:
            at = lambda s: f"{s} px" if s else "native sizes"  # noqa: E731
            raise InputError(
                f"{source} holds thresholds scored at {at(other[0])}, but this evaluation scores at "
                f"{at(score_size)} (evaluate.score_at); thresholds only hold at the resolution they were "
                "measured at: give --thresholds-from an aligned folder to recompute them"
            )
        thr.check_disjoint(sets, evaluated_hashes)
        return ThresholdSource(Path(source), {r.name: sets[r.name] for r in recs}, ())
    root = Path(source) if source is not None else Path(aligned_dir)
    pool = [i for i in list_aligned(root) if i.person not in evaluated]  # disjoint by construction
    order = _stable_order([str(i.path.relative_to(root)) for i in pool])
    chosen: list[FaceImage] = sorted(
        (pool[k] for k in order[: cfg.threshold_max_images]), key=lambda i: (i.person, i.path.name)
    )
    people = {i.person for i in chosen}
    if len(people) < 2:
        raise InputError(
            f"{root} holds {len(people)} people outside the release; thresholds need clean images of many "
            "other people: give an aligned folder of people not in the release, or a thresholds.json from "
            "an earlier evaluation (`fam evaluate --thresholds-from`, flow parameter thresholds_from)"
        )
    return ThresholdSource(root, None, tuple(chosen))


def _side_by_side(
    ctx: EvaluationContext,
    plan: EvaluationPlan,
    standalone: list[tuple[str, metric_registry.Evaluation]],
    say: Callable[..., None],
) -> tuple[EvaluationContext, dict[str, thr.EvaluatorThresholds], dict[str, EvaluationOutput]]:
    """The thresholds, the attacks and the standalone evaluations (FID): independent of each other
    and most of an evaluation's CPU time, run side by side on the physical cores with every op on
    one thread (:func:`fam.runtime.run_side_by_side`; measured in docs/evaluation.md). Returns the
    context with the thresholds and attacks in it, the thresholds and each standalone output."""
    from fam.evaluate.attacks import AttackResults, attack_tasks, collect_attacks
    from fam.models.factory import resolve_device

    runtime = plan.params.runtime
    workers = apply_threads(runtime.threads) if resolve_device(runtime.device).type == "cpu" else 1
    tasks: dict[str, Callable[[], object]] = dict(attack_tasks(ctx))  # the longest first
    tasks["thresholds"] = lambda: _thresholds(
        plan.params.evaluate, plan.recognizers, plan.thresholds, plan.score_size, say
    )
    # a standalone evaluation reads no threshold nor attack: the context as it is now serves it
    tasks |= {f"evaluation:{name}": partial(e.run, ctx) for name, e in standalone}
    taken: dict[str, float] = {}

    def timed(name: str, task: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            started = time.perf_counter()
            result = task()
            taken[name] = time.perf_counter() - started
            return result

        return run

    started = time.perf_counter()
    done = run_side_by_side({name: timed(name, task) for name, task in tasks.items()}, workers)
    say(
        f"[evaluate] {', '.join(f'{n} {taken[n]:.0f} s' for n in tasks)}: "
        f"{time.perf_counter() - started:.0f} s on {workers} thread{'s' if workers > 1 else ''} side by side"
    )
    sets = cast(dict[str, thr.EvaluatorThresholds], done.pop("thresholds"))
    early = {name: cast(EvaluationOutput, done.pop(f"evaluation:{name}")) for name, _ in standalone}
    ctx = replace(ctx, thresholds=sets)
    ctx.adopt_attacks(*collect_attacks(ctx, cast(list[AttackResults], list(done.values()))))
    return ctx, sets, early


def _thresholds(
    cfg: EvaluateConfig,
    recs: Sequence[FaceRecognizer],
    source: ThresholdSource,
    score_size: int,
    say: Callable[..., None],
) -> dict[str, thr.EvaluatorThresholds]:
    if source.saved is not None:
        return source.saved
    chosen, root = source.images, source.root
    people = sorted({i.person for i in chosen})
    say(f"[evaluate] thresholds from {len(chosen)} clean images of {len(people)} people not in the release")
    digest = data_hash(chosen, root)
    out = {}
    labels = [i.person for i in chosen]
    for rec in recs:
        emb = embed_batches(
            rec, iter_image_batches([i.path for i in chosen], cfg.embed_batch, score_size or None)
        )
        _, impostor = labelled_pair_scores(emb, labels, rec.similarity, chunk=cfg.score_chunk)
        out[rec.name] = thr.from_impostor_scores(
            rec.name,
            impostor,
            cfg.fmrs,
            n_images=len(chosen),
            people=tuple(person_hash(p) for p in people),
            data_hash=digest,
            min_pairs=cfg.min_impostor_pairs,
            image_size=score_size,
        )
    return out


def _resolve_key(rel: Release, key: Key | None) -> Key | None:
    from fam.keys import research_key

    if key is None and rel.key.kind == "research" and rel.key.research_seed is not None:
        key = research_key(rel.key.research_seed)
    if key is not None and rel.key.fingerprint != key.fingerprint:
        raise KeyMaterialError(
            f"the key given has fingerprint {key.fingerprint} but release {rel.root} was made with "
            f"{rel.key.fingerprint}; pass the key the release was made with"
        )
    return key


def _grid(ctx: EvaluationContext) -> None:
    """original | key face | protected | protected, key 2 | each attack's reconstruction."""
    cfg, rel1, rel2, s = ctx.cfg, ctx.release, ctx.release2, ctx.cfg.image_size
    recon = ctx.reconstructions() if cfg.attacks else {}
    if recon:
        rows = next(iter(recon.values())).indices[: cfg.grid_rows]
    else:
        rows = list(range(min(cfg.grid_rows, len(rel1.items))))
    cols: dict[str, torch.Tensor] = {
        "original": torch.stack([load_face(rel1.items[i].original, s) for i in rows]),
    }
    if ctx.key is not None and (any(a in KEY_ATTACKS for a in cfg.attacks) or ctx.models is not None):
        from fam.keys import key_latent

        generator, _ = build_models(ctx.params, ctx.models)
        with torch.no_grad():
            face = generator.synthesis(key_latent(ctx.key, generator, ctx.params.key.truncation_psi)).clamp(
                -1, 1
            )
        cols["key face"] = face.expand(len(rows), -1, -1, -1)
    cols["protected"] = torch.stack([load_face(rel1.items[i].protected, s) for i in rows])
    if rel2 is not None:
        where = {i.original.resolve(): i for i in rel2.items}
        second = [where.get(rel1.items[i].original.resolve()) for i in rows]
        if all(x is not None for x in second):
            cols["protected, key 2"] = torch.stack([load_face(x.protected, s) for x in second if x])
    for r in recon.values():
        pos = {j: n for n, j in enumerate(r.indices)}
        if all(i in pos for i in rows):
            cols[f"{r.name} attack"] = r.images[[pos[i] for i in rows]]
    plots.save_grid(cols, ctx.out_dir / "grid.png", cell=s)


def _render(
    ctx: EvaluationContext,
    sets: dict[str, thr.EvaluatorThresholds],
    lit: dict[str, thr.EvaluatorThresholds],
    m: dict[str, float],
    sections: list[str],
    notes: list[str],
) -> str:
    """report.md: header, thresholds, each evaluation's section in order, the grid, notes."""
    rel1, rel2, fmrs = ctx.release, ctx.release2, ctx.cfg.fmrs
    parts = [
        "# FaceAnonyMixer evaluation",
        "",
        f"- release: `{rel1.root}` ({int(m['n_items'])} images, {int(m['n_people'])} people), "
        f"key {rel1.key.fingerprint} ({rel1.key.kind}), "
        f"generator `{rel1.generator_id}`, params digest `{rel1.params_digest[:12]}`",
        f"- second key: `{rel2.root}` ({rel2.key.fingerprint})" if rel2 else "- second key: none",
        f"- evaluators: {', '.join(f'{n} ({k})' for n, k in ctx.kinds.items())}; white-box = the identity "
        "model the anonymity loss optimised against (its PSR flatters the method), black-box = a model the "
        "method never saw; a comparison matches when similarity >= threshold; PSR = share of comparisons "
        "that do not match (%)",
        f"- scored at {ctx.score_size} px: originals, threshold set, baselines, protected images and "
        "reconstructions are all resized to the release resolution before embedding (evaluate.score_at)"
        if ctx.score_size
        else "- scored at native sizes (evaluate.score_at: native): originals and the threshold set at their "
        f"aligned size, protected images at {rel1.resolution} px; lower resolution alone lowers genuine "
        "scores, so PSR is inflated (see the downsample baseline)",
        "",
        "## Thresholds",
        "",
        report.thresholds_table(sets, fmrs),
        "",
        "Quantile (1 - FMR) of impostor scores of clean images of people disjoint from the release.",
    ]
    if lit:
        parts += [
            "",
            "Literature table (comparison only, docs/reference.md, evaluation conventions):",
            "",
            report.thresholds_table(lit, fmrs),
        ]
    for section in sections:
        parts += ["", section]
    parts += [
        "",
        "## Image grid",
        "",
        "`grid.png` in this evaluation folder: original | key face | protected | protected under key 2 | "
        "each attack's reconstruction. It shows faces: it stays with the evaluation output and is never "
        "committed.",
    ]
    if notes:
        parts += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(parts) + "\n"
