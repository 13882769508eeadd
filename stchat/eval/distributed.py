"""Data-parallel sharding of a benchmark run and the merge of the per-rank result files.

Launch with an existing engine -- ``torchrun --nproc_per_node N -m stchat.cli eval run ...`` or
``accelerate launch`` -- which sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; we only read them.

Unlike the official chunking (reference Q19: ``ceil(total / chunks)`` slices whose last chunk runs past the
end and re-evaluates sample 0, so numbers depend on the GPU count) the assignment here is a pure
function of the sample id: rank r takes every sample whose position ``i`` satisfies ``i % world == r``.
No sample is duplicated or dropped, for any world size.

Each rank appends to its own part file ``<name>.json.part-<r>-of-<w>`` (the suffix is not ``.json`` on
purpose: the official scorer scores every ``*.json`` it finds, Q24, and must not see parts). When all
ranks are done, :func:`merge_parts` folds the parts into the final ``<name>.json`` in dataset order,
atomically (temp file + rename), de-duplicating by id. A run resumed with a different world size still
skips every id found in the final file or in any part.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PART_INFIX = ".part-"


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank and world size from the launcher's environment (1 process when not launched)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"invalid launcher environment: RANK={rank} WORLD_SIZE={world}")
    return DistInfo(rank=rank, world=world, local_rank=local)


def shard_positions(n: int, rank: int, world: int) -> list[int]:
    """Dataset positions rank ``rank`` of ``world`` evaluates: round-robin, deterministic, disjoint."""
    return list(range(rank, n, world))


def part_path(final: Path, rank: int, world: int) -> Path:
    return final.with_name(f"{final.name}{PART_INFIX}{rank}-of-{world}")


def existing_parts(final: Path) -> list[Path]:
    """Every part file of ``final`` from any earlier world size."""
    if not final.parent.is_dir():
        return []
    return sorted(p for p in final.parent.iterdir() if p.name.startswith(final.name + PART_INFIX))


def init_process_group(info: DistInfo) -> bool:
    """Join the launcher's process group (gloo on CPU, nccl on CUDA). Returns True when one was joined."""
    if info.world == 1:
        return False
    import torch
    import torch.distributed as dist

    if dist.is_available() and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        # A long benchmark keeps ranks apart for hours before the final barrier: the default 30 min
        # collective timeout would kill a healthy run.
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=48))
    return True


def device_for(info: DistInfo, device: str | None) -> str | None:
    """``device`` when given; under a launcher with CUDA, this process's GPU (``cuda:LOCAL_RANK``)."""
    if device is not None:
        return device
    import torch

    return f"cuda:{info.local_rank}" if torch.cuda.is_available() else None


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def read_jsonl(path: Path) -> list[dict]:
    """Complete JSON lines of a file; a torn or garbled line (a killed writer) is skipped."""
    out: list[dict] = []
    if not path.is_file():
        return out
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # torn last line
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def merge_parts(final: Path, order: Sequence[str], sources: Iterable[Path] | None = None) -> int:
    """Fold the part files into ``final`` (dataset order, one record per id); returns the record count.

    ``order`` lists every sample id of this run in dataset order; ids found nowhere are simply absent (a
    partial merge is still consistent). Records whose id is not in ``order`` -- samples of an earlier run
    over a different subset -- are kept, after the ordered ones, in the order they were found: a merge
    never deletes results. The final file is replaced atomically, then the parts are deleted, so a kill at
    any point leaves either the old or the new final file plus parts whose ids it de-duplicates.
    """
    parts = list(sources) if sources is not None else existing_parts(final)
    by_id: dict[str, dict] = {}
    for path in [final, *parts]:
        for rec in read_jsonl(path):
            by_id.setdefault(str(rec.get("id")), rec)
    rank_of = {sid: i for i, sid in enumerate(order)}
    ids = sorted((sid for sid in by_id if sid in rank_of), key=rank_of.__getitem__)
    ids += [sid for sid in by_id if sid not in rank_of]
    tmp = final.with_name(final.name + ".merge-tmp")
    with open(tmp, "wb") as f:
        for sid in ids:
            f.write((json.dumps(by_id[sid], ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    for p in parts:
        p.unlink(missing_ok=True)
    return len(ids)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
