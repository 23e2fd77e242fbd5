"""Protect a data set: aligned faces + key -> protected release + private manifest.

Output layout (``OUT``)::

    release/                      the publishable part: no real names, no original pixels,
      images/<pseudonym>/NNNN.png  no latents of originals, no key material
      release.json                key fingerprint and kind, params digest, code version, file hashes
    manifest.json                 PRIVATE lineage: input -> output, person, losses, ...
    loss_curve.csv                mean loss terms after each optimisation step (no names)
    settings.json                 the resolved settings of the run (private: names local paths)
    latents/<pseudonym>.pt        protected latents z_p* (private)
    rejects.json                  inputs that could not be used, each with its reason
    .fam/run.json, .fam/persons/  progress state for --resume; run.json also marks the folder as
                                  this command's (--force replaces nothing else)
    .fam/curves/<pseudonym>.csv   each person's loss curve (averaged into loss_curve.csv)
    .fam/lock                     held while a run writes: a second run on OUT is refused

The files' formats are owned by :mod:`fam.artifacts`.

Person folders in the release are key-dependent pseudonyms and files are numbered, because
LFW-style names and file names would re-identify the very people the release protects.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from fam.artifacts import (
    Inversions,
    KeyIdentity,
    LossCurve,
    ProtectItem,
    ProtectManifest,
    Reject,
    Rejects,
    ReleaseFile,
    ReleaseIndex,
    ResolvedSettings,
)
from fam.augment import augmented_views
from fam.calibration import resolve_margin
from fam.config import Params
from fam.dataset import Person, scan_aligned, validate_people
from fam.errors import InputError, KeyMaterialError, OutputExistsError
from fam.faces.imageio import load_face, png_bytes, to_uint8
from fam.groups import plan_batches
from fam.io_utils import atomic_torch_save, atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file
from fam.keys import Key, key_latent
from fam.layers import LayerGroups, resolve_groups_for
from fam.models.factory import ModelBundle, build_models
from fam.optimise import ViewBatch, protect_views
from fam.outdir import STATE_DIR, entries, make_dir, output_lock, remove_stale_temps
from fam.provenance import code_version
from fam.runtime import Engine, resolve_engine

# What --force may replace: this command's outputs, identified by its run record (the marker).
_OWNED = (
    "release",
    "latents",
    ProtectManifest.FILENAME,
    Rejects.FILENAME,
    ResolvedSettings.FILENAME,
    LossCurve.FILENAME,
)
_RUN_RECORD = "run.json"  # in OUT/.fam/: the manifest of the run without its items (what --resume checks)
_PERSONS = "persons"  # in OUT/.fam/: one record per finished person (its items)
_CURVES = "curves"  # in OUT/.fam/: one loss curve per finished person (written before its record)


@dataclass(frozen=True)
class ProtectSummary:
    out_dir: Path
    manifest_path: Path
    n_images: int  # protected images written (this run and earlier resumed runs)
    n_persons: int
    n_rejected: int
    n_resumed_persons: int  # persons skipped because a previous run finished them
    key_fingerprint: str
    key_kind: str
    seconds: float
    n_redone_persons: int = 0  # finished earlier, but their input files changed: protected again
    n_removed_persons: int = 0  # finished earlier, no longer in the input: their outputs removed
    n_stale_files: int = 0  # temporary files of an interrupted run, removed


def check_paths(input_dir: Path, out_dir: Path) -> None:
    """Outputs never go inside the input, and the input is never inside the output."""
    inp, out = input_dir.resolve(), out_dir.resolve()
    if out == inp or inp in out.parents:
        raise InputError(f"output {out} is inside the input {inp}; choose an output folder elsewhere")
    if out in inp.parents:
        raise InputError(f"input {inp} is inside the output {out}; choose an output folder elsewhere")


def check_out_dir(out_dir: Path, run: ProtectManifest, resume: bool, force: bool) -> None:
    """Check that ``out_dir`` is new, or this command's output that may be resumed or replaced."""
    if resume and force:
        raise InputError("choose either --resume (skip finished work) or --force (redo everything), not both")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} exists and is not a folder")
    if not entries(out_dir):
        return
    previous = out_dir / STATE_DIR / _RUN_RECORD
    if not previous.is_file():
        raise OutputExistsError(
            f"{out_dir} is not empty and holds no `fam protect` output ({STATE_DIR}/{_RUN_RECORD} is "
            "missing), so neither --resume nor --force may touch it; choose another --out"
        )
    if force:
        return
    if not resume:
        raise OutputExistsError(
            f"{out_dir} already holds output; pass --resume to skip finished persons or --force to redo all"
        )
    old, new = ProtectManifest.read(previous).run_fields(), run.run_fields()
    for field in new:
        if old[field] != new[field]:
            raise OutputExistsError(
                f"{out_dir} was started with a different {field.replace('_', ' ')}; "
                "resume with the same key and settings, or use --force / another --out"
            )


