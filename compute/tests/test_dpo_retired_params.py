"""The dpo keys retired in issue 15 (reference, policy_init, data: one value each, the fixed behaviour).

A spec written before (by a worker still running older code, or kept in an earlier run's step folder)
still builds and its folder is still resumed; another value of a retired key is refused.
"""

from __future__ import annotations

import pytest

from csr_compute.contract import SpecError
from csr_compute.steps.common import guard_resume
from csr_compute.steps.dpo import RETIRED_PARAMS, DpoParams, DpoSpec, _as_written_before


def spec(tmp_path, **params):
    return {"out_dir": str(tmp_path / "dpo"), "model": "/m", "pairs": ["/p/pairs.jsonl"], "params": params, "device": "cpu"}


def test_params_have_no_retired_field():
    fields = set(DpoParams.__dataclass_fields__)
    assert not fields & set(RETIRED_PARAMS), f"retired fields still declared: {sorted(fields & set(RETIRED_PARAMS))}"


def test_a_spec_from_before_builds_without_them(tmp_path):
    built = DpoSpec(**spec(tmp_path, beta=0.2, **RETIRED_PARAMS))
    assert built.params.beta == 0.2


@pytest.mark.parametrize("key", sorted(RETIRED_PARAMS))
def test_another_value_of_a_retired_key_is_refused(tmp_path, key):
    with pytest.raises(SpecError, match=f"params.{key}"):
        DpoSpec(**spec(tmp_path, **{key: "something_else"}))


def test_a_folder_an_earlier_run_started_is_resumed_under_the_new_spec(tmp_path):
    old = spec(tmp_path, beta=0.1, **RETIRED_PARAMS)
    guard_resume(old["out_dir"], old)  # the earlier run's marker
    new = spec(tmp_path, beta=0.1)
    with pytest.raises(SpecError):
        guard_resume(new["out_dir"], new)
    guard_resume(new["out_dir"], _as_written_before(new))  # what dpo.run falls back to
    changed = spec(tmp_path, beta=0.3)
    with pytest.raises(SpecError):
        guard_resume(changed["out_dir"], _as_written_before(changed))
