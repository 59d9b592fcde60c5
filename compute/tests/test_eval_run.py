"""The evaluate step end to end with a tiny random LLaVA: answers, metrics, manifest, and resuming."""

import json
import shutil
from pathlib import Path

import pytest

from csr_compute.__main__ import main as compute_main
from csr_compute.contract import MissingInputError
from csr_compute.evaluation.answers import match_answers, read_answers
from csr_compute.evaluation.registry import get_benchmark, load_dataset
from csr_compute.evaluation.run import run
from csr_compute.evaluation.scoring import score

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
WORDS = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "USER:", "ASSISTANT:", "yes", "no", "is", "there", "a", "in", "the",
         "image", "?", "dog", "cat", "fork", "knife", "cup", "utensil", "blade", "mug", "."]
CHAT_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'user' %}USER: {% for item in message['content'] %}"
                 "{% if item['type'] == 'image' %}<image>\n{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
                 "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}")


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory) -> Path:
    """A randomly initialised LLaVA folder (CLIP vision tower + Llama, a few thousand weights) that load_lvlm reads."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)

    folder = tmp_path_factory.mktemp("tiny_llava")
    vocab = {word: index for index, word in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    images = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    # 16 px / 8 px patches = 4 image tokens; the CLS token is dropped by the "default" feature strategy.
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=8, chat_template=CHAT_TEMPLATE,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=16, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                                pad_token_id=0, bos_token_id=1, eos_token_id=2),
        image_token_index=vocab["<image>"], image_seq_length=4, vision_feature_layer=-1)
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture
def pope_data(tmp_path) -> Path:
    from PIL import Image

    data = tmp_path / "pope"
    data.mkdir()
    for split in ("random", "popular", "adversarial"):
        shutil.copy(FIXTURES / "pope" / f"coco_pope_{split}.json", data)
    (data / "val2014").mkdir()
    for name, colour in (("a.jpg", (200, 40, 40)), ("b.jpg", (40, 200, 40)), ("c.jpg", (40, 40, 200))):
        Image.new("RGB", (24, 20), colour).save(data / "val2014" / name)
    return data


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("CSR_TORCH_THREADS", "1")  # the test machine's cores are shared


def events(captured: str) -> list[dict]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


def test_pope_answers_metrics_manifest_and_resume(tiny_llava, pope_data, tmp_path, capsys):
    out = tmp_path / "eval"
    spec = {"out_dir": str(out), "model": str(tiny_llava), "benchmark": {"name": "pope", "data_dir": str(pope_data)},
            "batch_size": 4, "max_new_tokens": 3, "seed": 0, "device": "cpu"}
    manifest = run(spec)
    first = events(capsys.readouterr().out)

    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    benchmark = get_benchmark("pope")
    dataset = load_dataset(benchmark, pope_data)
    assert sorted(a["question_id"] for a in answers) == sorted(item.question_id for item in dataset.items)
    prompts = {item.question_id: benchmark.prompt(item) for item in dataset.items}
    assert all(a["prompt"] == prompts[a["question_id"]] and isinstance(a["text"], str) for a in answers)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == score(benchmark, dataset, match_answers(dataset, read_answers(out / "answers.jsonl")))
    assert metrics["questions"] == 14 and metrics["missing_answers"] == 0
    assert all(isinstance(metrics[f"{s}/{m}"], float) for s in ("random", "popular", "adversarial")
               for m in ("accuracy", "precision", "recall", "f1", "yes_ratio"))

    assert (manifest["items_total"], manifest["items_reused"], manifest["items_computed"]) == (14, 0, 14)
    assert set(manifest["files"]) == {"answers.jsonl", "metrics.json"}
    assert json.loads((out / "manifest.json").read_text())["step"] == "evaluate"
    progress = [e for e in first if e["event"] == "progress"]
    assert any(e.get("phase") == "load model" for e in progress)
    assert progress[-1]["done"] == 14 and progress[-1]["total"] == 14

    # A second run finds every answer and does not even load the model.
    before = (out / "answers.jsonl").read_bytes()
    again = run(spec)
    second = events(capsys.readouterr().out)
    assert (again["items_reused"], again["items_computed"]) == (14, 0)
    assert (out / "answers.jsonl").read_bytes() == before
    assert not any(e.get("phase") == "load model" for e in second if e["event"] == "progress")

    # A run killed mid-write: ten whole answers and a torn line. Only the four others are computed.
    lines = before.decode().splitlines(keepends=True)
    (out / "answers.jsonl").write_text("".join(lines[:10]) + lines[10][:15])
    (out / "manifest.json").unlink()
    resumed = run(spec)
    capsys.readouterr()
    assert (resumed["items_reused"], resumed["items_computed"]) == (10, 4)
    after = (out / "answers.jsonl").read_text().splitlines(keepends=True)
    assert after[:10] == lines[:10] and len(after) == 14


def test_toy_chair_with_limit_and_image_dir(tiny_llava, tmp_path, capsys):
    from PIL import Image

    data, pictures = tmp_path / "chair", tmp_path / "pictures"
    shutil.copytree(FIXTURES / "toy_chair", data)
    (data / "answers.jsonl").unlink()
    pictures.mkdir()
    for i in (1, 2, 3):
        Image.new("RGB", (16, 16), (60 * i, 20, 20)).save(pictures / f"scene_{i}.png")
    out = tmp_path / "eval"
    manifest = run({"out_dir": str(out), "model": str(tiny_llava), "device": "cpu", "batch_size": 2, "max_new_tokens": 4,
                    "benchmark": {"name": "toy_chair", "data_dir": str(data), "limit": 2, "image_dir": str(pictures)}})
    capsys.readouterr()
    assert manifest["items_total"] == 2 and len((out / "answers.jsonl").read_text().splitlines()) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"CHAIR_S", "CHAIR_I", "recall"} <= set(metrics) and metrics["captions"] == 2


def test_missing_image_fails_before_loading_the_model(pope_data, tmp_path):
    (pope_data / "val2014" / "b.jpg").unlink()
    with pytest.raises(MissingInputError, match=r"image 'b.jpg' of question 'random/3' not found"):
        run({"out_dir": str(tmp_path / "eval"), "model": str(tmp_path / "no-model"), "device": "cpu",
             "benchmark": {"name": "pope", "data_dir": str(pope_data)}})


def test_bad_specs_exit_with_the_non_retryable_code(tmp_path, capsys):
    for spec, message in (
        ({"out_dir": "/o", "model": "m", "benchmark": {"name": "popee"}}, "did you mean 'pope'"),
        ({"out_dir": "/o", "model": "m", "benchmark": {"name": "pope", "limit": -1}}, "benchmark.limit"),
        ({"out_dir": "/o", "model": "m", "benchmark": {"name": "pope"}, "batch": 4}, "batch: expected no such field"),
    ):
        path = tmp_path / "spec.json"
        path.write_text(json.dumps(spec))
        assert compute_main(["evaluate", "--spec", str(path)]) == 2
        error = events(capsys.readouterr().out)[-1]
        assert error["event"] == "error" and message in error["message"]
