"""Shared-prefix attention: each prompt's keys/values are stored once and every beam row attends to them in place.

Why: a node of a CSR tree is the prompt (image included: 576 of LLaVA-1.5's ~590 prompt tokens) plus a
short response, and 5 token beams x up to 32 nodes of up to 8 prompts decode together. A standard
``DynamicCache`` holds one full cache per batch row, so each row carried its own copy of its prompt's
~590-token cache (and of its node's response), and beam reordering copied all of it at every token. Here
a row's keys/values come in three levels, each stored once:

- the prompt prefix, once per prompt: ``PrefixPool`` holds the prompts in flight, one slot per prompt,
  per layer a ``(slots, kv_heads, capacity, head_dim)`` tensor (slots padded to the longest prompt; a
  mask hides the padding). A prompt is encoded once when it enters the pool; its slot is freed when its
  tree is done;
- the node's response so far, once per node, shared by the node's beams (``RowBatch.share_suffix``):
  its keys/values come from the parent's expansion (the beam row that produced the sentence), cached as
  chunks shared between parent and children (``set_chains``), so an expansion feeds only the response's
  last token (without a chain the whole response is fed again);
- the row's own suffix, the tokens that beam generated, grown in small steps.

Beam reordering, finished nodes and groups that are done leaving the batch move suffix rows only.
Attention is split into the parts, combined exactly by log-sum-exp. For a shared level the queries of
all rows of one group (prompt or node) are stacked along the query axis, so one batched matmul per layer
reads each group's keys/values once for all its rows (``(groups * kv_heads, rows_per_group * q,
head_dim) @ (groups * kv_heads, head_dim, capacity)``, scale and padding mask fused in ``baddbmm``). The
suffix part is per-row attention, causal within the block fed. With ``lse = logsumexp(lse_parts)``,
``out = sum(out_part * exp(lse_part - lse))`` equals softmax attention over the concatenation.

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


class _Shared:
    """Keys/values that several rows attend to: per layer ``(groups, kv_heads, capacity, head_dim)`` and a padding mask.

    ``keys[layer]`` / ``values[layer]``: a list of per-layer tensors or one ``(layers, ...)`` tensor.
    """

    def __init__(self, keys: Any, values: Any, valid: torch.Tensor) -> None:
        self.keys, self.values = keys, values
        # Additive padding mask, (groups, 1, 1, capacity): 0 where a key exists, a large negative elsewhere.
        self.bias = torch.zeros(valid.shape, device=valid.device).masked_fill_(~valid, -1.0e30)[:, None, None, :]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for store in (self.keys, self.values) for t in store)

    def place(self, row_groups: list[int]) -> None:
        """Rows -> group: rows of one group are stacked, ``per`` of them at most (padding rows are zero queries)."""
        self.lo, self.hi = min(row_groups), max(row_groups) + 1
        rank: dict[int, int] = {}
        for group in row_groups:
            rank[group] = rank.get(group, 0) + 1
        self.per = max(rank.values())
        rank.clear()
        flat = []
        for group in row_groups:
            flat.append((group - self.lo) * self.per + rank.get(group, 0))
            rank[group] = rank.get(group, 0) + 1
        self.flat_index = torch.tensor(flat, device=self.bias.device)

    def attend(self, layer: int, query: torch.Tensor, scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(out, lse) of every row's queries over its group's keys; each group's keys are read once for all its rows."""
        rows, heads, q, d = query.shape
        groups, per = self.hi - self.lo, self.per
        keys, values = self.keys[layer][self.lo:self.hi], self.values[layer][self.lo:self.hi]
        kvh, capacity = keys.shape[1], keys.shape[2]
        heads_per_kv = heads // kvh
        stacked = query.new_zeros(groups * per, heads, q, d)
        stacked[self.flat_index] = query
        stacked = stacked.view(groups, per, kvh, heads_per_kv, q, d).permute(0, 2, 1, 3, 4, 5).reshape(groups * kvh, per * heads_per_kv * q, d)
        bias = self.bias[self.lo:self.hi].to(query.dtype).expand(groups, kvh, 1, capacity).reshape(groups * kvh, 1, capacity)
        scores = torch.baddbmm(bias, stacked, keys.reshape(groups * kvh, capacity, d).transpose(1, 2), alpha=scaling)
        out, lse = _softmax_attend(scores, values.reshape(groups * kvh, capacity, d))
        out = out.view(groups, kvh, per, heads_per_kv, q, d).permute(0, 2, 1, 3, 4, 5).reshape(groups * per, heads, q, d)
        lse = lse.view(groups, kvh, per, heads_per_kv, q).permute(0, 2, 1, 3, 4).reshape(groups * per, heads, q)
        return out[self.flat_index], lse[self.flat_index]


