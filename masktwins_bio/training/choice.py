"""The label-free choice of the views' agreement (``method.agreement: auto``).

Which agreement a pair needs depends on how its source model fails on the target: the symmetric agreement (the
paper's) pulls what a view sees towards what the other view infers, which removes a source model's false positives
where it over-segments and costs recall where it under-segments; the directed agreement (``visible``) does the
opposite (BENCHMARKS.md: the two real directions go opposite ways by 3 to 8 IoU). Before adapting, neither the
predicted foreground nor the confidence tells the two kinds apart; after adapting, the label-free selection score
of the two models did, in 6 of 6 paired runs (3 seeds, both real directions; BENCHMARKS.md, session 12). So ``auto``
adapts once per agreement, both from the same source-only prefix, and keeps the model with the higher label-free
score (ties: the symmetric agreement).

The probe (``method.agreement_probe``, default half the adaptation): both candidates train to the probe step, where
their label-free scores are compared; only the higher-scoring one trains on to the end, the other stays as it was
at the probe. In those 6 paired runs the halfway scores ordered the candidates as the final ones did (BENCHMARKS.md,
session 13), so the probe chooses the same model for half an adaptation less. A chosen candidate stopped at the
probe and resumed is its agreement's run trained alone, bit for bit.

Layout of the run folder::

    run_dir/agreement-symmetric/   a complete run (model.pt, last.pt, summary.json, logs)
    run_dir/agreement-visible/     the same, forked from the first one's source-only prefix snapshot
                                   (the candidate not chosen stops at the probe step)
    run_dir/agreement_probe.json   the probe's scores and choice (a resumed run continues the same candidate)
    run_dir/model.pt               the chosen run's model
    run_dir/summary.json           the chosen run's summary + ``agreement_choice`` (both scores, the choice);
                                   written last, so a folder with it is finished
    run_dir/config.yaml            the ``auto`` config

Cost: half an adaptation more than one agreement with the probe, a whole one without it (the prefix is trained
once); a wall-clock budget (``train.max_minutes``) applies to each candidate, which then both train to the end.
``--resume`` continues whichever candidate was interrupted and reuses finished ones.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..config import Config, apply_overrides, config_from_dict
from ..errors import InputError
from ..files import atomic_file
from ..registry import METHODS
from .trainer import Trainer, TrainResult, config_input_paths, open_training_volumes

log = logging.getLogger(__name__)

__all__ = ["AGREEMENTS", "chooses_agreement", "train_choosing_agreement", "candidate_dir", "model_so_far",
           "probe_step"]

#: the candidates of ``method.agreement: auto``, in order of preference on a tie
AGREEMENTS = ("symmetric", "visible")
#: ``method.agreement_probe`` when not set: the candidates are compared halfway through the adaptation
DEFAULT_PROBE = 0.5
#: the probe's decision, kept so that a resumed run continues the same candidate
PROBE_FILE = "agreement_probe.json"


def chooses_agreement(cfg: Config) -> bool:
    """Whether ``cfg`` asks for the label-free choice (``auto``) with a method whose views have an agreement."""
    return cfg.method.agreement == "auto" and getattr(METHODS[cfg.method.name], "has_agreement", False)


def candidate_dir(run_dir, agreement: str) -> Path:
    """The folder of one candidate run inside an ``auto`` run folder."""
    return Path(run_dir) / f"agreement-{agreement}"


def model_so_far(run_dir) -> Optional[Path]:
    """The model a live view should show now: ``run_dir/model.pt`` (a single run's selection so far, or the
    choice once made), else the newest candidate's selection so far; None before any."""
    run_dir = Path(run_dir)
    if (run_dir / "model.pt").exists():
        return run_dir / "model.pt"
    models = [p for a in AGREEMENTS if (p := candidate_dir(run_dir, a) / "model.pt").exists()]
    return max(models, key=lambda p: p.stat().st_mtime_ns) if models else None


def _finished(run_dir: Path, cfg: Config, steps: int) -> Optional[dict]:
    """The summary of a run of exactly ``cfg`` in ``run_dir`` that trained ``steps`` steps (else None)."""
    path = run_dir / "summary.json"
    if not (path.exists() and (run_dir / "model.pt").exists()):
        return None
    summary = json.loads(path.read_text())
    done = summary.get("config_hash") == cfg.hash() and summary.get("steps") == steps
    return summary if done else None


def _score(summary: dict) -> float:
    s = summary.get("selection_score")
    return float(s) if isinstance(s, (int, float)) and math.isfinite(s) else -math.inf