@dataclass(frozen=True)
class OutputState:
    """How a resumed run reconciles ``OUT`` with the input it is given now."""

    done: frozenset[str] = frozenset()  # finished, inputs unchanged: skipped
    changed: tuple[str, ...] = ()  # finished, but files were added, removed or edited: redone
    gone: tuple[str, ...] = ()  # finished, no longer in the input: outputs removed


def output_state(
    out_dir: Path, people: Sequence[Person], pseudonyms: Sequence[str], present: set[str]
) -> OutputState:
    """Compare the person records in ``out_dir`` with the input (file list and content hashes).

    ``people``/``pseudonyms``: the persons of this run; ``present``: the pseudonyms of every
    person the input holds now (a run on a subset must not remove the others' outputs).
    """
    records = {p.stem: p for p in (out_dir / STATE_DIR / _PERSONS).glob("*.json")}
    done, changed = set(), []
    for pseudonym, person in zip(pseudonyms, people, strict=True):
        if pseudonym not in records:
            continue
        items = json.loads(records[pseudonym].read_text())
        recorded = [(it["input"], it.get("input_sha256", "")) for it in items]
        if recorded == [(str(f.path), sha256_file(f.path)) for f in person.files]:
            done.add(pseudonym)
        else:
            changed.append(pseudonym)
    gone = sorted(set(records) - present)
    return OutputState(frozenset(done), tuple(changed), tuple(gone))


def _remove_person(out_dir: Path, pseudonym: str) -> None:
    """Delete one person's outputs; the record goes last, so an interrupted removal is redone."""
    shutil.rmtree(out_dir / ReleaseIndex.FOLDER / "images" / pseudonym, ignore_errors=True)
    (out_dir / "latents" / f"{pseudonym}.pt").unlink(missing_ok=True)
    (out_dir / STATE_DIR / _CURVES / f"{pseudonym}.csv").unlink(missing_ok=True)
    (out_dir / STATE_DIR / _PERSONS / f"{pseudonym}.json").unlink(missing_ok=True)


def prepare_out_dir(out_dir: Path, run: ProtectManifest, force: bool) -> None:
    """Make ``out_dir`` ready for a run that :func:`check_out_dir` accepted."""
    if force:
        state = [out_dir / STATE_DIR / n for n in (_RUN_RECORD, _PERSONS, _CURVES)]  # the lock stays
        for target in [out_dir / n for n in _OWNED] + state:
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    make_dir(out_dir / STATE_DIR / _PERSONS)
    make_dir(out_dir / STATE_DIR / _CURVES)
    run.write(out_dir / STATE_DIR, _RUN_RECORD)


def load_inversions(path: Path, generator_id: str) -> dict[str, torch.Tensor]:
    """``fam invert``'s latents by aligned image path; refuses those of another generator."""
    inv = Inversions.read(path)
    if inv.generator_id != generator_id:
        raise InputError(
            f"{path} was inverted with another generator ({inv.generator_id}); "
            "re-run `fam invert` with these settings"
        )
    return inv.table()


