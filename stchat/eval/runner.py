"""``stchat eval run``: the command line of a benchmark run (crash-safe, resumable, sharded).

Output: the official result layout ``<save_dir>/<model>/<sub_dir>/<task>/<dataset>/<name>.json``, JSON lines,
one record per sample = the official record (dataset item minus tensors, ``variables``, ``outputs``,
``converted_outputs``) plus ``id`` (the sample's position in the benchmark) and ``timing``. The official
scorer ignores the two extra keys and ours reads official files, so both tools read each other's output.

The pieces: :mod:`stchat.eval.writer` (crash-safe JSON lines, resume, shards and merge),
:mod:`stchat.eval.engine` (samples, decoding, the engine on ``StableChat``'s generation),
:mod:`stchat.eval.sources` (which benchmark files). Benchmarks are named by the official layout
(``--official-root`` + ``--names``), one annotation file (``--annotations --task --media-root``) or a
manifest (``--benchmark``). Subsets (``--first``/``--random``) keep each sample's position in its file as
its id. Scale-out: ``torchrun --nproc_per_node N -m stchat.cli eval run ...`` (see
:mod:`stchat.eval.distributed`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stchat.eval import distributed as dist_mod
from stchat.eval import sources
from stchat.eval.engine import Decoding, Engine, RunError, Sample, Subset, check_media, load_samples
from stchat.eval.report import scored_samples
from stchat.eval.results import result_path
from stchat.eval.sources import OFFICIAL_FILES, check_routing
from stchat.eval.writer import run_distributed
from stchat.model.loading import default_model_source
from stchat.tasks import benchmark_tasks

__all__ = ["RunError", "Sample", "add_run_arguments", "register", "run_from_args"]


def add_run_arguments(p: argparse.ArgumentParser, sweep: bool = False) -> None:
    """Arguments shared by ``eval run`` and ``eval sweep``."""
    src = p.add_argument_group("benchmark (choose one of --benchmark, --official-root, --annotations)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--official-root", metavar="DIR",
                     help="the official data/benchmarks folder (st-align/, charades/, refcoco/ with their "
                          "sources/); the repository root or data/ are accepted too")
    one.add_argument("--annotations", metavar="FILE", help="one annotation file in an official format")
    one.add_argument("--benchmark", metavar="JSON",
                     help="benchmark manifest (benchmark.json, as written by 'stchat eval make-synthetic')")
    src.add_argument("--names", nargs="+", default=None, metavar="NAME",
                     help="with --official-root: official --all_name values to run (default: every one whose "
                          f"annotation file exists): {' '.join(OFFICIAL_FILES)}")
    src.add_argument("--task", choices=list(benchmark_tasks()), default=None,
                     help="with --annotations: what the file holds (stvg/svg/elc: ST-Align, "
                          "tvg: Charades-STA, rec: RefCOCO)")
    src.add_argument("--media-root", metavar="DIR", default=None,
                     help="with --annotations: folder the file's video/image paths are relative to")
    src.add_argument("--name", default=None,
                     help="with --annotations: result file name (default: the annotation file's stem)")
    src.add_argument("--only", nargs="+", default=None, metavar="NAME",
                     help="with --benchmark: run only these entries")
    sub = p.add_argument_group("samples and prompts")
    pick = sub.add_mutually_exclusive_group()
    pick.add_argument("--first", "--limit", dest="first", type=int, default=None, metavar="N",
                      help="the first N samples of every benchmark file. ST-Align files are always cut to "
                           "their first 2000 items first, as the official reader does (Q17): the paper's "
                           "ST-Align numbers are those 2000")
    pick.add_argument("--random", dest="random_n", type=int, default=None, metavar="N",
                      help="N samples drawn at random (without replacement) from every file; "
                           "see --subset-seed")
    sub.add_argument("--subset-seed", type=int, default=0, help="seed of --random (default 0)")
    sub.add_argument("--seed", type=int, default=0,
                     help="seeds each sample's prompt phrase choice and sampling (default 0)")
    sub.add_argument("--official-unseeded", action="store_true",
                     help="draw prompt phrases from Python's unseeded 'random' like the official readers "
                          "(Q17/Q18): prompts then change from run to run; --seed still seeds sampling")
    p.add_argument("--model", default=None,
                   help="checkpoint dir or hub id (default: $STCHAT_MODEL or the public id)")
    p.add_argument("--save-dir", default="./eval_outputs", help="root of the official result layout")
    p.add_argument("--sub-dir", default="default", help="official sub_dir level of the result layout")
    p.add_argument("--decoding", choices=("greedy", "official"), default="greedy",
                   help="greedy (reproducible) or the official near-greedy sampling (Q22)")
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--adapter", default=None,
                   help="fine-tuning output directory (stchat train) to apply; results go to sub-dir "
                        "'<sub-dir>/adapter-<name>' unless --sub-dir is given")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def entries_from_args(args: argparse.Namespace) -> list[Any]:
    """The benchmark entries named on the command line (one of the three forms), checked to exist."""
    flags = ("names", "task", "media-root", "name", "only")
    given = {k: getattr(args, k.replace("-", "_"), None) for k in flags}
    allowed = {"official_root": {"names"}, "annotations": {"task", "media-root", "name"},
               "benchmark": {"only"}}
    form = next(f for f in allowed if getattr(args, f, None) is not None)
    stray = sorted(k for k, v in given.items() if v is not None and k not in allowed[form])
    if stray:
        raise RunError(f"--{stray[0]} does not apply to --{form.replace('_', '-')}")
    if form == "official_root":
        return sources.official_entries(args.official_root, args.names)
    if form == "annotations":
        if args.task is None or args.media_root is None:
            raise RunError("--annotations needs --task and --media-root")
        return [sources.file_entry(args.annotations, args.task, args.media_root, args.name)]
    return sources.select(sources.load_manifest(args.benchmark), args.only)


def subset_from_args(args: argparse.Namespace) -> Subset:
    for flag, n in (("--first", args.first), ("--random", args.random_n)):
        if n is not None and n < 1:
            raise RunError(f"{flag} must be at least 1")
    return Subset(first=args.first, random_n=args.random_n, subset_seed=args.subset_seed,
                  seed=None if args.official_unseeded else args.seed)


def _decoding_from_args(args: argparse.Namespace, override: dict | None) -> Decoding:
    d = (Decoding.official(args.max_new_tokens, args.seed) if args.decoding == "official"
         else Decoding(max_new_tokens=args.max_new_tokens, seed=args.seed))
    for k, v in (override or {}).items():
        setattr(d, k, v)
        if k in ("temperature", "top_p", "top_k"):
            d.do_sample = True  # a sampling parameter only means something when sampling
    if d.max_new_tokens < 1:
        raise RunError("--max-new-tokens must be at least 1")
    return d


def run_from_args(
    args: argparse.Namespace,
    override: dict | None = None,
    sub_dir_suffix: str | None = None,
    score: bool = False,
    engines: dict[tuple, Engine] | None = None,
) -> list:
    """Run every selected entry (resumably); with ``score``, return this run's samples' scores.

    Annotations, media files and result paths are all checked before the model is loaded, so a typo
    fails in a second rather than after the load. ``engines`` (a dict the caller keeps) lets repeated
    calls -- one per sweep setting -- share one loaded model: only its decoding settings change.
    """
    decoding = _decoding_from_args(args, override)
    model = args.model or default_model_source()
    info = dist_mod.dist_info()
    plan = plan_run(args, model, sub_dir_suffix, info)
    joined = dist_mod.init_process_group(info)
    try:
        engine = _engine(args, model, decoding, info, engines)
        for e, final, samples in plan:
            stats = run_distributed(samples, engine, final, progress=not args.no_progress, desc=e.name)
            if info.is_main:
                print(f"{e.name}: {stats.written} new, {stats.skipped} already done -> {final}",
                      file=sys.stderr)
    finally:
        if joined:
            dist_mod.destroy_process_group()
    if not info.is_main or not score:
        return []
    return _scores(plan)


def plan_run(
    args: argparse.Namespace, model: str, sub_dir_suffix: str | None, info: dist_mod.DistInfo
) -> list[tuple[Any, Path, list[Sample]]]:
    """``(entry, result file, samples)`` for every selected entry, media checked, nothing loaded."""
    entries = entries_from_args(args)
    subset = subset_from_args(args)
    sub_dir = args.sub_dir
    if getattr(args, "adapter", None) and sub_dir == "default":
        sub_dir = f"default/adapter-{Path(args.adapter).resolve().name}"  # never mix with base results
    if sub_dir_suffix:
        sub_dir = f"{sub_dir}/{sub_dir_suffix}"
    plan = []
    for e in entries:
        final = result_path(args.save_dir, model, sub_dir, e.name, e.task, e.dataset)
        warning = check_routing(e, final, args.save_dir)
        if warning and info.is_main:
            print(f"stchat: warning: {warning}", file=sys.stderr)
        samples = load_samples(e, subset)
        check_media(e.name, samples)
        plan.append((e, final, samples))
    return plan


def _engine(args: argparse.Namespace, model: str, decoding: Decoding, info: dist_mod.DistInfo,
            engines: dict[tuple, Engine] | None) -> Engine:
    key = (model, dist_mod.device_for(info, args.device), args.dtype, getattr(args, "adapter", None))
    engine = (engines or {}).get(key)
    if engine is None:
        engine = Engine(model, device=key[1], dtype=args.dtype, decoding=decoding, adapter=key[3])
        if engines is not None:
            engines[key] = engine
    engine.decoding = decoding
    return engine


def _scores(plan: list[tuple[Any, Path, list[Sample]]]) -> list:
    # Every entry shares <save_dir>/<model>/<sub_dir>; score it and keep exactly this run's samples (a
    # result file may also hold samples of an earlier, different subset).
    _, per = scored_samples(plan[0][1].parents[2], captions=False)
    out = []
    for e, _, samples in plan:
        ids = {s.sample_id for s in samples}
        out += [s for s in per.get(e.name, []) if s.sample_id in ids]
    return out


def register(eval_subparsers: argparse._SubParsersAction) -> None:
    """Add ``stchat eval run`` (wired into ``stchat/commands/eval.py``)."""
    p = eval_subparsers.add_parser(
        "run",
        help="run the model over a benchmark (resumable; torchrun/accelerate for several processes)",
        description="Write one JSON line per sample in the official result layout. Safe to kill and re-run: "
        "finished samples are skipped. Launch with torchrun/accelerate launch to shard across processes.",
    )
    add_run_arguments(p)
    p.set_defaults(handler=_handle_run)


def _handle_run(args: argparse.Namespace) -> int:
    run_from_args(args)
    return 0
