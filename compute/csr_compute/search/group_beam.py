"""Token-level diverse (group) beam search over a causal LM's logits, for many nodes at once.

transformers 5.x no longer ships group beam search in its core (``generate(num_beam_groups=...)``
fetches it from the model hub at run time, which an offline cluster cannot do), so it is implemented
here over the model's logits. The semantics follow the classic transformers implementation that the
reference code used (Vijayakumar et al. 2016):

- the N beams of a node form G groups of N/G beams; at each step the groups are processed in order,
  and a token already chosen at this step by an earlier group of the same node is penalised by
  ``diversity_penalty`` per occurrence (Hamming diversity);
- unlike the classic implementation, a stop token that closes a hypothesis also counts as chosen
  (the classic one only counted the tokens of running beams, so when "." or end-of-sequence was the
  likeliest token every group closed the same hypothesis and a node got N identical candidates);
- within a group, a standard beam step: the top (1 + number of stop tokens) * group size candidates
  by penalised running score; a stop token among the first group-size candidates closes a hypothesis,
  the other candidates continue as running beams;
- a group is done once it holds group-size hypotheses and no running beam can beat the worst of them
  (the ``early_stopping=False`` heuristic); at the token limit, running beams become hypotheses.

Two deliberate differences from the reference: the self-reward returned per candidate is the
*un-penalised* log-probability (the reference's ``sequences_scores`` carried the diversity penalty of
groups 2..G, see reference-code.md §5.5), and length normalisation counts the generated tokens
including the stop token (the penalised, normalised ``beam_score`` is still what ranks hypotheses
inside the search).

Batching: every node of the batch brings its prompt's slot in a ``PrefixPool`` (keys/values computed
once per prompt, image included, stored once) plus the tokens it still has to feed (its response so
far). One forward pass per token step serves all beams of all nodes through ``shared_prefix``'s
attention: rows attend to their prompt's prefix in place and carry only their own suffix; beam
reordering moves suffix rows only; finished nodes leave the batch.

Host syncs: the whole token step (every group of every node) runs on the device; one packed transfer
per token step brings the picks back for the bookkeeping of hypotheses (token lists, end reasons).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .shared_prefix import PrefixPool, RowBatch, install

NEG_INF = -1.0e9


@dataclass
class PromptCache:
    """A prompt's slot in a ``PrefixPool``: keys/values of the prompt minus its last token (fed with the response)."""

    pool: PrefixPool
    slot: int
    length: int
    last_token: int

    def release(self) -> None:
        self.pool.release(self.slot)


@dataclass
class SearchSettings:
    num_beams: int
    num_groups: int
    diversity_penalty: float
    max_new_tokens: int
    sentence_end_id: int
    eos_id: int
    pad_id: int

    @property
    def group_size(self) -> int:
        return self.num_beams // self.num_groups

    @property
    def stop_ids(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys((self.sentence_end_id, self.eos_id)))


@dataclass
class Candidate:
    """One candidate next sentence of a node."""

    token_ids: list[int]
    logprob_sum: float  # un-penalised sum of token log-probabilities
    beam_score: float  # penalised running score / length: the search's own ranking
    end: str  # "sentence" (stop token), "eos", "max_new_tokens" or "max_length"
    group: int
    # With ``chains``: keys/values of [last prompt token] + the child's response minus its last token, as
    # chunks shared with its parent and siblings (in memory only, never written).
    chain: list | None = field(default=None, repr=False, compare=False)

    @property
    def self_reward(self) -> float:
        return self.logprob_sum / max(len(self.token_ids), 1)


@dataclass
class _Group:
    """Finished hypotheses of one group of one node, best first, at most ``size``."""

    size: int
    hyps: list[tuple[float, int, Candidate]] = field(default_factory=list)  # (score, arrival, candidate)
    done: bool = False
    arrivals: int = 0

    def add(self, candidate: Candidate) -> None:
        self.arrivals += 1
        self.hyps.append((candidate.beam_score, -self.arrivals, candidate))
        # Ties are broken by arrival (earlier wins) so that results never depend on sort stability.
        self.hyps.sort(key=lambda h: (h[0], h[1]), reverse=True)
        del self.hyps[self.size:]

    def worst(self) -> float:
        return self.hyps[-1][0] if len(self.hyps) >= self.size else NEG_INF * 10


