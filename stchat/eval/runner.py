"""``stchat eval run``: run the model over a benchmark, crash-safe and resumable.

Output: the official result layout ``<save_dir>/<model>/<sub_dir>/<task>/<dataset>/<name>.json``, JSON lines,
one record per sample = the official record (dataset item minus tensors, ``variables``, ``outputs``,
``converted_outputs``) plus ``id`` (the sample's position in the benchmark) and ``timing``. The official
scorer ignores the two extra keys and ours reads official files, so both tools read each other's output.

Crash safety:
* every record is one ``write`` of a complete line followed by ``flush`` + ``fsync``;
* on start the file's torn tail (a line without its newline, left by a kill mid-write) is truncated
  away and every id already present is skipped, so a killed and restarted run never duplicates or drops
  a sample;
* samples are processed in dataset order and every random choice (the official unseeded prompt phrase,
  Q17/Q18, and sampling) is seeded from ``(seed, id)``, so a resumed or sharded run writes exactly the
  records an uninterrupted one writes (greedy decoding; ``timing`` aside).

Benchmarks are named by the official layout (``--official-root`` + ``--names``), one annotation file
(``--annotations --task --media-root``) or a manifest (``--benchmark``): see :mod:`stchat.eval.sources`.
Subsets (``--first``/``--random``) keep each sample's position in its file as its id.

Scale-out: see :mod:`stchat.eval.distributed` (torchrun / accelerate launch, deterministic shards, merge).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stchat.errors import StchatError
from stchat.eval import distributed as dist_mod


class RunError(StchatError):
    """A benchmark run cannot start or continue (bad paths, unreadable result file, ...)."""


# ------------------------------------------------------------------------------------------ result file
def repair_tail(path: Path) -> int:
    """Cut a torn last line (no trailing newline, or not valid JSON) off ``path``; returns bytes removed."""
    if not path.is_file():
        return 0
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        # Find the start of the last line without reading the whole file.
        block = min(size, 1 << 20)
        while True:
            f.seek(size - block)
            chunk = f.read(block)
            body = chunk[:-1] if chunk.endswith(b"\n") else chunk
            nl = body.rfind(b"\n")
            if nl >= 0 or block == size:
                break
            block = min(size, block * 4)
        start = size - block + nl + 1 if nl >= 0 else 0
        f.seek(start)
        last = f.read()
        keep = size
        if not last.endswith(b"\n"):
            keep = start
        else:
            try:
                json.loads(last)
            except (json.JSONDecodeError, UnicodeDecodeError):
                keep = start  # a complete-looking but garbled line is also a torn write
        if keep != size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return size - keep


class ResultWriter:
    """Append-only JSON-lines writer that survives SIGKILL at any point (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired = repair_tail(path)
        self._f = open(path, "ab")

    def append(self, record: dict) -> None:
        self._f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def done_ids(final: Path) -> set[str]:
    """Ids already written to the final file or to any part file (from any world size)."""
    ids: set[str] = set()
    for p in [final, *dist_mod.existing_parts(final)]:
        ids.update(str(r.get("id")) for r in dist_mod.read_jsonl(p))
    return ids


# ------------------------------------------------------------------------------------------------ loop
@dataclass
class Sample:
    """One benchmark sample ready for inference."""

    sample_id: str
    record: dict  # the official record fields (JSON-serialisable), completed by the runner
    query: str  # benchmark prompt text incl. the media tag
    modality: str  # "video" | "image"
    media_path: str
    split: list[int] | None = None


@dataclass
class RunStats:
    total: int = 0
    skipped: int = 0
    written: int = 0
    seconds: float = 0.0
    path: Path | None = None
    repaired_bytes: int = 0
    errors: list[str] = field(default_factory=list)


def run_samples(
    samples: Sequence[Sample],
    infer: Callable[[Sample], dict],
    final: Path,
    *,
    rank: int = 0,
    world: int = 1,
    progress: bool = True,
    desc: str = "eval",
) -> RunStats:
    """Evaluate this rank's shard of ``samples`` with ``infer`` and append the records.

    One process (``world == 1``) appends straight to ``final``; with more, each rank appends to its part
    file and the caller merges (:func:`stchat.eval.distributed.merge_parts`).
    """
    from tqdm import tqdm

    positions = dist_mod.shard_positions(len(samples), rank, world)
    out = final if world == 1 else dist_mod.part_path(final, rank, world)
    done = done_ids(final)
    todo = [samples[i] for i in positions if samples[i].sample_id not in done]
    stats = RunStats(total=len(positions), skipped=len(positions) - len(todo), path=out)
    t0 = time.perf_counter()
    with ResultWriter(out) as writer:
        stats.repaired_bytes = writer.repaired
        bar = tqdm(
            total=len(positions),
            initial=stats.skipped,
            desc=desc if world == 1 else f"{desc} [rank {rank}/{world}]",
            position=rank,
            disable=not progress,
            unit="sample",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        with bar:
            for sample in todo:
                writer.append(infer(sample))
                stats.written += 1
                bar.update(1)
    stats.seconds = time.perf_counter() - t0
    return stats


# --------------------------------------------------------------------------------------- model glue
@dataclass
class Decoding:
    """Decoding settings; ``official`` = the official near-greedy sampling (Q22)."""

    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int = 1024
    seed: int = 0

    @classmethod
    def official(cls, max_new_tokens: int = 1024, seed: int = 0) -> Decoding:
        from stchat.chat import OFFICIAL_SAMPLING  # the one definition of the official sampling (Q22)

        return cls(**OFFICIAL_SAMPLING, max_new_tokens=max_new_tokens, seed=seed)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def sample_seed(base: int, sample_id: str) -> int:
    """Per-sample seed independent of order, shard and resume (ids are positions or strings)."""
    import zlib

    return (int(base) * 1_000_003 + zlib.crc32(str(sample_id).encode())) % (2**31 - 1)


class Engine:
    """Loads the model once and answers one :class:`Sample` at a time (the official inference path)."""

    def __init__(self, model: str, *, device: str | None = None, dtype: str | None = None,
                 decoding: Decoding | None = None, adapter: str | None = None) -> None:
        from stchat.model.loading import load_model

        t0 = time.perf_counter()
        self.model, self.tokenizer = load_model(model, device=device, dtype=dtype, adapter=adapter)
        self.load_s = time.perf_counter() - t0
        self.decoding = decoding or Decoding()

    def __call__(self, sample: Sample) -> dict:
        from stchat.processing.decode import decode_output
        from stchat.processing.image import preprocess
        from stchat.processing.prompt import build_prompt

        d = self.decoding
        t0 = time.perf_counter()
        prompt = build_prompt(self.tokenizer, sample.query, sample.modality, front_end="benchmark")
        frames = _load_media(sample)
        pixels = preprocess(frames)
        t1 = time.perf_counter()
        import torch

        ids = self.model.generate_ids(
            torch.tensor([prompt.input_ids], dtype=torch.long),
            pixel_values=pixels,
            modality=sample.modality,
            variables=prompt.variables,
            max_new_tokens=d.max_new_tokens,
            do_sample=d.do_sample,
            temperature=d.temperature,
            top_p=d.top_p,
            top_k=d.top_k,
            seed=sample_seed(d.seed, sample.sample_id) if d.do_sample else None,
        )
        t2 = time.perf_counter()
        outputs, converted = decode_output(self.tokenizer, ids)
        rec = dict(sample.record)
        rec["variables"] = prompt.variables
        rec["outputs"] = outputs
        rec["converted_outputs"] = converted
        rec["id"] = sample.sample_id
        rec["timing"] = {
            "media_s": round(t1 - t0, 4),
            "generate_s": round(t2 - t1, 4),
            "new_tokens": len(ids),
            "decoding": d.as_dict(),
        }
        return rec


def _load_media(sample: Sample) -> Any:
    if sample.modality == "image":
        from PIL import Image

        try:
            return Image.open(sample.media_path).convert("RGB")
        except OSError as exc:
            raise RunError(f"cannot read image {sample.media_path}: {exc}") from exc
    from stchat.video.io import probe, read_frames
    from stchat.video.sampling import official_frame_indices

    info = probe(sample.media_path)
    indices = official_frame_indices(info.frame_count, sample.split)
    return read_frames(sample.media_path, indices)


# ------------------------------------------------------------------------------------------ benchmarks
@dataclass(frozen=True)
class Subset:
    """Which items of each benchmark file to run, and how prompt phrases are drawn.

    ``first``/``random_n`` select items by their position in the file (after the official 2000-item cut of
    ST-Align, Q17); the position is the sample id, so a subset resumes into, and merges with, any other
    run of the same file. ``seed=None`` draws phrases from the unseeded module ``random`` as the official
    classes do (Q17/Q18); an integer gives every item its own phrase RNG (see ``stchat.eval.datasets``).
    """

    first: int | None = None
    random_n: int | None = None
    subset_seed: int = 0
    seed: int | None = 0


def load_samples(entry: Any, subset: Subset | None = None) -> list[Sample]:
    """The samples of one benchmark entry, built by the official-format dataset readers."""
    from stchat.eval import datasets

    sub = subset or Subset()
    items = datasets.load_benchmark(entry.task_kind, entry.ann_path, entry.data_folder, seed=sub.seed,
                                    first=sub.first, random_n=sub.random_n, subset_seed=sub.subset_seed)
    out = []
    for item in items:
        rec = dict(item.record)
        modality = "image" if item.task == "rec" else "video"
        out.append(Sample(sample_id=str(item.index), record=rec, query=str(rec["prompt"]), modality=modality,
                          media_path=str(item.media_path), split=item.split))
    return out


def check_media(name: str, samples: Sequence[Sample]) -> None:
    """Fail before the model loads when media files are missing.

    The official loop swaps a failing item for the next one (Q19), which silently changes the benchmark;
    we stop instead, naming how many files are missing and the first one.
    """
    missing = sorted({s.media_path for s in samples if not os.path.isfile(s.media_path)})
    if missing:
        raise RunError(f"{name}: {len(missing)} media file(s) not found, e.g. {missing[0]}")


def run_entry(
    entry: Any,
    infer: Callable[[Sample], dict],
    final: Path,
    *,
    subset: Subset | None = None,
    progress: bool = True,
) -> RunStats:
    """Run one benchmark entry on this process's shard; with several ranks, merge when all are done."""
    samples = load_samples(entry, subset)
    return run_distributed(samples, infer, final, progress=progress, desc=entry.name)


def run_distributed(
    samples: Sequence[Sample],
    infer: Callable[[Sample], dict],
    final: Path,
    *,
    progress: bool = True,
    desc: str = "eval",
) -> RunStats:
    """This process's shard (launcher env), then -- with several ranks -- barrier and merge on rank 0."""
    info = dist_mod.dist_info()
    stats = run_samples(samples, infer, final, rank=info.rank, world=info.world, progress=progress, desc=desc)
    if info.world > 1:
        dist_mod.barrier()
        if info.is_main:
            dist_mod.merge_parts(final, [s.sample_id for s in samples])
        dist_mod.barrier()
    return stats


def add_run_arguments(p: argparse.ArgumentParser, sweep: bool = False) -> None:
    """Arguments shared by ``eval run`` and ``eval sweep``."""
    from stchat.eval.sources import OFFICIAL_FILES
    from stchat.tasks import benchmark_tasks

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
    from stchat.eval import sources

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
    from stchat.eval.results import result_path
    from stchat.eval.sources import check_routing
    from stchat.model.loading import default_model_source

    entries = entries_from_args(args)
    subset = subset_from_args(args)
    decoding = _decoding_from_args(args, override)
    model = args.model or default_model_source()
    sub_dir = args.sub_dir
    if getattr(args, "adapter", None) and sub_dir == "default":
        sub_dir = f"default/adapter-{Path(args.adapter).resolve().name}"  # never mix with base results
    if sub_dir_suffix:
        sub_dir = f"{sub_dir}/{sub_dir_suffix}"
    info = dist_mod.dist_info()
    plan = []
    for e in entries:
        final = result_path(args.save_dir, model, sub_dir, e.name, e.task, e.dataset)
        warning = check_routing(e, final, args.save_dir)
        if warning and info.is_main:
            print(f"stchat: warning: {warning}", file=sys.stderr)
        samples = load_samples(e, subset)
        check_media(e.name, samples)
        plan.append((e, final, samples))
    joined = dist_mod.init_process_group(info)
    try:
        key = (model, _device_for(info, args.device), args.dtype, getattr(args, "adapter", None))
        engine = (engines or {}).get(key)
        if engine is None:
            engine = Engine(model, device=key[1], dtype=args.dtype, decoding=decoding, adapter=key[3])
            if engines is not None:
                engines[key] = engine
        engine.decoding = decoding
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
    from stchat.eval.report import scored_samples

    # Every entry shares <save_dir>/<model>/<sub_dir>; score it and keep exactly this run's samples (a
    # result file may also hold samples of an earlier, different subset).
    _, per = scored_samples(plan[0][1].parents[2], captions=False)
    out = []
    for e, _, samples in plan:
        ids = {s.sample_id for s in samples}
        out += [s for s in per.get(e.name, []) if s.sample_id in ids]
    return out


def _device_for(info: dist_mod.DistInfo, device: str | None) -> str | None:
    if device is not None:
        return device
    import torch

    return f"cuda:{info.local_rank}" if torch.cuda.is_available() else None


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


def main(argv: list[str] | None = None) -> int:
    """``python -m stchat.eval.runner {run,report,sweep,make-synthetic} ...``: as ``stchat eval``.

    Useful as a launcher target (``torchrun -m stchat.eval.runner run ...``) independent of the CLI wiring.
    """
    from stchat.eval import report, sweep, synthetic_bench

    parser = argparse.ArgumentParser(prog="python -m stchat.eval.runner")
    sub = parser.add_subparsers(dest="eval_command", required=True)
    register(sub)
    report.register(sub)
    sweep.register(sub)
    synthetic_bench.register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except StchatError as exc:
        print(f"stchat: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