@dataclass(frozen=True)
class ProtectPlan:
    """What :func:`protect_dataset` will do, decided before it writes anything (``--dry-run``)."""

    aligned_dir: Path
    out_dir: Path
    key: Key  # its repr shows the fingerprint only
    params: Params
    people: list[Person]
    rejects: list[Reject]
    pseudonyms: list[str]
    state: OutputState  # what --resume skips, redoes and removes (as found when planning)
    present: set[str]  # pseudonyms of every person the input holds (not only those of this run)
    run: ProtectManifest  # without items: recorded in .fam/run.json, then in the manifest; never the key
    inversions: dict[str, torch.Tensor]  # aligned path -> W+ from `fam invert` (empty: invert here)
    inversions_path: Path | None
    engine: Engine
    models: ModelBundle
    groups: LayerGroups  # W+ layer groups of this generator
    resume: bool
    force: bool
    shared: bool  # one of several shards writing disjoint persons into out_dir (Prefect)

    def describe(self) -> dict[str, object]:
        n_images = sum(len(p.files) for p in self.people)
        reused = sum(str(f.path) in self.inversions for p in self.people for f in p.files)
        return {
            "command": "protect",
            "input": str(self.aligned_dir),
            "output": str(self.out_dir),
            "output_state": "resume" if self.resume else "force" if self.force else "new",
            "key": self.run.key.to_dict(),
            "persons": len(self.people),
            "images": n_images,
            "rejected_inputs": len(self.rejects),
            "persons_finished_by_previous_run": len(self.state.done),
            "persons_with_changed_inputs": len(self.state.changed),
            "persons_no_longer_in_input": len(self.state.gone),
            "inversions": str(self.inversions_path) if self.inversions_path else "computed in this run",
            "inversions_reused": reused,
            "models": _describe_models(self.models),
            "engine": self.engine.describe(),
            "params_digest": self.run.params_digest,
            "anonymity_margin": self.params.optimise.margin,
            "optimised_layers": list(self.params.mixing.optimise_layers),
        }


def _describe_models(models: ModelBundle) -> dict[str, str]:
    return {
        "generator": models.generator.generator_id,
        "inverter": type(models.inverter).__name__,
        "identity": type(models.identity).__name__,
        "attribute": type(models.attribute).__name__,
    }


def plan_protect(
    aligned_dir: str | Path,
    out_dir: str | Path,
    key: Key,
    params: Params,
    *,
    inversions: str | Path | None = None,
    persons: Sequence[str] | None = None,
    resume: bool = False,
    force: bool = False,
    shared: bool = False,
    models: ModelBundle | None = None,
) -> ProtectPlan:
    """Check the key, settings, models, inputs and output folder as a run would; write nothing.

    ``resume``: keep finished persons whose input files are unchanged, protect the others again
    and remove the outputs of persons the input no longer holds. ``force``: replace this
    command's earlier output (never a folder it did not write). ``shared``: several runs (Prefect
    shards of one flow) write disjoint ``persons`` into ``out_dir`` at once.
    """
    if key.kind == "research" and not params.release.allow_research_keys:
        raise KeyMaterialError(
            "a research key (plain integer seed) is insecure and cannot protect a release; use a key file "
            "(`fam key new`), or set release.allow_research_keys: true for research runs"
        )
    aligned_dir, out_dir = Path(aligned_dir).resolve(), Path(out_dir).resolve()
    check_paths(aligned_dir, out_dir)
    engine = resolve_engine(params.runtime)
    models = models or build_models(params.models, engine.device)
    gen = models.generator
    params = resolve_margin(params, gen.resolution)
    groups = resolve_groups_for(params.layers, gen)

    people, rejects = scan_aligned(aligned_dir, persons)
    people, more = validate_people(people, gen.resolution)
    run = ProtectManifest(
        code_version=code_version().version,
        params_digest=params.method_digest(),
        generator_id=gen.generator_id,
        aligned_dir=str(aligned_dir),
        # Results are reproducible per precision and path (float rounding differs between them).
        precision=engine.precision,
        modconv=engine.modconv,
        key=KeyIdentity.from_dict(key.describe()),
    )
    check_out_dir(out_dir, run, resume, force)
    pseudonyms = [key.person_pseudonym(p.name) for p in people]
    present = _present_pseudonyms(aligned_dir, key, people if persons is None else None)
    state = output_state(out_dir, people, pseudonyms, present) if resume else OutputState()
    inv_path = Path(inversions) if inversions is not None else None
    inv_table = load_inversions(inv_path, gen.generator_id) if inv_path is not None else {}
    return ProtectPlan(
        aligned_dir=aligned_dir,
        out_dir=out_dir,
        key=key,
        params=params,
        people=people,
        rejects=rejects + more,
        pseudonyms=pseudonyms,
        state=state,
        present=present,
        run=run,
        inversions=inv_table,
        inversions_path=inv_path,
        engine=engine,
        models=models,
        groups=groups,
        resume=resume,
        force=force,
        shared=shared,
    )


