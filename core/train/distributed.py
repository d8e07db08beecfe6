"""Data-parallel training under `torchrun`: the few collective operations the SFT loop needs.

    torchrun --nproc-per-node 2 -m mllm.cli sft instructions.jsonl -o runs/key    # 2 processes

torchrun starts N copies of the command with RANK, LOCAL_RANK and WORLD_SIZE in the environment.
`start()` joins them into one process group (NCCL on CUDA, gloo on CPU) and says which share this
process is; alone (no WORLD_SIZE, or 1) it does nothing and every function here is a no-op, so the
loop reads the same with one process or many.

How the SFT loop uses it (core/train/sft.py):
- every rank builds the same model from the same seed and reads the same records; the model is
  wrapped in `DistributedDataParallel`, which averages the gradients over the ranks in backward;
- a micro-batch of the run is `batch_size * world` records; rank r takes every world-th of them
  (`records[r::world]`), so N processes with `--batch-size B` step exactly like one process with
  `--batch-size N*B` (tested to float tolerance);
- token counts, loss sums and the stop flag are summed over ranks (`all_sum`), so the metrics and
  the token weighting are those of the whole step;
- rank 0 writes checkpoints and metrics; every rank's RNG state is gathered into the checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Share", "start", "stop", "all_sum", "gather_tensors", "average_gradients", "barrier",
           "torchrun_world_size", "torchrun_device"]


@dataclass(frozen=True)
class Share:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def torchrun_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def torchrun_device(device: str) -> str:
    """`cuda` -> this rank's GPU (`cuda:LOCAL_RANK`) under torchrun; other devices unchanged."""
    if device == "cuda" and torchrun_world_size() > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def start(device: str) -> Share:
    """Join torchrun's process group (once); (0, 1) when not under torchrun."""
    if torchrun_world_size() <= 1:
        return Share()
    if not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Share(dist.get_rank(), dist.get_world_size())


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def _collective_device() -> torch.device:
    # NCCL moves CUDA tensors only; gloo moves CPU tensors.
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_sum(*values: float) -> list[float]:
    """The sum of each value over every rank (float64); the values themselves when alone."""
    if not _active():
        return [float(v) for v in values]
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_tensors(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped tensor, in rank order (on the CPU)."""
    if not _active():
        return [tensor]
    local = tensor.to(_collective_device())
    out = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    return [t.cpu() for t in out]


def average_gradients(parameters) -> None:
    """Each parameter's gradient averaged over the ranks (a missing one counts as zero), in place;
    for loops that do not run their forward through DistributedDataParallel (grpo)."""
    if not _active():
        return
    device = _collective_device()
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        grad = parameter.grad.to(device)
        dist.all_reduce(grad)
        parameter.grad.copy_(grad.to(parameter.grad.device) / dist.get_world_size())


def barrier() -> None:
    if _active():
        dist.barrier()