def prefill_prompt(model: Any, inputs: dict[str, torch.Tensor], pool: PrefixPool | None = None) -> PromptCache:
    """Encode one prompt (image included) once and store its keys/values in ``pool`` (a new pool if none)."""
    from transformers import DynamicCache

    install(model)
    input_ids = inputs["input_ids"]
    if input_ids.shape[0] != 1:
        raise ValueError("prefill_prompt takes one prompt at a time")
    image_token_id = getattr(model.config, "image_token_id", None)
    if image_token_id is not None and int(input_ids[0, -1]) == image_token_id:
        raise ValueError("the prompt ends with the image token; the chat template must put text after it")
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    cache = DynamicCache()
    with torch.inference_mode():
        model(input_ids=input_ids[:, :-1], attention_mask=inputs["attention_mask"][:, :-1], cache=cache,
              use_cache=True, logits_to_keep=1, **extra)
    pool = pool if pool is not None else PrefixPool()
    slot = pool.add([(layer.keys, layer.values) for layer in cache.layers])
    return PromptCache(pool=pool, slot=slot, length=input_ids.shape[1] - 1, last_token=int(input_ids[0, -1]))


def _one_pool(prompts: list[PromptCache]) -> tuple[PrefixPool, list[int]]:
    """The pool holding every prompt of the batch and each node's slot (prompts from several pools are merged)."""
    pool = prompts[0].pool
    if all(p.pool is pool for p in prompts):
        return pool, [p.slot for p in prompts]
    merged, slots = PrefixPool(), {}
    for p in prompts:
        key = (id(p.pool), p.slot)
        if key not in slots:
            slots[key] = merged.add([(k[p.slot:p.slot + 1, :, :p.length], v[p.slot:p.slot + 1, :, :p.length])
                                     for k, v in zip(p.pool.keys, p.pool.values)])
    return merged, [slots[(id(p.pool), p.slot)] for p in prompts]