def _present_pseudonyms(aligned_dir: Path, key: Key, people: Sequence[Person] | None) -> set[str]:
    """Pseudonyms of every person in the input (``people`` when they are all of them)."""
    if people is None:
        people, _ = scan_aligned(aligned_dir)
    return {key.person_pseudonym(p.name) for p in people}


def protect_dataset(
    aligned_dir: str | Path,
    out_dir: str | Path,
    key: Key,
    params: Params,
    *,
    inversions: str | Path | None = None,
    persons: Sequence[str] | None = None,
    resume: bool = False,
    force: bool = False,
    shared: bool = False,
    progress: bool = True,
    on_person: PersonDone | None = None,
    models: ModelBundle | None = None,
) -> ProtectSummary:
    """Protect every person under ``aligned_dir`` with ``key``; see :func:`plan_protect`.

    ``on_person(pseudonym, finished, total)`` is called as each person's outputs are written
    (orchestrators log progress with it; never a real name).
    """
    plan = plan_protect(
        aligned_dir,
        out_dir,
        key,
        params,
        inversions=inversions,
        persons=persons,
        resume=resume,
        force=force,
        shared=shared,
        models=models,
    )
    return run_protect(plan, progress=progress, on_person=on_person)


PersonDone = Callable[[str, int, int], None]  # (pseudonym, persons finished, persons in the run)


def run_protect(
    plan: ProtectPlan, *, progress: bool = True, on_person: PersonDone | None = None
) -> ProtectSummary:
    """Carry out a plan of :func:`plan_protect`, holding the output folder's lock."""
    with output_lock(plan.out_dir, "protect", shared=plan.shared):
        return _run_locked(plan, progress, on_person)


