"""The benchmark registry and the stand-alone score command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from csr_compute.contract import SpecError
from csr_compute.evaluation.datafiles import DataError
from csr_compute.evaluation.registry import Item, apply_limit, get_benchmark, load_dataset, names

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
PAPER = {"mme", "seedbench", "llava_wild", "mmbench", "mmvet", "scienceqa_img", "vizwiz", "gqa", "pope", "chair"}


def test_every_paper_benchmark_and_the_toy_ones_are_registered():
    assert set(names()) == PAPER | {f"toy_{kind}{split}" for kind in ("pope", "chair") for split in ("", "_dev", "_test")}
    for name in names():
        benchmark = get_benchmark(name)
        assert benchmark.name == name and benchmark.data_files and "{" in benchmark.prompt_template
    assert {n for n in names() if get_benchmark(n).needs_judge} == {"mmvet", "llava_wild"}


def test_unknown_benchmark_suggests_a_name():
    with pytest.raises(SpecError, match=r"benchmark.name: expected a known benchmark \(did you mean 'mmbench'"):
        get_benchmark("mmbnech")


def test_unknown_benchmark_field_suggests_a_name():
    with pytest.raises(SpecError, match=r"benchmark.synonym: expected no such field for toy_chair \(did you mean "
                                        r"'synonyms'\?"):
        load_dataset(get_benchmark("toy_chair"), FIXTURES / "toy_chair", options={"synonym": "x.txt"})


def test_missing_data_folder_names_the_release():
    with pytest.raises(DataError, match=r"pope: data folder '/nowhere/pope' does not exist \(expected the POPE \(COCO\) "
                                        r"release: coco_pope_random.json"):
        load_dataset(get_benchmark("pope"), Path("/nowhere/pope"))
    with pytest.raises(SpecError, match=r"benchmark.data_dir: expected the folder of the GQA"):
        load_dataset(get_benchmark("gqa"), None)


def test_limit_keeps_groups_whole():
    items = [Item(str(i), {}, group=str(i // 2)) for i in range(6)]
    assert [i.question_id for i in apply_limit(items, 3)] == ["0", "1", "2", "3"]
    assert [i.question_id for i in apply_limit(items, 4)] == ["0", "1", "2", "3"]
    assert apply_limit(items, 0) == items


def test_a_toy_benchmark_without_data_dir_is_refused_naming_the_field(monkeypatch, tmp_path):
    # A world in the place the package once guessed from the environment: it derives no paths any more.
    world = tmp_path / "toyworld" / "abc123" / "benchmarks" / "chair"
    world.mkdir(parents=True)
    monkeypatch.setenv("CSR_TOYWORLD_ROOT", str(tmp_path / "toyworld"))
    with pytest.raises(SpecError) as error:
        load_dataset(get_benchmark("toy_chair"), None)
    assert error.value.field_path == "benchmark.data_dir"


def run_score(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "csr_compute.evaluation.score", *args], capture_output=True, text=True,
                          timeout=120)


def test_score_command_prints_the_metrics_object():
    done = run_score("toy_chair", "--data", str(FIXTURES / "toy_chair"), "--answers",
                     str(FIXTURES / "toy_chair" / "answers.jsonl"), "--json")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["CHAIR_I"] == pytest.approx(100 / 6) and metrics["questions"] == 3
    table = run_score("gqa", "--data", str(FIXTURES / "gqa"), "--answers", str(FIXTURES / "gqa" / "answers.jsonl"))
    assert table.returncode == 0 and "accuracy" in table.stdout and "50" in table.stdout


def test_score_command_bad_input_exits_2_with_the_reason(tmp_path):
    done = run_score("popee", "--data", str(FIXTURES / "pope"), "--answers", "x.jsonl")
    assert done.returncode == 2 and "did you mean 'pope'" in done.stderr
    bad = tmp_path / "answers.jsonl"
    bad.write_text('{"question_id": "q1", "text": "red"}\n{"question_id": "q2"}\n')
    done = run_score("gqa", "--data", str(FIXTURES / "gqa"), "--answers", str(bad))
    assert done.returncode == 2
    assert "answers.jsonl line 2: field 'text': expected the answer text (a string), got no such field" in done.stderr
    bad.write_text('{"question_id": "q1", "text": "red"}\nnot json\n')
    done = run_score("gqa", "--data", str(FIXTURES / "gqa"), "--answers", str(bad))
    assert done.returncode == 2 and "answers.jsonl line 2: not valid JSON" in done.stderr
