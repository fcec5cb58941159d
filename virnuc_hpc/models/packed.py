"""Fixed-shape execution of a batch, so that a row's bits depend on that row alone.

BLAS and attention kernels choose their algorithm (tiles, reduction order, vector tails, split
reductions) by the shapes they are given, so a row computed in a batch of another size or width
can come out different in the last bits. Here no kernel ever sees a shape that depends on the
batch:

- **Token-wise steps in fixed chunks.** A batch is laid out *packed*: every token of every
  sequence one after another, without padding, cut into chunks of exactly `chunk_tokens` rows
  (the last chunk filled with padding tokens, which are never read back). Embeddings, norms,
  projections, GELU and residuals run chunk by chunk: each call has the shape
  [chunk_tokens, dim], whatever the batch holds and wherever a token sits in it.
- **Attention in fixed groups.** Attention mixes tokens only within a sequence. A sequence of n
  tokens is given the width `width(n)` (n rounded up to a multiple of WIDTH_STEP: a function of
  its own length), and the sequences of one width are computed `group_rows(width)` at a time,
  the empty slots of the last group filled. Each attention call has the shape
  [group_rows(W), heads, W, head_dim], its padded keys always masked (a mask is given even when a
  group has no padding), so the kernel, its tiles and the length of every softmax and reduction
  are the same for a given sequence in any batch. Pooling runs on the same groups.
- **Tables built once.** Rotary and ALiBi tables are computed in fixed blocks, never at the
  length of the batch at hand.
- **One thread on a CPU.** How a CPU kernel splits its work between threads can change which
  code path (vector body, tail, reduction split) a given element takes; the invariant forward
  runs with one intra-op thread (`one_thread`). Processes (`run --parallel`) use the other cores.

What stays is the kernel's own determinism for a fixed shape (the same algorithm on the same
shape gives the same bits whatever the row's position in it), which tests/models/test_packed.py
checks on this machine's BLAS, and the promise holds for the same hardware and software.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..core.shapes import Shapes

TABLE_BLOCK = 256  # rotary tables are computed in blocks of this many positions


@dataclass(frozen=True)
class Group:
    """Sequences of one width, computed together in `rows` slots of `width` positions."""

    width: int
    members: list[int]       # batch indices in slot order (fewer than `rows` in a last group)
    lengths: torch.Tensor    # [rows] token counts; an empty slot counts as full (no NaN rows)
    index: torch.Tensor      # [rows * width] the packed row of each grid position (the zero row
    #                          of the buffers where a position holds no token)
    source: torch.Tensor     # [n] packed rows of the group's tokens, slot by slot
    slots: torch.Tensor      # [n] and their slot
    positions: torch.Tensor  # [n] and position in it

    @property
    def rows(self) -> int:
        return self.lengths.shape[0]

    def keys(self) -> torch.Tensor:
        """[rows, width] bool: positions holding a token (the key mask)."""
        positions = torch.arange(self.width, device=self.lengths.device)
        return positions < self.lengths.unsqueeze(1)

    def gather(self, flat: torch.Tensor) -> torch.Tensor:
        """[rows, width, ...] from a packed buffer (Packed.buffer: its zero row fills the
        positions without a token), in one copy."""
        return flat.index_select(0, self.index).view(self.rows, self.width, *flat.shape[1:])

    def scatter(self, heads: torch.Tensor, flat: torch.Tensor) -> None:
        """Write the tokens of attention output [rows, heads, width, head_dim] back into packed
        `flat` [padded + 1, heads * head_dim] rows."""
        flat.index_copy_(0, self.source,
                         heads[self.slots, :, self.positions].reshape(len(self.source), -1))


@dataclass(frozen=True)
class Packed:
    """A batch of token sequences, packed for fixed-shape kernels.

    Its buffers (`buffer`) hold `padded` rows, the tokens then the last chunk's padding, and
    one zero row after them, which attention groups read where a position holds no token."""

    tokens: torch.Tensor     # [padded] token ids: the sequences back to back, then padding
    sequence: torch.Tensor   # [padded] the batch index of each token's sequence (0 on padding)
    lengths: list[int]       # token count of each sequence
    chunk: int               # rows per token-wise call
    groups: list[Group]

    @property
    def padded(self) -> int:
        return self.tokens.shape[0]

    @property
    def real(self) -> int:
        return sum(self.lengths)

    def chunks(self) -> list[slice]:
        return [slice(start, start + self.chunk) for start in range(0, self.padded, self.chunk)]

    def buffer(self, width: int, like: torch.Tensor, dtype: torch.dtype | None = None
               ) -> torch.Tensor:
        """[padded + 1, width] on `like`'s device, zero after the real tokens (the padding and
        the zero row), to be filled chunk by chunk."""
        out = like.new_empty(self.padded + 1, width, dtype=dtype or like.dtype)
        out[self.real:].zero_()
        return out

    def map(self, out: torch.Tensor, step: Callable[..., torch.Tensor],
            *inputs: torch.Tensor) -> torch.Tensor:
        """`out[c] = step(*(t[c] for t in inputs))` for every chunk c of rows: each call of
        `step` sees [chunk, ...] inputs, one shape whatever the batch."""
        for rows in self.chunks():
            out[rows] = step(*(t[rows] for t in inputs))
        return out

    def each(self, step: Callable[..., None], *tensors: torch.Tensor) -> None:
        """`step(*(t[c] for t in tensors))` for every chunk c: a step that writes its result
        into one of the chunk views itself (no copy)."""
        for rows in self.chunks():
            step(*(t[rows] for t in tensors))

    def pooled(self, hidden: torch.Tensor, keep: Callable[[Group], torch.Tensor]) -> torch.Tensor:
        """[sequences, dim] float32: the mean of `hidden` (a buffer) over the positions
        `keep(group)` [rows, width] marks, computed group by group (fixed shapes)."""
        out = torch.empty(len(self.lengths), hidden.shape[1], dtype=torch.float32,
                          device=hidden.device)
        for group in self.groups:
            weights = keep(group).to(torch.float32)
            total = torch.bmm(weights.unsqueeze(1), group.gather(hidden).float()).squeeze(1)
            means = total / weights.sum(1, keepdim=True)
            out[group.members] = means[: len(group.members)]
        return out


def pack(tokens: Sequence[np.ndarray], shapes: Shapes, pad_id: int,
         device: torch.device | str = "cpu") -> Packed:
    """Lay out `tokens` (int64 arrays) for fixed-shape kernels on `device`."""
    lengths = [len(t) for t in tokens]
    total = sum(lengths)
    padded = max(1, -(-total // shapes.chunk_tokens)) * shapes.chunk_tokens
    flat = np.full(padded, pad_id, dtype=np.int64)
    owner = np.zeros(padded, dtype=np.int64)
    starts = np.zeros(len(tokens) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    if tokens:
        flat[:total] = np.concatenate(tokens)
        owner[:total] = np.repeat(np.arange(len(tokens)), lengths)
    groups = [_group(width, members, lengths, starts, padded, shapes, device)
              for width, members in _by_width(lengths, shapes)]
    return Packed(_to(flat, device), _to(owner, device), lengths, shapes.chunk_tokens, groups)


def _by_width(lengths: list[int], shapes: Shapes) -> list[tuple[int, list[int]]]:
    """(width, batch indices) for every group: by width, then batch order, `group_rows` each."""
    widths: dict[int, list[int]] = {}
    for index, n in enumerate(lengths):
        widths.setdefault(shapes.width(n), []).append(index)
    out = []
    for width in sorted(widths, reverse=True):
        rows = shapes.group_rows(width)
        members = widths[width]
        out += [(width, members[i:i + rows]) for i in range(0, len(members), rows)]
    return out


def _group(width: int, members: list[int], lengths: list[int], starts: np.ndarray,
           padded: int, shapes: Shapes, device) -> Group:
    rows = shapes.group_rows(width)
    slot_lengths = np.full(rows, width, dtype=np.int64)  # empty slots: full, all zeros
    index = np.full((rows, width), padded, dtype=np.int64)   # the zero row
    source, slots, positions = [], [], []
    for slot, member in enumerate(members):
        n = lengths[member]
        slot_lengths[slot] = n
        index[slot, :n] = np.arange(starts[member], starts[member] + n)
        source.append(index[slot, :n])
        slots.append(np.full(n, slot, dtype=np.int64))
        positions.append(np.arange(n, dtype=np.int64))
    return Group(width, members, _to(slot_lengths, device), _to(index.reshape(-1), device),
                 *(_to(np.concatenate(a), device) for a in (source, slots, positions)))


def _to(array: np.ndarray, device) -> torch.Tensor:
    tensor = torch.from_numpy(array)
    if torch.device(device).type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


class BlockTable:
    """Rows of a table f(positions) computed in fixed blocks of TABLE_BLOCK positions, so that
    a position's row never depends on how long a table some batch needed."""

    def __init__(self, build: Callable[[torch.Tensor], torch.Tensor]):
        self.build = build
        self.blocks: dict[tuple[str, int], torch.Tensor] = {}
        self.lock = threading.Lock()

    def rows(self, length: int, device) -> torch.Tensor:
        """Rows 0..length-1 on `device`."""
        count = -(-length // TABLE_BLOCK)
        parts = [self._block(b, torch.device(device)) for b in range(count)]
        return torch.cat(parts)[:length]

    def _block(self, block: int, device: torch.device) -> torch.Tensor:
        key = (str(device), block)
        with self.lock:
            if key not in self.blocks:
                start = block * TABLE_BLOCK
                positions = torch.arange(start, start + TABLE_BLOCK, device=device)
                self.blocks[key] = self.build(positions)
            return self.blocks[key]


@contextmanager
def one_thread(device: torch.device):
    """One intra-op thread for the duration (on a CPU; a GPU's kernels do not care)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def padding(lengths: Sequence[int], shapes: Shapes,
            batches: Sequence[Sequence[int]]) -> tuple[float, float]:
    """(share of token-wise rows that are padding, share of attention positions that are
    padding) when `batches` (index lists) of sequences of `lengths` tokens are packed."""
    rows = tokens = attended = 0
    for batch in batches:
        sizes = [lengths[i] for i in batch]
        used = sum(sizes)
        tokens += used
        rows += max(1, -(-used // shapes.chunk_tokens)) * shapes.chunk_tokens
        widths: dict[int, int] = {}
        for n in sizes:
            widths[shapes.width(n)] = widths.get(shapes.width(n), 0) + 1
        for width, count in widths.items():
            per = shapes.group_rows(width)
            attended += -(-count // per) * per * width
    if not tokens:
        return 0.0, 0.0
    return 1.0 - tokens / rows, 1.0 - tokens / attended
