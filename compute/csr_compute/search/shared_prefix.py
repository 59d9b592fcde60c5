"""Shared-prefix attention: each prompt's keys/values are stored once and every beam row attends to them in place.

Why: a node of a CSR tree is the prompt (image included: 576 of LLaVA-1.5's ~590 prompt tokens) plus a
short response, and 5 token beams x up to 32 nodes of up to 8 prompts decode together. A standard
``DynamicCache`` holds one full cache per batch row, so each row carried its own copy of its prompt's
~590-token cache, and beam reordering copied all of it at every token. Here:

- ``PrefixPool`` holds the keys/values of the prompts in flight, one slot per prompt, per layer a
  ``(slots, kv_heads, capacity, head_dim)`` tensor (slots padded to the longest prompt; a mask hides
  the padding). A prompt is encoded once when it enters the pool and its slot is freed when its tree is
  done: the prefix is stored once per prompt, never per node or beam.
- ``RowBatch`` holds the per-row *suffix* (the node's response so far and the tokens being generated),
  preallocated per layer as ``(rows, kv_heads, suffix_capacity, head_dim)``, and the row -> slot map.
  Beam reordering and finished nodes leaving the batch move suffix rows only.
- Attention is split in two parts combined exactly by log-sum-exp. The prefix part groups the rows of
  each prompt: the queries of all rows of one slot are stacked along the query axis, so one batched
  matmul per layer reads each prompt's keys/values once for all its rows (``(slots, kv_heads,
  rows_per_slot * q, head_dim) @ (slots, kv_heads, head_dim, capacity)``). The suffix part is ordinary
  per-row attention over the short suffix (causal within the block fed). With ``lse = logaddexp(lse_p,
  lse_s)``, ``out = out_p * exp(lse_p - lse) + out_s * exp(lse_s - lse)`` equals softmax attention over
  the concatenation of prefix and suffix.

It plugs into the model through transformers' attention interface (``AttentionInterface.register``),
so the model's own layers (projections, rotary embeddings, MLPs) run unchanged; only the attention
kernel is ours. It is hand-written because neither transformers' cache classes (one cache per batch
row) nor torch's SDPA (no shared keys across rows, no log-sum-exp output) can express "many rows,
one prefix" without copying the prefix. The ``RowBatch`` travels to the attention function as a
keyword argument of the model call (``csr_rows=``); calls without it (the prompt's own prefill, any
other use of the model) fall through to SDPA.
"""

from __future__ import annotations

from typing import Any

import torch

ATTENTION_NAME = "csr_shared_prefix"


