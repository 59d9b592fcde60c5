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

Batching: every node of the batch brings its prompt's cached keys/values (computed once per prompt,
image included) plus the tokens it still has to feed (its response so far). The caches are left-padded
to a common length, the pending tokens left-padded into one block, and one forward pass per token
step serves all beams of all nodes; finished nodes leave the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

NEG_INF = -1.0e9


@dataclass
class PromptCache:
    """Keys/values of a prompt minus its last token (the last token is fed with the node's response)."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (1, heads, length, head_dim)
    length: int
    last_token: int


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


def prefill_prompt(model: Any, inputs: dict[str, torch.Tensor]) -> PromptCache:
    """Encode one prompt (image included) and keep its keys/values for every node of its tree."""
    from transformers import DynamicCache

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
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    return PromptCache(layers=layers, length=input_ids.shape[1] - 1, last_token=int(input_ids[0, -1]))


def _batch_cache(prompts: list[PromptCache], pad_to: int) -> tuple[Any, torch.Tensor]:
    """One DynamicCache for several prompts, each left-padded to ``pad_to``, and its attention mask."""
    from transformers import DynamicCache

    layers = []
    for layer_index in range(len(prompts[0].layers)):
        keys, values = [], []
        for prompt in prompts:
            k, v = prompt.layers[layer_index]
            pad = pad_to - k.shape[2]
            if pad:
                k = torch.nn.functional.pad(k, (0, 0, pad, 0))
                v = torch.nn.functional.pad(v, (0, 0, pad, 0))
            keys.append(k)
            values.append(v)
        layers.append((torch.cat(keys), torch.cat(values)))
    device = prompts[0].layers[0][0].device
    mask = torch.zeros(len(prompts), pad_to, dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        mask[row, pad_to - prompt.length:] = 1
    return DynamicCache(ddp_cache_data=layers), mask


def expand_nodes(model: Any, prompts: list[PromptCache], responses: list[list[int]], budgets: list[int],
                 settings: SearchSettings, on_step: Callable[[], None] | None = None,
                 ) -> tuple[list[list[Candidate]], int]:
    """Candidate next sentences for several nodes in one batched diverse beam search.

    ``prompts[m]`` is node m's prompt cache, ``responses[m]`` the response tokens it already has, and
    ``budgets[m]`` how many tokens it may still generate (the smaller of ``max_new_tokens`` and what
    the total length limit leaves). Returns per node ``num_beams`` candidates, group by group, best
    first within a group, and the number of token positions the model computed (for throughput).
    ``on_step`` is called after every token step (a big model's search can take minutes: heartbeats).
    """
    m_count = len(prompts)
    n, g, groups = settings.num_beams, settings.group_size, settings.num_groups
    stop_ids = settings.stop_ids
    device = prompts[0].layers[0][0].device

    # Feed [last prompt token] + response for every node, left-padded into one block.
    pending = [[p.last_token] + list(r) for p, r in zip(prompts, responses)]
    past_len = max(p.length for p in prompts)
    block = max(len(t) for t in pending)
    cache, mask = _batch_cache(prompts, past_len)
    input_ids = torch.full((m_count, block), settings.pad_id, dtype=torch.long, device=device)
    block_mask = torch.zeros(m_count, block, dtype=torch.long, device=device)
    positions = torch.zeros(m_count, block, dtype=torch.long, device=device)
    for row, tokens in enumerate(pending):
        start = block - len(tokens)
        input_ids[row, start:] = torch.tensor(tokens, device=device)
        block_mask[row, start:] = 1
        positions[row, start:] = torch.arange(prompts[row].length, prompts[row].length + len(tokens), device=device)
    mask = torch.cat([mask, block_mask], dim=1)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1, :]
    computed = int(block_mask.sum())
    next_position = torch.tensor([p.length + len(t) for p, t in zip(prompts, pending)], device=device)

    # Every node's beams: rows node*n .. node*n+n-1 of the batch.
    cache.batch_repeat_interleave(n)
    mask = mask.repeat_interleave(n, dim=0)
    logits = logits.repeat_interleave(n, dim=0)
    next_position = next_position.repeat_interleave(n)
    beam_scores = torch.zeros(m_count, n, device=device)
    beam_scores.view(m_count, groups, g)[:, :, 1:] = NEG_INF  # each group starts from a single beam
    beam_logprobs = torch.zeros(m_count, n, device=device)
    beam_tokens: list[list[list[int]]] = [[[] for _ in range(n)] for _ in range(m_count)]
    hyps = [[_Group(g) for _ in range(groups)] for _ in range(m_count)]
    limits = [max(1, b) for b in budgets]
    active = list(range(m_count))  # node index of each block of n rows still in the batch
    top_k = max(2, 1 + len(stop_ids)) * g

    step = 0
    while True:
        logprobs = torch.log_softmax(logits.float(), dim=-1).view(len(active), n, -1)
        vocab = logprobs.shape[-1]
        # Built as Python lists and turned into tensors once per step: per-element tensor writes
        # would cost a kernel launch each on a GPU.
        new_scores, new_logprobs = beam_scores.tolist(), beam_logprobs.tolist()
        source = [list(range(n)) for _ in active]
        new_token = [[settings.pad_id] * n for _ in active]
        chosen_so_far = torch.zeros(len(active), vocab, device=device)
        for group in range(groups):
            lo, hi = group * g, (group + 1) * g
            group_logprobs = logprobs[:, lo:hi, :]
            processed = group_logprobs - settings.diversity_penalty * chosen_so_far[:, None, :]
            totals = (processed + beam_scores[:, lo:hi, None]).reshape(len(active), g * vocab)
            values, flat = totals.topk(top_k, dim=-1)
            raws = (group_logprobs + beam_logprobs[:, lo:hi, None]).reshape(len(active), g * vocab).gather(1, flat)
            values, flat, raws = values.tolist(), flat.tolist(), raws.tolist()
            picked = []
            for row, node in enumerate(active):
                state = hyps[node][group]
                if state.done:
                    continue
                taken = 0
                best_running = None
                for rank, (value, index, raw) in enumerate(zip(values[row], flat[row], raws[row])):
                    beam, token = lo + index // vocab, index % vocab
                    if token in stop_ids:
                        if rank < g:
                            tokens = beam_tokens[node][beam] + [token]
                            state.add(Candidate(tokens, raw, value / len(tokens),
                                                "eos" if token == settings.eos_id else "sentence", group))
                            picked.append((row, token))
                        continue
                    if best_running is None:
                        best_running = value
                    slot = lo + taken
                    new_scores[row][slot], new_logprobs[row][slot] = value, raw
                    source[row][slot], new_token[row][slot] = beam, token
                    picked.append((row, token))
                    taken += 1
                    if taken == g:
                        break
                if len(state.hyps) >= g and state.worst() >= best_running / (step + 1):
                    state.done = True
            if picked and group + 1 < groups:
                rows_t = torch.tensor([r for r, _ in picked], device=device)
                tokens_t = torch.tensor([t for _, t in picked], device=device)
                chosen_so_far.index_put_((rows_t, tokens_t), torch.ones(len(picked), device=device), accumulate=True)
        step += 1
        if on_step is not None:
            on_step()

        # Reorder beams, then close nodes whose groups are all done or whose token budget is spent.
        rows = torch.tensor([row * n + b for row, beams in enumerate(source) for b in beams], device=device)
        cache.reorder_cache(rows)
        mask = mask[rows]
        beam_scores = torch.tensor(new_scores, device=device)
        beam_logprobs = torch.tensor(new_logprobs, device=device)
        keep = []
        for row, node in enumerate(active):
            beam_tokens[node] = [beam_tokens[node][b] + [t] for b, t in zip(source[row], new_token[row])]
            if step >= limits[node]:
                end = "max_new_tokens" if limits[node] >= settings.max_new_tokens else "max_length"
                for group in range(groups):
                    state = hyps[node][group]
                    if state.done:
                        continue
                    for slot in range(group * g, (group + 1) * g):
                        tokens = beam_tokens[node][slot]
                        state.add(Candidate(tokens, new_logprobs[row][slot], new_scores[row][slot] / len(tokens),
                                            end, group))
                    state.done = True
            if not all(state.done for state in hyps[node]):
                keep.append(row)
        if not keep:
            break
        if len(keep) < len(active):
            kept_rows = torch.tensor([r * n + b for r in keep for b in range(n)], device=device)
            cache.batch_select_indices(kept_rows)
            mask = mask[kept_rows]
            next_position = next_position[kept_rows]
            new_token = [new_token[r] for r in keep]
            beam_scores, beam_logprobs = beam_scores[keep], beam_logprobs[keep]
            active = [active[r] for r in keep]
        mask = torch.cat([mask, torch.ones(mask.shape[0], 1, dtype=mask.dtype, device=device)], dim=1)
        with torch.inference_mode():
            step_tokens = torch.tensor(new_token, device=device).reshape(-1, 1)
            logits = model(input_ids=step_tokens, attention_mask=mask,
                           position_ids=next_position[:, None], cache=cache, use_cache=True).logits[:, -1, :]
        computed += step_tokens.numel()
        next_position = next_position + 1

    return [[c for state in node_hyps for _, _, c in state.hyps] for node_hyps in hyps], computed