class RowBatch:
    """The rows of one batched search: the shared levels they attend to and each row's own suffix.

    Levels: the prompt prefix (a ``PrefixPool`` slot per prompt) and, after ``share_suffix``, each node's
    response so far (stored once per node, attended to by the node's beams). A row's suffix holds only
    the tokens it generates itself.
    """

    GROW = 8

    def __init__(self, pool: PrefixPool, row_slots: list[int], suffix_capacity: int, suffix_limit: int | None = None) -> None:
        self.pool = pool
        first = pool.keys[0]
        self.layers = len(pool.keys)
        self.kv_heads, self.head_dim = first.shape[1], first.shape[3]
        self.prefix = _Shared(pool.keys, pool.values, pool.valid_mask(0, len(pool.lengths)))
        self.nodes: _Shared | None = None
        self._new_suffix(len(row_slots), suffix_capacity, suffix_limit)
        self._set_rows(row_slots, None)

    def _new_suffix(self, rows: int, capacity: int, limit: int | None) -> None:
        first = self.pool.keys[0]
        self.suffix_limit = limit or 1 << 30  # never more suffix positions than this
        capacity = min(capacity, self.suffix_limit)
        # All layers in one tensor, (layers, rows, kv_heads, capacity, head_dim): selecting, growing and
        # copying rows out are one operation each, not one per layer (each a kernel launch on a GPU).
        self.suffix_keys = first.new_zeros(self.layers, rows, self.kv_heads, capacity, self.head_dim)
        self.suffix_values = first.new_zeros(self.layers, rows, self.kv_heads, capacity, self.head_dim)
        self.suffix_valid = torch.zeros(rows, capacity, dtype=torch.bool, device=first.device)
        self.length = 0  # suffix positions written
        self.feeding = 0  # tokens of the forward pass in progress

    def _set_rows(self, row_slots: list[int], row_nodes: list[int] | None) -> None:
        self._row_slots = list(row_slots)
        self.prefix.place(row_slots)
        if self.nodes is not None:
            self.nodes.place(row_nodes)

    def set_chains(self, chains: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> None:
        """Cached keys/values of each node's response (one row per node), as ``(layers, kv_heads, length, head_dim)`` chunks."""
        lengths = [sum(chunk[0].shape[2] for chunk in chain) for chain in chains]
        width = max(max(lengths), 1)
        first = self.pool.keys[0]
        keys = first.new_zeros(self.layers, len(chains), self.kv_heads, width, self.head_dim)
        values = first.new_zeros(self.layers, len(chains), self.kv_heads, width, self.head_dim)
        for row, chain in enumerate(chains):
            at = 0
            for chunk_keys, chunk_values in chain:
                size = chunk_keys.shape[2]
                keys[:, row, :, at:at + size] = chunk_keys
                values[:, row, :, at:at + size] = chunk_values
                at += size
        valid = torch.arange(width, device=first.device)[None, :] < torch.tensor(lengths, device=first.device)[:, None]
        self.nodes = _Shared(keys, values, valid)
        self.nodes.place(list(range(len(chains))))

    def fed_chunk(self, row: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys/values of the last ``count`` suffix positions of ``row`` (a node's fed tokens), copied."""
        end = self.length
        return (self.suffix_keys[:, row, :, end - count:end].clone(), self.suffix_values[:, row, :, end - count:end].clone())

    def row_chunk(self, position: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The keys/values a beam row has generated so far, copied (None when it has none yet)."""
        if self.length == 0:
            return None
        return (self.suffix_keys[:, position, :, :self.length].clone(),
                self.suffix_values[:, position, :, :self.length].clone())

    def share_suffix(self, rows_per_entry: int, capacity: int, limit: int) -> None:
        """The suffix written so far (one row per node), after the cached chain if any, becomes the shared node
        level; ``rows_per_entry`` beam rows per node follow, with empty suffixes."""
        used = self.length
        keys = self.suffix_keys[:, :, :, :used]
        values = self.suffix_values[:, :, :, :used]
        valid = self.suffix_valid[:, :used]
        if self.nodes is not None:  # the chain level comes first
            keys = torch.cat([self.nodes.keys, keys], dim=3)
            values = torch.cat([self.nodes.values, values], dim=3)
            valid = torch.cat([self.nodes.bias[:, 0, 0, :] == 0, valid], dim=1)
        self.nodes = _Shared(keys.contiguous(), values.contiguous(), valid)
        slots = self.prefix_rows
        count = len(slots)
        self._new_suffix(count * rows_per_entry, capacity, limit)
        self.nodes.place([i for i in range(count) for _ in range(rows_per_entry)])
        self._set_rows([s for s in slots for _ in range(rows_per_entry)],
                       [i for i in range(count) for _ in range(rows_per_entry)])

    @property
    def prefix_rows(self) -> list[int]:
        return self._row_slots

    def nbytes(self) -> int:
        shared = self.nodes.nbytes() if self.nodes is not None else 0
        return shared + 2 * self.suffix_keys.numel() * self.suffix_keys.element_size()

    @property
    def bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.suffix_keys[0].element_size()

    def _grow(self, needed: int) -> None:
        """Suffix capacity grows in steps of ``GROW`` tokens, so that rows hold little more than they use."""
        have = self.suffix_valid.shape[1]
        extra = max(needed, min(have + self.GROW, self.suffix_limit)) - have
        self.suffix_keys = torch.nn.functional.pad(self.suffix_keys, (0, 0, 0, extra))
        self.suffix_values = torch.nn.functional.pad(self.suffix_values, (0, 0, 0, extra))
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

    def select(self, index: torch.Tensor, row_slots: list[int], row_nodes: list[int] | None = None) -> None:
        """Keep suffix rows ``index`` (in this order): beam reordering, finished nodes and done groups leaving."""
        # One copy of the rows kept (capacity beyond the used length is small).
        self.suffix_keys = self.suffix_keys[:, index]
        self.suffix_values = self.suffix_values[:, index]
        self.suffix_valid = self.suffix_valid[index]
        self._set_rows(row_slots, row_nodes)

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               scaling: float) -> tuple[torch.Tensor, None]:
        rows, heads, q, d = query.shape
        kvh = self.kv_heads
        groups = heads // kvh
        start, end = self.length, self.length + q
        self.suffix_keys[layer][:, :, start:end] = key
        self.suffix_values[layer][:, :, start:end] = value
        # Shared levels (prompt prefix, node response): each group's keys/values read once for all its rows.
        parts = [self.prefix.attend(layer, query, scaling)]
        if self.nodes is not None:
            parts.append(self.nodes.attend(layer, query, scaling))

        # The row's own suffix, causal within the block being fed.
        sk = self.suffix_keys[layer][:, :, :end].reshape(rows * kvh, end, d)
        sv = self.suffix_values[layer][:, :, :end].reshape(rows * kvh, end, d)
        scores = torch.bmm(query.reshape(rows * kvh, groups * q, d), sk.transpose(1, 2))
        causal = torch.arange(end, device=query.device)[None, :] <= torch.arange(start, end, device=query.device)[:, None]
        valid = self.suffix_valid[:, None, None, None, :end] & causal[None, None, None]
        scores = scores.view(rows, kvh, groups, q, end).masked_fill_(~valid, torch.finfo(scores.dtype).min)
        out_s, lse_s = _softmax_attend(scores.view(rows * kvh, groups * q, end), sv, scaling)
        parts.append((out_s.view(rows, heads, q, d), lse_s.view(rows, heads, q)))

        # Softmax over the concatenation of all parts = parts weighted by exp(lse_part - lse_all).
        lse = torch.logsumexp(torch.stack([l for _, l in parts]), dim=0)
        out = sum(o * torch.exp(l - lse)[..., None] for o, l in parts)
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