def _run_locked(plan: ProtectPlan, progress: bool, on_person: PersonDone | None) -> ProtectSummary:
    start = time.perf_counter()
    key, params, out_dir, engine, models = plan.key, plan.params, plan.out_dir, plan.engine, plan.models
    people, rejects, run = plan.people, plan.rejects, plan.run
    pseudonyms, groups, inv_table = plan.pseudonyms, plan.groups, plan.inversions
    device, gen = engine.device, models.generator
    # Checked again under the lock: another run may have written here since the plan was made.
    check_out_dir(out_dir, run, plan.resume, plan.force)
    state = output_state(out_dir, people, pseudonyms, plan.present) if plan.resume else OutputState()
    done = state.done
    engine.prepare(gen)
    prepare_out_dir(out_dir, run, plan.force)
    # A shard must not delete another shard's temporary file between its write and its rename.
    stale = [] if plan.shared else remove_stale_temps(out_dir)
    for pseudonym in state.changed + state.gone:
        _remove_person(out_dir, pseudonym)
    ResolvedSettings.of(
        "protect", params, device=str(device), precision=engine.precision, modconv=engine.modconv
    ).write(out_dir)
    w_key = key_latent(key, gen, params.key.truncation_psi)

    n_aug = params.groups.single_image_views
    counts = [len(p.files) if len(p.files) > 1 else 1 + n_aug for p in people]
    batches = plan_batches(counts, params.groups.max_batch_views, pack=params.groups.pack_persons)
    pending: dict[int, list[tuple[int, dict]]] = {}
    anchors: dict[int, list[torch.Tensor]] = {}
    curves: dict[int, list[torch.Tensor]] = {}  # per group: its curve in each batch (chunk) it spans
    # The bar counts finished persons; its postfix moves with every optimisation step, because
    # one batch (one person by default) takes minutes with the real models.
    todo = [b for b in batches if not all(pseudonyms[g] in done for g in b.groups)]
    n_done = sum(p in done for p in pseudonyms)
    bar = tqdm(total=len(people), initial=n_done, desc="protect", unit="person", disable=not progress)
    finished = n_done  # tqdm stops counting when disabled
    for number, batch in enumerate(todo, start=1):
        where = f"batch {number}/{len(todo)}"
        if progress:
            bar.set_postfix_str(f"{where}, inverting")
        images, w_real = _views(batch.slots, people, gen.resolution, inv_table, models, params, device)
        local = {g: i for i, g in enumerate(batch.groups)}
        group_ids = torch.tensor([local[s.group] for s in batch.slots], device=device)
        anc, anc_ids = None, None
        if batch.chunk > 0:
            g = batch.groups[0]
            anc = torch.cat(anchors[g]).to(device)
            anc_ids = torch.zeros(anc.shape[0], dtype=torch.long, device=device)
        result = protect_views(
            ViewBatch(images, w_real, group_ids, len(local), anc, anc_ids),
            w_key,
            gen,
            models.identity,
            models.attribute,
            groups,
            params.mixing,
            params.optimise,
            engine,
            on_step=_step_postfix(bar, where, params.optimise.steps) if progress else None,
        )
        for g, lg in local.items():
            curves.setdefault(g, []).append(result.curve[:, lg, :])
        for row, slot in enumerate(batch.slots):
            lg = local[slot.group]
            if counts[slot.group] > params.groups.max_batch_views:
                anchors.setdefault(slot.group, []).append(result.identity[row : row + 1].detach().cpu())
            pending.setdefault(slot.group, []).append(
                (
                    slot.view,
                    {
                        "ws": result.ws[row].detach().cpu(),
                        "image": result.images[row].detach().cpu(),
                        "losses": {
                            "anonymity_cos": float(result.view_anonymity_cos[row]),
                            "attribute": float(result.view_attribute[row]),
                            "group_anonymity": float(result.terms.anonymity[lg]),
                            "group_consistency": float(result.terms.consistency[lg]),
                            "group_attribute": float(result.terms.attribute[lg]),
                            "group_total": float(result.terms.total_per_group[lg]),
                            "group_total_naive": float(result.initial_terms.total_per_group[lg]),
                        },
                    },
                )
            )
        for g in batch.groups:
            if len(pending.get(g, [])) == counts[g] and pseudonyms[g] not in done:
                curve = torch.stack(curves.pop(g)).mean(0)  # a large group's chunks, averaged
                _write_person(
                    out_dir, people[g], pseudonyms[g], sorted(pending.pop(g), key=lambda t: t[0]), curve
                )
                anchors.pop(g, None)
                bar.update(1)
                finished += 1
                if on_person is not None:
                    on_person(pseudonyms[g], finished, len(people))
    bar.close()

    manifest = _assemble(out_dir, run, pseudonyms, rejects)
    seconds = time.perf_counter() - start
    return ProtectSummary(
        out_dir=out_dir,
        manifest_path=out_dir / ProtectManifest.FILENAME,
        n_images=len(manifest.items),
        n_persons=len(people),
        n_rejected=len(rejects),
        n_resumed_persons=len(done),
        key_fingerprint=key.fingerprint,
        key_kind=key.kind,
        seconds=seconds,
        n_redone_persons=len(state.changed),
        n_removed_persons=len(state.gone),
        n_stale_files=len(stale),
    )


def _step_postfix(bar: tqdm, where: str, steps: int) -> Callable[[int], None]:
    return lambda step: bar.set_postfix_str(f"{where}, step {step}/{steps}")