def train_choosing_agreement(cfg: Config, run_dir=None, *, resume: bool = False, overwrite: bool = False,
                             fork_from=None, snapshot_steps: Sequence[int] = (),
                             should_stop: Optional[Callable[[], bool]] = None, **kwargs) -> TrainResult:
    """Adapt once per agreement from one shared source-only prefix and keep the better label-free score.

    Args:
        cfg: A config with ``method.agreement: auto``.
        run_dir: The run folder (default from the config); the candidates train in sub-folders.
        resume: Continue interrupted candidates, reuse finished ones.
        overwrite: Retrain both candidates.
        fork_from: A source-only prefix snapshot both candidates start from (see :class:`Trainer`); without it the
            first candidate trains the prefix and keeps its snapshot for the second.
        snapshot_steps: Passed to the first candidate (the ladder's shared prefix).
        should_stop: Polled every step; once it returns True no further candidate is started.
        **kwargs: Passed to :class:`Trainer` (``volumes``, ``progress``, ``callback``); before each candidate
            trains, ``callback(prefix_step, {"candidate": {"agreement", "index", "of"}})``.

    Returns:
        The chosen candidate's :class:`TrainResult`, with ``run_dir`` and ``model_path`` in ``run_dir`` and the
        summary's ``agreement_choice``.
    """
    from .distributed import DistContext

    run_dir = Path(run_dir or cfg.get_run_dir())
    main = DistContext.from_env().is_main
    if kwargs.get("volumes") is None:  # inputs checked before anything is written; opened once for both candidates
        kwargs["volumes"] = open_training_volumes(cfg)
    if resume and not any((candidate_dir(run_dir, a) / "last.pt").exists() for a in AGREEMENTS):
        raise InputError(f"{run_dir}: no checkpoint (last.pt) of either agreement to resume from; run without "
                         "--resume")
    # rank 0 alone: under DDP the other ranks would see the folder rank 0 has just begun to write
    if main and not (resume or overwrite) and run_dir.exists() and any(run_dir.iterdir()):
        from ..io.guard import refuse_existing

        refuse_existing(run_dir, "run directory", resumable=True, other="--set run_dir=another/path")
    aside = None
    if overwrite and run_dir.exists():
        from ..io.guard import check_replaceable, set_aside

        check_replaceable(run_dir, config_input_paths(cfg), "training run folder", "train")
        if main:  # the old run stays whole until the new one has made progress (as a single run's --overwrite)
            aside = set_aside(run_dir)
    try:
        # one torchrun process group for all the candidates' runs, closed at the end
        result = _train_candidates(cfg, run_dir, main, resume, overwrite, fork_from, snapshot_steps, should_stop,
                                   keep_process_group=True, **kwargs)
    except BaseException as exc:
        if aside is not None:
            from ..io.guard import settle_replacement

            settle_replacement(run_dir, aside, type(exc),
                               lambda: any((candidate_dir(run_dir, a) / "last.pt").exists() for a in AGREEMENTS))
        raise
    finally:
        DistContext.from_env().shutdown()
    if aside is not None:
        from ..io.guard import discard_asides

        discard_asides(run_dir)
    return result


def probe_step(cfg: Config) -> Optional[int]:
    """The step at which ``auto`` compares the candidates and stops the lower-scoring one (``method.agreement_probe``
    of the adaptation steps, down to a validation step), or None: both train to the end (a wall-clock budget, a
    probe of 1, or no validation step between the fork and the end)."""
    adapt = cfg.adapt_start_step()
    if adapt is None or cfg.train.max_minutes is not None:
        return None
    share = DEFAULT_PROBE if cfg.method.agreement_probe is None else cfg.method.agreement_probe
    every = cfg.train.val_every
    step = int(adapt + share * (cfg.train.steps - adapt)) // every * every
    return step if adapt < step < cfg.train.steps else None


