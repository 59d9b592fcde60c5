"""Every numeric limit of the TypeScript schema holds in the Python steps too (config_bounds.json).

For each bound: a value just outside it is refused with a SpecError naming the field, and the value
on it (or just inside an exclusive one) is accepted, so the two sides cannot drift in either direction.
"""

from __future__ import annotations

import pytest

from csr_compute.config_bounds import BOUNDS, describe
from csr_compute.contract import SpecError
from csr_compute.steps.common import StepSpec
from csr_compute.steps.curate import CurateParams
from csr_compute.steps.dpo import DpoParams
from csr_compute.steps.generate import GenerateParams
from csr_compute.steps.reward import RewardParams

SECTIONS = {"generate": GenerateParams, "reward": RewardParams, "curate": CurateParams, "dpo": DpoParams}
# Limits that no compute step reads from its section: they are enforced in TypeScript only.
TYPESCRIPT_ONLY = {
    "iterations", "seed", "toyworld.seed", "prompts.limit",  # the plan turns them into spec fields
    "workers.gpu_shards", "workers.dpo_gpus",  # the workflow fans out; a step sees one shard
    "activities.retry.maximum_attempts", "activities.retry.backoff_coefficient",  # Temporal's retry policy
    "evaluate.batch_size", "evaluate.max_new_tokens", "evaluate.benchmarks[].limit",  # evaluate spec, own names
}
# Other fields set with a bound value so that a cross-field rule does not refuse it for another reason.
COMPANIONS = {
    "generate.num_beams": {"keep_top": 1, "keep_bottom": 1},
    "generate.num_token_beams": {"num_beam_groups": 1},
}


def cases() -> list[tuple[str, str, object, bool]]:
    """(path, case, value, accepted) for every bound of every section a step reads."""
    out = []
    for path, bounds in BOUNDS.items():
        if path in TYPESCRIPT_ONLY:
            continue
        step = 1 if bounds["type"] == "integer" else 1e-9
        if "minimum" in bounds:
            out += [(path, "at minimum", bounds["minimum"], True), (path, "below minimum", bounds["minimum"] - step, False)]
        if "maximum" in bounds:
            out += [(path, "at maximum", bounds["maximum"], True), (path, "above maximum", bounds["maximum"] + step, False)]
        if "exclusiveMinimum" in bounds:
            out += [(path, "on exclusive minimum", bounds["exclusiveMinimum"], False),
                    (path, "just above it", bounds["exclusiveMinimum"] + step, True)]
        if "exclusiveMaximum" in bounds:
            out += [(path, "on exclusive maximum", bounds["exclusiveMaximum"], False),
                    (path, "just below it", bounds["exclusiveMaximum"] - step, True)]
    return out


def test_every_bound_is_checked_by_a_step_or_declared_typescript_only() -> None:
    unmirrored = [p for p in BOUNDS if p not in TYPESCRIPT_ONLY and p.split(".")[0] not in SECTIONS]
    assert not unmirrored, f"bounds no step checks and not declared TypeScript-only: {unmirrored}"
    assert {"dpo.beta", "dpo.epochs", "dpo.warmup_ratio", "generate.keep_top"} <= set(BOUNDS)


@pytest.mark.parametrize("path,case,value,accepted", cases(), ids=lambda v: str(v))
def test_step_section_holds_the_schema_bound(path: str, case: str, value: object, accepted: bool) -> None:
    section, name = path.split(".", 1)
    kwargs = {**COMPANIONS.get(path, {}), name: value}
    if accepted:
        SECTIONS[section](**kwargs)
    else:
        with pytest.raises(SpecError, match=rf"^params\.{name}: expected"):
            SECTIONS[section](**kwargs)


def test_messages_say_what_was_expected() -> None:
    assert describe(BOUNDS["dpo.beta"]) == "a number > 0"
    assert describe(BOUNDS["dpo.warmup_ratio"]) == "a number >= 0 and < 1"
    with pytest.raises(SpecError, match=r"params\.beta: expected a number > 0, got 0"):
        DpoParams(beta=0)


def test_keep_top_plus_keep_bottom_above_num_beams_is_refused() -> None:
    with pytest.raises(SpecError, match=r"params\.keep_top"):
        GenerateParams(num_beams=2, keep_top=1, keep_bottom=2)


def test_a_seed_numpy_cannot_take_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"^seed: expected an integer <= 4294967295, got 4294967296"):
        StepSpec(out_dir="/tmp/x", seed=2**32)