def _views(
    slots,
    people: list[Person],
    resolution: int,
    inv_table,
    models: ModelBundle,
    params: Params,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and inversions of a batch's views; augmented views exist only here."""
    images: list[torch.Tensor] = []
    known: list[torch.Tensor | None] = []
    cache: dict[int, torch.Tensor] = {}
    for slot in slots:
        person = people[slot.group]
        if len(person.files) > 1 or slot.view == 0:
            f = person.files[slot.view]
            images.append(load_face(f.path, resolution))
            known.append(inv_table.get(str(f.path)))
        else:
            if slot.group not in cache:
                base = load_face(person.files[0].path, resolution)
                cache[slot.group] = augmented_views(
                    base, params.groups.single_image_views, params.groups.augment
                )
            images.append(cache[slot.group][slot.view - 1])
            known.append(None)
    x = torch.stack(images).to(device)
    todo = [i for i, w in enumerate(known) if w is None]
    ws: list[torch.Tensor | None] = [None if w is None else w.to(device) for w in known]
    if todo:
        inverted = models.inverter.invert(x[todo])
        for j, i in enumerate(todo):
            ws[i] = inverted[j]
    return x, torch.stack([w for w in ws if w is not None])


def _write_person(
    out_dir: Path, person: Person, pseudonym: str, views: list[tuple[int, dict]], curve: torch.Tensor
) -> None:
    """Write one person's protected images (real views only), latents, loss curve and state record."""
    items = []
    released = views[: len(person.files)]  # augmented views (single-image persons) are never released
    for idx, (f, (_, view)) in enumerate(zip(person.files, released, strict=True)):
        rel = Path(ReleaseIndex.FOLDER) / "images" / pseudonym / f"{idx:04d}.png"
        data = png_bytes(to_uint8(view["image"]))
        atomic_write_bytes(out_dir / rel, data)
        items.append(
            ProtectItem(
                input=str(f.path),
                input_sha256=sha256_file(f.path),
                person=person.name,
                pseudonym=pseudonym,
                output=rel.as_posix(),
                output_sha256=sha256_bytes(data),
                latent_file=f"latents/{pseudonym}.pt",
                latent_index=idx,
                augmented_views=len(views) - len(released),
                losses=view["losses"],
            )
        )
    atomic_torch_save(
        out_dir / "latents" / f"{pseudonym}.pt",
        {"names": [str(f.path) for f in person.files], "ws": torch.stack([v["ws"] for _, v in released])},
    )
    LossCurve(tuple(tuple(float(v) for v in row) for row in curve.tolist())).write(
        out_dir / STATE_DIR / _CURVES, f"{pseudonym}.csv"
    )
    atomic_write_json(out_dir / STATE_DIR / _PERSONS / f"{pseudonym}.json", [it.to_dict() for it in items])


def _assemble(
    out_dir: Path, run: ProtectManifest, pseudonyms: list[str], rejects: list[Reject]
) -> ProtectManifest:
    """The manifest, rejects and release index from every finished person's state record."""
    items: list[ProtectItem] = []
    # Pseudonym order: the order of real names would link pseudonyms back to a public name list.
    for pseudonym in sorted(pseudonyms):
        record = out_dir / STATE_DIR / _PERSONS / f"{pseudonym}.json"
        if not record.is_file():
            raise RuntimeError(f"internal error: no output recorded for person {pseudonym}")
        items.extend(ProtectItem(**{"input_sha256": "", **it}) for it in json.loads(record.read_text()))
    manifest = dataclasses.replace(run, items=tuple(items), rejects=tuple(rejects))
    manifest.write(out_dir)
    # Persons protected before loss curves were recorded have none: the mean is over the others.
    person_curves = [
        LossCurve.read(path)
        for p in sorted(pseudonyms)
        if (path := out_dir / STATE_DIR / _CURVES / f"{p}.csv").is_file()
    ]
    if person_curves:
        LossCurve.mean(person_curves).write(out_dir)
    Rejects(tuple(rejects)).write(out_dir)
    ReleaseIndex(
        code_version=run.code_version,
        params_digest=run.params_digest,
        generator_id=run.generator_id,
        precision=run.precision,
        modconv=run.modconv,
        key_fingerprint=run.key.fingerprint,
        key_kind=run.key.kind,
        n_persons=len(pseudonyms),
        files=tuple(
            ReleaseFile(Path(it.output).relative_to(ReleaseIndex.FOLDER).as_posix(), it.output_sha256)
            for it in items
        ),
    ).write(out_dir)
    return manifest


# An interrupted `fam invert` keeps what it computed: the file is rewritten this often (seconds).
INVERT_CHECKPOINT_S = 120.0


@dataclass(frozen=True)
class InvertPlan:
    """What :func:`invert_dataset` will do, decided before it writes anything (``--dry-run``)."""

    aligned_dir: Path
    target: Path  # OUT/inversions.pt
    params: Params
    people: list[Person]
    rejects: list[Reject]
    engine: Engine
    models: ModelBundle
    force: bool
    resume: bool = False
    # --resume: the earlier file's latents of this run's images whose content is unchanged ...
    reused: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    # ... and of images of the input outside this run's --person selection (kept as they are)
    kept: Inversions | None = None

    def describe(self) -> dict[str, object]:
        return {
            "command": "invert",
            "input": str(self.aligned_dir),
            "output": str(self.target),
            "output_state": "resume" if self.resume else "force" if self.force else "new",
            "persons": len(self.people),
            "images": sum(len(p.files) for p in self.people),
            "images_inverted_by_previous_run": len(self.reused),
            "rejected_inputs": len(self.rejects),
            "models": {
                "generator": self.models.generator.generator_id,
                "inverter": type(self.models.inverter).__name__,
            },
            "engine": self.engine.describe(),
        }


def plan_invert(
    aligned_dir: str | Path,
    out_dir: str | Path,
    params: Params,
    *,
    persons: Sequence[str] | None = None,
    force: bool = False,
    resume: bool = False,
    models: ModelBundle | None = None,
) -> InvertPlan:
    """Check the settings, models, inputs and output as a run would; write nothing.

    ``resume``: keep the latents of an existing ``OUT/inversions.pt`` made with the same
    generator, inverter settings and precision for images whose content is unchanged, and invert
    only the others. ``force``: recompute the file.
    """
    if resume and force:
        raise InputError("choose either --resume (skip inverted images) or --force (redo all), not both")
    aligned_dir, out_dir = Path(aligned_dir).resolve(), Path(out_dir).resolve()
    check_paths(aligned_dir, out_dir)
    target = out_dir / Inversions.FILENAME
    previous = None
    if target.exists():
        if not (force or resume):
            raise OutputExistsError(
                f"{target} exists; pass --resume to invert only the images it lacks, or --force to "
                "recompute it"
            )
        try:
            previous = Inversions.read(target)
        except InputError:
            raise OutputExistsError(
                f"{target} was not written by `fam invert`; --resume and --force touch only that command's "
                "output: move the file or choose another --out"
            ) from None
    engine = resolve_engine(params.runtime)
    models = models or build_models(params.models, engine.device)
    people, rejects = scan_aligned(aligned_dir, persons)
    people, more = validate_people(people, models.generator.resolution)
    reused: dict[str, torch.Tensor] = {}
    kept = None
    if resume and previous is not None:
        _check_same_inversion(previous, out_dir, params, models, engine)
        mine = {str(f.path): f.path for p in people for f in p.files}
        hashes, table = previous.hashes(), previous.table()
        reused = {p: table[p] for p, file in mine.items() if p in hashes and hashes[p] == sha256_file(file)}
        if persons is not None:  # a subset run keeps the other persons' latents while they are input
            everyone, _ = scan_aligned(aligned_dir)
            others = {str(f.path) for p in everyone for f in p.files} - set(mine)
            kept = _subset(previous, [p for p in previous.paths if p in others])
    return InvertPlan(
        aligned_dir, target, params, people, rejects + more, engine, models, force, resume, reused, kept
    )


def _check_same_inversion(
    previous: Inversions, out_dir: Path, params: Params, models: ModelBundle, engine: Engine
) -> None:
    """A resumed inversion uses the generator, inverter settings and precision of the earlier run."""
    now = {
        "generator": models.generator.generator_id,
        "inverter settings": params.to_dict()["models"]["inverter"],
    }
    before = {"generator": previous.generator_id, "inverter settings": previous.inverter}
    settings = out_dir / ResolvedSettings.FILENAME
    if settings.is_file():
        choices = ResolvedSettings.read(out_dir).choices
        before |= {"precision": choices.get("precision"), "modulation path": choices.get("modconv")}
        now |= {"precision": engine.precision, "modulation path": engine.modconv}
        if "threads" in choices:  # recorded since 2026-12-02
            before["thread count"], now["thread count"] = choices["threads"], torch.get_num_threads()
    for what in now:
        if before[what] != now[what]:
            raise OutputExistsError(
                f"{out_dir / Inversions.FILENAME} was made with another {what} ({before[what]}, now "
                f"{now[what]}); resume with the same settings, or use --force / another --out"
            )


def _subset(inv: Inversions, paths: Sequence[str]) -> Inversions:
    index = {p: i for i, p in enumerate(inv.paths)}
    rows = [index[p] for p in paths]
    hashes = inv.hashes()
    return Inversions(
        inv.generator_id,
        inv.inverter,
        tuple(paths),
        inv.ws[rows] if rows else inv.ws[:0],
        tuple(hashes.get(p, "") for p in paths),  # "" = unknown: a later --resume inverts it again
    )


def invert_dataset(
    aligned_dir: str | Path,
    out_dir: str | Path,
    params: Params,
    *,
    persons: Sequence[str] | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
    models: ModelBundle | None = None,
) -> Path:
    """Invert every aligned face once (``OUT/inversions.pt``) so that several keys can reuse it.

    Also writes ``OUT/rejects.json`` and ``OUT/settings.json``.
    """
    plan = plan_invert(
        aligned_dir, out_dir, params, persons=persons, force=force, resume=resume, models=models
    )
    return run_invert(plan, progress=progress)


def run_invert(plan: InvertPlan, *, progress: bool = True) -> Path:
    """Carry out a plan of :func:`plan_invert` holding the folder's lock; returns the inversions file."""
    with output_lock(plan.target.parent, "invert"):
        return _invert_locked(plan, progress)


def _invert_locked(plan: InvertPlan, progress: bool) -> Path:
    """Invert person by person, in the batches :func:`fam.groups.plan_batches` gives protect.

    The batches depend only on the persons' image counts (with ``groups.pack_persons`` false, a
    person's latents depend on nothing else), never on what an earlier run finished: a batch
    holding an image to invert is inverted whole, so every latent this run computes is the one an
    uninterrupted fresh run computes (batched kernels round differently for other batch shapes).
    """
    target, params, people, engine, models = plan.target, plan.params, plan.people, plan.engine, plan.models
    device, gen = engine.device, models.generator
    engine.prepare(gen)
    # The projection's latents depend on the thread count too (float sums split across threads
    # in another order, amplified by its Adam steps): docs/runtime.md, "Threads".
    ResolvedSettings.of(
        "invert",
        params,
        device=str(device),
        precision=engine.precision,
        modconv=engine.modconv,
        threads=torch.get_num_threads(),
    ).write(target.parent)
    files = [f for p in people for f in p.files]
    paths = [str(f.path) for f in files]
    hashes = [sha256_file(f.path) for f in files]
    first = [0]
    for p in people:
        first.append(first[-1] + len(p.files))
    batches = plan_batches(
        [len(p.files) for p in people], params.groups.max_batch_views, pack=params.groups.pack_persons
    )
    ws: dict[int, torch.Tensor] = {i: plan.reused[p] for i, p in enumerate(paths) if p in plan.reused}
    todo = [
        rows
        for rows in ([first[s.group] + s.view for s in b.slots] for b in batches)
        if not all(i in ws for i in rows)
    ]

    kept = plan.kept
    kept_rows = list(zip(kept.paths, kept.ws, kept.input_sha256, strict=True)) if kept else []

    def write() -> None:
        rows = [(paths[i], ws[i], hashes[i]) for i in sorted(ws)] + kept_rows
        Inversions(
            generator_id=gen.generator_id,
            inverter=params.to_dict()["models"]["inverter"],
            paths=tuple(r[0] for r in rows),
            ws=torch.stack([r[1] for r in rows]) if rows else torch.empty(0),
            input_sha256=tuple(r[2] for r in rows),
        ).write(target.parent)

    last_write = time.monotonic()
    for rows in tqdm(todo, desc="invert", unit="batch", disable=not progress):
        x = torch.stack([load_face(files[i].path, gen.resolution) for i in rows]).to(device)
        for i, w in zip(rows, models.inverter.invert(x).detach().cpu(), strict=True):
            ws[i] = w
        if time.monotonic() - last_write >= INVERT_CHECKPOINT_S:
            write()
            last_write = time.monotonic()
    write()
    Rejects(tuple(plan.rejects)).write(target.parent)
    return target