def expand_nodes(model: Any, prompts: list[PromptCache], responses: list[list[int]], budgets: list[int],
                 settings: SearchSettings, on_step: Callable[[], None] | None = None,
                 stats: dict[str, int] | None = None, chains: list[list] | None = None,
                 held_bytes: int = 0) -> tuple[list[list[Candidate]], int]:
    """Candidate next sentences for several nodes in one batched diverse beam search.

    ``prompts[m]`` is node m's prompt cache, ``responses[m]`` the response tokens it already has, and
    ``budgets[m]`` how many tokens it may still generate (the smaller of ``max_new_tokens`` and what
    the total length limit leaves). Returns per node ``num_beams`` candidates, group by group, best
    first within a group, and the number of token positions the model computed (for throughput).
    ``on_step`` is called after every token step (a big model's search can take minutes: heartbeats).
    ``stats`` (if given) gets ``peak_kv_bytes`` (prompt pool + node responses + beam suffixes, as
    allocated) and ``min_kv_bytes`` (the analytic minimum at its peak: each pooled prompt and each node's
    response once + each beam row's own tokens); ``held_bytes`` (the caller's cached chains) is added to both.

    ``chains`` (optional): per node, the cached keys/values of its first tokens ([last prompt token] +
    response minus the last token), as chunks (``(layers, kv_heads, length, head_dim)`` keys and values);
    only the remaining tokens are fed, and every candidate comes back with its own ``chain``. Without it
    the whole response is fed again (the reference-style benchmark does this).
    """
    install(model)
    m_count = len(prompts)
    n, g, groups = settings.num_beams, settings.group_size, settings.num_groups
    stop_ids = settings.stop_ids
    pool, node_slots = _one_pool(prompts)
    device = pool.keys[0].device
    limits = [max(1, b) for b in budgets]

    # Feed [last prompt token] + response for every node (minus what its chain caches), left-padded into one block.
    full = [[p.last_token] + list(r) for p, r in zip(prompts, responses)]
    cached = [0] * m_count
    if chains is not None:
        cached = [sum(chunk[0].shape[2] for chunk in chain) for chain in chains]
        if any(c != len(f) - 1 for c, f in zip(cached, full)):
            raise ValueError("a chain must cache all of [last prompt token] + response but the last token")
    pending = [f[c:] for f, c in zip(full, cached)]
    block = max(len(t) for t in pending)
    rows = RowBatch(pool, node_slots, suffix_capacity=block, suffix_limit=block)
    if chains is not None:
        rows.set_chains(chains)

    def track(real_tokens: int) -> None:
        if stats is not None:
            stats["peak_kv_bytes"] = max(stats.get("peak_kv_bytes", 0), pool.nbytes() + rows.nbytes() + held_bytes)
            minimum = (sum(pool.lengths) + real_tokens) * rows.bytes_per_token + held_bytes  # prompts once + real tokens
            stats["min_kv_bytes"] = max(stats.get("min_kv_bytes", 0), minimum)

    input_ids = torch.full((m_count, block), settings.pad_id, dtype=torch.long, device=device)
    valid = torch.zeros(m_count, block, dtype=torch.bool, device=device)
    positions = torch.zeros(m_count, block, dtype=torch.long, device=device)
    for row, tokens in enumerate(pending):
        start = block - len(tokens)
        input_ids[row, start:] = torch.tensor(tokens, device=device)
        valid[row, start:] = True
        first = prompts[row].length + cached[row]
        positions[row, start:] = torch.arange(first, first + len(tokens), device=device)
    rows.begin(valid)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, position_ids=positions, csr_rows=rows, use_cache=False,
                       logits_to_keep=1).logits[:, -1, :]
    rows.end()
    computed = sum(len(t) for t in pending)
    track(sum(len(f) for f in full))
    node_chains = None
    if chains is not None:  # what a child inherits: the node's chain + the tokens fed now
        node_chains = [chain + [rows.fed_chunk(row, len(tokens))] for row, (chain, tokens) in enumerate(zip(chains, pending))]

    # Every node's beams: rows node*n .. node*n+n-1 of the batch. The node's response (just fed) is stored
    # once per node and shared by its beams; each beam row's suffix holds only the tokens it generates.
    rows.share_suffix(n, capacity=RowBatch.GROW, limit=max(limits))
    logits = logits.repeat_interleave(n, dim=0)
    node_position = torch.tensor([p.length + len(f) for p, f in zip(prompts, full)], device=device)
    live_rows = list(range(m_count * n))  # flat (node row * n + beam) index of each row the model computes, in order
    a_count = m_count
    beam_scores = torch.zeros(a_count, n, device=device)
    beam_scores.view(a_count, groups, g)[:, :, 1:] = NEG_INF  # each group starts from a single beam
    beam_logprobs = torch.zeros(a_count, n, device=device)
    group_done = torch.zeros(a_count, groups, dtype=torch.bool, device=device)
    hyp_scores = torch.full((a_count, groups, g), float("-inf"), device=device)  # device mirror of _Group.hyps
    hyp_count = torch.zeros(a_count, groups, dtype=torch.long, device=device)
    limit_t = torch.tensor(limits, device=device)
    stop_t = torch.tensor(stop_ids, device=device)
    top_k = max(2, 1 + len(stop_ids)) * g
    rank = torch.arange(top_k, device=device)
    beam_tokens: list[list[list[int]]] = [[[] for _ in range(n)] for _ in range(m_count)]
    hyps = [[_Group(g) for _ in range(groups)] for _ in range(m_count)]
    active = list(range(m_count))  # node index of each block of n rows still in the batch

    step = 0
    while True:
        logprobs = torch.log_softmax(logits.float(), dim=-1).view(a_count, n, -1)
        vocab = logprobs.shape[-1]
        new_scores, new_logprobs = beam_scores.clone(), beam_logprobs.clone()
        source = torch.arange(n, device=device).repeat(a_count, 1)
        new_token = torch.full((a_count, n), settings.pad_id, dtype=torch.long, device=device)
        chosen_so_far = torch.zeros(a_count, vocab, device=device)
        packed = []
        for group in range(groups):
            lo, hi = group * g, (group + 1) * g
            live = ~group_done[:, group, None]
            group_logprobs = logprobs[:, lo:hi, :]
            processed = group_logprobs - settings.diversity_penalty * chosen_so_far[:, None, :]
            totals = (processed + beam_scores[:, lo:hi, None]).reshape(a_count, g * vocab)
            values, flat = totals.topk(top_k, dim=-1)
            raws = (group_logprobs + beam_logprobs[:, lo:hi, None]).reshape(a_count, g * vocab).gather(1, flat)
            token, beam = flat % vocab, lo + torch.div(flat, vocab, rounding_mode="floor")
            is_stop = torch.isin(token, stop_t)
            # A stop token among the first g candidates closes a hypothesis; the first g others run on.
            stop_pick = is_stop & (rank < g) & live
            running = ~is_stop & (torch.cumsum(~is_stop, dim=1) <= g)
            order = torch.sort((~running).to(torch.uint8), dim=1, stable=True).indices[:, :g]
            run_values = values.gather(1, order)
            new_scores[:, lo:hi] = torch.where(live, run_values, beam_scores[:, lo:hi])
            new_logprobs[:, lo:hi] = torch.where(live, raws.gather(1, order), beam_logprobs[:, lo:hi])
            source[:, lo:hi] = torch.where(live, beam.gather(1, order), source[:, lo:hi])
            new_token[:, lo:hi] = torch.where(live, token.gather(1, order), new_token[:, lo:hi])
            # Finished hypotheses: best g kept, earlier arrivals first among ties (stable sort).
            arrived = torch.where(stop_pick, values / (step + 1), float("-inf"))
            merged = torch.cat([hyp_scores[:, group], arrived], dim=1)
            hyp_scores[:, group] = torch.sort(merged, dim=1, descending=True, stable=True).values[:, :g]
            hyp_count[:, group] += stop_pick.sum(dim=1)
            now_done = (live[:, 0] & (hyp_count[:, group] >= g)
                        & (hyp_scores[:, group, g - 1] >= run_values[:, 0] / (step + 1)))
            group_done[:, group] |= now_done
            if group + 1 < groups:
                picked = stop_pick | (running & live)
                chosen_so_far.scatter_add_(1, token, picked.to(chosen_so_far.dtype))
            packed += [stop_pick, beam, token, raws, arrived]
        step += 1
        node_done = group_done.all(dim=1) | (step >= limit_t)
        packed += [source, new_token, new_logprobs, new_scores, group_done, node_done[:, None]]
        # The one host sync of the token step: picks and flags for the host-side hypothesis bookkeeping.
        host = torch.cat([t.reshape(a_count, -1).double() for t in packed], dim=1).tolist()
        if on_step is not None:
            on_step()

        keep, row_src, row_done = [], [], []
        k5 = 5 * top_k
        position_of = {flat: i for i, flat in enumerate(live_rows)}

        def chain_of(row: int, node: int, beam: int) -> list | None:
            if node_chains is None:
                return None
            own = rows.row_chunk(position_of[row * n + beam])
            return node_chains[node] + ([own] if own is not None else [])

        for row, node in enumerate(active):
            h = host[row]
            for group in range(groups):
                base = group * k5
                stop_row = h[base:base + top_k]
                for r in range(top_k):
                    if stop_row[r]:
                        b, t = int(h[base + top_k + r]), int(h[base + 2 * top_k + r])
                        hyps[node][group].add(Candidate(beam_tokens[node][b] + [t], h[base + 3 * top_k + r],
                                                        h[base + 4 * top_k + r],
                                                        "eos" if t == settings.eos_id else "sentence", group,
                                                        chain_of(row, node, b)))
            base = groups * k5
            src, tok = h[base:base + n], h[base + n:base + 2 * n]
            raw_now, score_now = h[base + 2 * n:base + 3 * n], h[base + 3 * n:base + 4 * n]
            done_now, finished = h[base + 4 * n:base + 4 * n + groups], h[base + 4 * n + groups]
            beam_tokens[node] = [beam_tokens[node][int(b)] + [int(t)] for b, t in zip(src, tok)]
            row_src.append(src)
            row_done.append(done_now)
            if step >= limits[node]:
                end = "max_new_tokens" if limits[node] >= settings.max_new_tokens else "max_length"
                for group in range(groups):
                    if done_now[group]:
                        continue
                    for slot in range(group * g, (group + 1) * g):
                        tokens = beam_tokens[node][slot]
                        hyps[node][group].add(Candidate(tokens, raw_now[slot], score_now[slot] / len(tokens), end, group,
                                                        chain_of(row, node, int(src[slot]))))
            if not finished:
                keep.append(row)
        if not keep:
            break

        # The rows that go on: beams of groups not done, of nodes not finished. Beam reordering, finished
        # nodes and done groups leaving are one selection of suffix rows (a live group's beams come from
        # its own beams, which were live too).
        live_rows, sources = [], []
        for new_row, row in enumerate(keep):
            for slot in range(n):
                if not row_done[row][slot // g]:
                    sources.append(position_of[row * n + int(row_src[row][slot])])
                    live_rows.append(new_row * n + slot)
        active = [active[r] for r in keep]
        rows.select(torch.tensor(sources, device=device), [node_slots[active[flat // n]] for flat in live_rows],
                    [active[flat // n] for flat in live_rows])
        if len(keep) < a_count:
            keep_t = torch.tensor(keep, device=device)
            new_token, new_scores, new_logprobs = new_token[keep_t], new_scores[keep_t], new_logprobs[keep_t]
            group_done, hyp_scores, hyp_count, limit_t = group_done[keep_t], hyp_scores[keep_t], hyp_count[keep_t], limit_t[keep_t]
            node_position = node_position[keep_t]
            a_count = len(keep)
        beam_scores, beam_logprobs = new_scores, new_logprobs
        live_t = torch.tensor(live_rows, device=device)
        rows.begin(torch.ones(len(live_rows), 1, dtype=torch.bool, device=device))
        with torch.inference_mode():
            live_logits = model(input_ids=new_token.reshape(-1)[live_t, None], position_ids=node_position[live_t // n, None],
                                csr_rows=rows, use_cache=False).logits[:, -1, :]
        rows.end()
        # Rows of done groups get no logits (their groups take no more tokens).
        logits = live_logits.new_zeros(a_count * n, live_logits.shape[-1]).index_copy_(0, live_t, live_logits)
        computed += len(live_rows)
        track(sum(len(full[node]) for node in active) + len(live_rows) * step)
        node_position = node_position + 1

    return [[c for state in node_hyps for _, _, c in state.hyps] for node_hyps in hyps], computed