def _sdpa(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def shared_prefix_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: Any, scaling: float | None = None, dropout: float = 0.0,
                            csr_rows: "RowBatch | None" = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """The attention function registered as ``csr_shared_prefix``: shared prefix + suffix with ``csr_rows``, SDPA without."""
    if csr_rows is None:
        return _sdpa(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    return csr_rows.attend(module.layer_idx, query, key, value, scaling if scaling is not None else query.shape[-1] ** -0.5)


def install(model: Any) -> None:
    """Register the attention function (once per process) and make ``model``'s language model use it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if ATTENTION_NAME not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionInterface.register(ATTENTION_NAME, shared_prefix_attention)
        AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)  # prefill builds SDPA's masks
    config = getattr(model.config, "text_config", model.config)
    config._attn_implementation = ATTENTION_NAME


class PrefixPool:
    """Keys/values of the prompts in flight: one slot per prompt, per layer ``(slots, kv_heads, capacity, head_dim)``."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.lengths: list[int] = []  # 0 = free slot
        self.owners: list[Any] = []

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def add(self, layers: list[tuple[torch.Tensor, torch.Tensor]], owner: Any = None) -> int:
        """Store one prompt's per-layer ``(1, kv_heads, length, head_dim)`` keys/values; returns its slot."""
        length = layers[0][0].shape[2]
        slot = next((i for i, n in enumerate(self.lengths) if n == 0), len(self.lengths))
        if not self.keys:
            self.keys = [torch.zeros_like(k) for k, _ in layers]
            self.values = [torch.zeros_like(v) for _, v in layers]
            self.lengths, self.owners = [0], [None]
        grow_slots = max(0, slot + 1 - len(self.lengths))
        grow_len = max(0, length - self.capacity)
        if grow_slots or grow_len:
            for store in (self.keys, self.values):
                for i, t in enumerate(store):
                    store[i] = torch.nn.functional.pad(t, (0, 0, 0, grow_len, 0, 0, 0, grow_slots))
            self.lengths += [0] * grow_slots
            self.owners += [None] * grow_slots
        for i, (k, v) in enumerate(layers):
            self.keys[i][slot, :, :length] = k[0]
            self.values[i][slot, :, :length] = v[0]
        self.lengths[slot], self.owners[slot] = length, owner
        return slot

    def release(self, slot: int) -> None:
        self.lengths[slot], self.owners[slot] = 0, None

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    def valid_mask(self, lo: int, hi: int) -> torch.Tensor:
        device = self.keys[0].device
        lengths = torch.tensor(self.lengths[lo:hi], device=device)
        return torch.arange(self.capacity, device=device)[None, :] < lengths[:, None]


class RowBatch:
    """The rows of one batched search: per-row suffix keys/values and each row's prompt slot."""

    GROW = 16

    def __init__(self, pool: PrefixPool, row_slots: list[int], suffix_capacity: int, suffix_limit: int | None = None) -> None:
        self.pool = pool
        first = pool.keys[0]
        self.layers = len(pool.keys)
        self.kv_heads, self.head_dim = first.shape[1], first.shape[3]
        rows = len(row_slots)
        self.suffix_limit = suffix_limit or 1 << 30  # never more suffix positions than this
        suffix_capacity = min(suffix_capacity, self.suffix_limit)
        self.suffix_keys = [first.new_zeros(rows, self.kv_heads, suffix_capacity, self.head_dim) for _ in pool.keys]
        self.suffix_values = [first.new_zeros(rows, self.kv_heads, suffix_capacity, self.head_dim) for _ in pool.keys]
        self.suffix_valid = torch.zeros(rows, suffix_capacity, dtype=torch.bool, device=first.device)
        self.length = 0  # suffix positions written
        self.feeding = 0  # tokens of the forward pass in progress
        self._set_rows(row_slots)

    def _set_rows(self, row_slots: list[int]) -> None:
        self.row_slots = list(row_slots)
        self.slot_lo, self.slot_hi = min(row_slots), max(row_slots) + 1
        counts: dict[int, int] = {}
        flat = []
        for slot in row_slots:
            flat.append(slot - self.slot_lo)
            counts[slot] = counts.get(slot, 0) + 1
        self.per_slot = max(counts.values())
        rank: dict[int, int] = {}
        for i, slot in enumerate(row_slots):
            flat[i] = flat[i] * self.per_slot + rank.get(slot, 0)
            rank[slot] = rank.get(slot, 0) + 1
        device = self.suffix_valid.device
        self.flat_index = torch.tensor(flat, device=device)
        valid = self.pool.valid_mask(self.slot_lo, self.slot_hi)
        # Additive padding mask of the prefix, (slots, 1, 1, capacity): 0 where a key exists, a large negative elsewhere.
        self.prefix_bias = torch.zeros(valid.shape, device=device).masked_fill_(~valid, -1.0e30)[:, None, None, :]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.suffix_keys + self.suffix_values)

    @property
    def bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.suffix_keys[0].element_size()

    def _grow(self, needed: int) -> None:
        """Suffix capacity grows in steps of ``GROW`` tokens, so that rows hold little more than they use."""
        have = self.suffix_valid.shape[1]
        extra = max(needed, min(have + self.GROW, self.suffix_limit)) - have
        for store in (self.suffix_keys, self.suffix_values):
            for i, t in enumerate(store):
                store[i] = torch.nn.functional.pad(t, (0, 0, 0, extra))
        self.suffix_valid = torch.nn.functional.pad(self.suffix_valid, (0, extra))

    def begin(self, valid: torch.Tensor) -> None:
        """A forward pass feeds ``valid.shape[1]`` tokens per row; ``valid`` marks real (not padding) ones."""
        self.feeding = valid.shape[1]
        if self.length + self.feeding > self.suffix_valid.shape[1]:
            self._grow(self.length + self.feeding)
        self.suffix_valid[:, self.length:self.length + self.feeding] = valid

    def end(self) -> None:
        self.length += self.feeding
        self.feeding = 0

    def select(self, index: torch.Tensor, row_slots: list[int]) -> None:
        """Keep rows ``index`` (in this order, repeats allowed), e.g. repeat each node per beam or drop finished ones."""
        for store in (self.suffix_keys, self.suffix_values):
            for i, t in enumerate(store):
                store[i] = t[index]  # one copy of the rows kept (capacity beyond the used length is small)
        self.suffix_valid = self.suffix_valid[index]
        self._set_rows(row_slots)

    def reorder(self, index: torch.Tensor) -> None:
        """Beam reordering: row r takes row ``index[r]``'s suffix (rows stay with their prompt)."""
        used = self.length
        for store in (self.suffix_keys, self.suffix_values):
            for t in store:
                t[:, :, :used] = t[index, :, :used]
        self.suffix_valid[:, :used] = self.suffix_valid[index, :used]

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               scaling: float) -> tuple[torch.Tensor, None]:
        rows, heads, q, d = query.shape
        kvh = self.kv_heads
        groups = heads // kvh
        start, end = self.length, self.length + q
        self.suffix_keys[layer][:, :, start:end] = key
        self.suffix_values[layer][:, :, start:end] = value

        # Prefix part: rows grouped by prompt slot, so each prompt's keys/values are read once per layer.
        slots, per = self.slot_hi - self.slot_lo, self.per_slot
        capacity = self.pool.capacity
        pk = self.pool.keys[layer][self.slot_lo:self.slot_hi].reshape(slots * kvh, capacity, d)
        pv = self.pool.values[layer][self.slot_lo:self.slot_hi].reshape(slots * kvh, capacity, d)
        grouped = query.new_zeros(slots * per, heads, q, d)
        grouped[self.flat_index] = query
        grouped = grouped.view(slots, per, kvh, groups, q, d).permute(0, 2, 1, 3, 4, 5).reshape(slots * kvh, per * groups * q, d)
        # Scale and padding mask fused into the matmul (baddbmm), then softmax in place, in fp32.
        bias = self.prefix_bias.to(query.dtype).expand(slots, kvh, 1, capacity).reshape(slots * kvh, 1, capacity)
        out_p, lse_p = _softmax_attend(torch.baddbmm(bias, grouped, pk.transpose(1, 2), alpha=scaling), pv)
        out_p = out_p.view(slots, kvh, per, groups, q, d).permute(0, 2, 1, 3, 4, 5).reshape(slots * per, heads, q, d)
        lse_p = lse_p.view(slots, kvh, per, groups, q).permute(0, 2, 1, 3, 4).reshape(slots * per, heads, q)
        out_p, lse_p = out_p[self.flat_index], lse_p[self.flat_index]

        # Suffix part: each row's own response tokens, causal within the block being fed.
        sk = self.suffix_keys[layer][:, :, :end].reshape(rows * kvh, end, d)
        sv = self.suffix_values[layer][:, :, :end].reshape(rows * kvh, end, d)
        scores = torch.bmm(query.reshape(rows * kvh, groups * q, d), sk.transpose(1, 2))
        causal = torch.arange(end, device=query.device)[None, :] <= torch.arange(start, end, device=query.device)[:, None]
        valid = self.suffix_valid[:, None, None, None, :end] & causal[None, None, None]
        scores = scores.view(rows, kvh, groups, q, end).masked_fill_(~valid, torch.finfo(scores.dtype).min)
        out_s, lse_s = _softmax_attend(scores.view(rows * kvh, groups * q, end), sv, scaling)
        out_s, lse_s = out_s.view(rows, heads, q, d), lse_s.view(rows, heads, q)

        lse = torch.logaddexp(lse_p, lse_s)
        out = out_p * torch.exp(lse_p - lse)[..., None] + out_s * torch.exp(lse_s - lse)[..., None]
        return out.to(query.dtype).transpose(1, 2).contiguous(), None


def _softmax_attend(scores: torch.Tensor, values: torch.Tensor, scaling: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention of (batch, queries, keys) scores over (batch, keys, dim) values: fp32 output and log-sum-exp."""
    scores = scores.float()
    if scaling != 1.0:
        scores = scores.mul_(scaling) if scores.dtype == torch.float32 else scores * scaling
    top = scores.amax(dim=-1, keepdim=True)
    weights = scores.sub_(top).exp_()
    total = weights.sum(dim=-1, keepdim=True)
    out = torch.bmm(weights.to(values.dtype), values).float().div_(total)
    return out, (top + total.log()).squeeze(-1)