def _train_candidates(cfg: Config, run_dir: Path, main: bool, resume: bool, overwrite: bool, fork_from,
                      snapshot_steps: Sequence[int], should_stop: Optional[Callable[[], bool]],
                      **kwargs) -> TrainResult:
    """The body of :func:`train_choosing_agreement` (the run folder checked, an old one set aside)."""
    if main:
        from ..io.guard import write_marker

        run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("summary.json", "model.pt") + (() if resume else (PROBE_FILE,)):
            (run_dir / name).unlink(missing_ok=True)  # no longer finished until the choice is made again
        write_marker(run_dir, "train")
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
    stop = should_stop or (lambda: False)
    callback = kwargs.get("callback")
    prefix_step = cfg.adapt_start_step() or 0
    probe = probe_step(cfg)
    decided = _read_probe(run_dir, cfg, probe) if resume else None
    fork = Path(fork_from) if fork_from else None
    sub_cfgs = {a: config_from_dict(apply_overrides(cfg.resolved(), [f"method.agreement={a}"]),
                                    f"{cfg.method.name} ({a} agreement)") for a in AGREEMENTS}
    results: dict[str, dict] = {}
    for i, agreement in enumerate(AGREEMENTS):  # each candidate to the probe step (or to the end without one)
        if i and stop():  # stopped (a GUI's Stop): the candidates trained so far are chosen from
            break
        if i == 1 and fork is None and prefix_step:  # the second candidate adapts from the first one's prefix
            fork = candidate_dir(run_dir, AGREEMENTS[0]) / f"step{prefix_step}.pt"
            if not fork.exists():
                raise InputError(f"{fork}: the first candidate kept no source-only prefix snapshot; run again with "
                                 "--overwrite")
        sub = candidate_dir(run_dir, agreement)
        if decided is not None:  # the probe was decided before an interruption: its summaries stand
            results[agreement] = json.loads((sub / "summary.json").read_text()) if agreement != decided["chosen"] \
                else {"selection_score": decided["scores"][agreement]}
            continue
        until = probe or cfg.train.steps
        summary = None if overwrite else _finished(sub, sub_cfgs[agreement], until)
        if summary is None:
            if callback is not None:  # a live view: the steps start again from the prefix
                callback(prefix_step, {"candidate": {"agreement": agreement, "index": i, "of": len(AGREEMENTS)}})
            again = resume and not overwrite and (sub / "last.pt").exists()
            snaps = tuple(snapshot_steps) + ((prefix_step,) if prefix_step and i == 0 and fork is None else ())
            summary = Trainer(sub_cfgs[agreement], run_dir=sub, resume=again, overwrite=not again,
                              fork_from=None if again else fork, snapshot_steps=snaps, should_stop=should_stop,
                              stop_at=until, **kwargs).run().summary
            # under DDP only rank 0 returns the summary; every rank reads it (written before the run's last
            # barrier), so that all ranks make the same choice and train the same candidate on
            summary = summary or json.loads((sub / "summary.json").read_text())
        results[agreement] = summary
    chosen = max(results, key=lambda a: (_score(results[a]), -AGREEMENTS.index(a)))
    scores = {a: results[a].get("selection_score") for a in results}
    probed = probe is not None and len(results) == len(AGREEMENTS) and all(
        decided is not None or r.get("steps") == probe for r in results.values())
    if probed:  # the lower-scoring candidate stays at the probe step; the other trains on to the end
        if decided is None and main:
            with atomic_file(run_dir / PROBE_FILE) as tmp:
                tmp.write_text(json.dumps({"config_hash": cfg.hash(), "step": probe, "scores": scores,
                                           "chosen": chosen}, indent=2))
        sub = candidate_dir(run_dir, chosen)
        summary = _finished(sub, sub_cfgs[chosen], cfg.train.steps)
        if summary is None and not stop():
            if callback is not None:
                callback(probe, {"choice": {"agreement": chosen, "step": probe, "scores": scores}})
            summary = Trainer(sub_cfgs[chosen], run_dir=sub, resume=True, should_stop=should_stop,
                              **kwargs).run().summary
        results[chosen] = summary or json.loads((sub / "summary.json").read_text())
    sub = candidate_dir(run_dir, chosen)
    choice = {"chosen": chosen, "rule": "label_free_score", "scores": scores,
              "runs": {a: str(candidate_dir(run_dir, a)) for a in results}}
    if probed:
        choice.update(probe_step=probe, final_score=results[chosen].get("selection_score"))
    summary = {**results[chosen], "config_hash": cfg.hash(), "agreement_choice": choice}
    if not main:
        return TrainResult(run_dir, run_dir / "model.pt", sub / "last.pt", 0, -1, [], {})
    with atomic_file(run_dir / "model.pt") as tmp:
        shutil.copyfile(sub / "model.pt", tmp)
    with atomic_file(run_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    log.info("method.agreement=auto: chose %s (label-free scores %s%s)", chosen, scores,
             f" at step {probe}" if probed else "")
    return TrainResult(run_dir, run_dir / "model.pt", sub / "last.pt", int(summary.get("steps", 0)),
                       int(summary.get("selected_step", -1)), list(summary.get("history", [])), summary)


def _read_probe(run_dir: Path, cfg: Config, probe: Optional[int]) -> Optional[dict]:
    """The probe decision an interrupted run of ``cfg`` wrote (None if there is none or it is another run's)."""
    path = run_dir / PROBE_FILE
    if probe is None or not path.exists():
        return None
    decided = json.loads(path.read_text())
    ok = decided.get("config_hash") == cfg.hash() and decided.get("step") == probe
    return decided if ok and decided.get("chosen") in AGREEMENTS else None
