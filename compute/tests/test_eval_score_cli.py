"""`python -m csr_compute.evaluation.score` (what `csr score` runs): LLaVA's own answer files, one POPE split
file as --data, and a judge at --judge-url (a local OpenAI-compatible server answering as the MM-Vet grader)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from csr_compute.evaluation.score import main

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def llava(question_id, text, prompt="") -> dict:
    """A line as LLaVA's llava/eval/model_vqa*.py writes it."""
    return {"question_id": question_id, "prompt": prompt, "text": text, "answer_id": "x7Yc", "model_id": "llava-v1.5-7b",
            "metadata": {}}


def run(capsys, *argv) -> tuple[int, dict | str]:
    code = main([*map(str, argv), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def start_endpoint(reply):
    """A local OpenAI-compatible chat-completions endpoint: ``reply(body, requests)`` gives each answer."""
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append({"body": body, "auth": self.headers.get("Authorization"), "path": self.path})
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply(body, requests)}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data.encode())))
            self.end_headers()
            self.wfile.write(data.encode())

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1", requests


@pytest.fixture
def grader():
    """Replies like MM-Vet's grader: the k-th time a row is asked, the k-th score of its list (so two grading
    passes differ)."""
    scores = {"x = -1": ["0.5", "0.0"], "a dog": ["1.0", "1.0"]}

    def reply(body, requests):
        content = body["messages"][-1]["content"]
        prediction = content.rsplit("\n", 1)[-1].split(" | ")[2]
        seen = sum(1 for r in requests if r["body"]["messages"][-1]["content"] == content)
        return scores[prediction][min(seen, 2) - 1]

    server, url, requests = start_endpoint(reply)
    yield url, requests
    server.shutdown()
    server.server_close()


def test_mmvet_llava_answers_graded_by_the_judge_url_with_passes_and_a_cache(tmp_path, capsys, grader, monkeypatch):
    url, requests = grader
    # LLaVA numbers MM-Vet questions 0..217; convert_mmvet_for_eval.py makes them v1_<n>.
    answers = write_jsonl(tmp_path / "llava-mmvet.jsonl", [llava(0, "x = -1"), llava(1, "a dog")])
    monkeypatch.setenv("CSR_JUDGE_KEY_ENVS", "MY_JUDGE_KEY")
    monkeypatch.setenv("MY_JUDGE_KEY", "k-123")
    cache = tmp_path / "judge-cache.jsonl"
    argv = ["mmvet", "--data", FIXTURES / "mmvet", "--answers", answers, "--judge-url", url, "--judge-model",
            "gpt-4-0613", "--judge-api-key-env", "MY_JUDGE_KEY", "--judge-cache", cache, "--option", "passes=2"]
    code, m = run(capsys, *argv)
    assert code == 0, m
    # Pass 0: v1_0 0.5, v1_1 1.0 -> 75; pass 1: v1_0 0.0, v1_1 1.0 -> 50. Mean 62.5, population sd 12.5.
    assert (m["total"], m["total_sd"], m["total/pass_0"], m["total/pass_1"]) == (62.5, 12.5, 75.0, 50.0)
    assert (m["capability/ocr"], m["capability/math"], m["capability/rec"]) == (25.0, 25.0, 100.0)
    assert (m["combination/math_ocr"], m["combination/rec"], m["judge_passes"]) == (25.0, 100.0, 2)
    assert len(requests) == 4
    assert {r["auth"] for r in requests} == {"Bearer k-123"} and {r["path"] for r in requests} == {"/v1/chat/completions"}
    assert {(r["body"]["model"], r["body"]["max_tokens"], r["body"]["temperature"]) for r in requests} == {
        ("gpt-4-0613", 3, 0.0)}
    # Scoring again with the cache asks nothing and gives the same numbers.
    code, again = run(capsys, *argv)
    assert code == 0 and again == m and len(requests) == 4


def test_judge_key_variable_outside_the_allowlist_is_refused(tmp_path, capsys, monkeypatch):
    answers = write_jsonl(tmp_path / "a.jsonl", [{"question_id": "v1_0", "text": "x"}])
    monkeypatch.setenv("CSR_JUDGE_KEY_ENVS", "OPENAI_API_KEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    code, err = run(capsys, "mmvet", "--data", FIXTURES / "mmvet", "--answers", answers, "--judge-url",
                    "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-api-key-env", "AWS_SECRET_ACCESS_KEY")
    assert code == 2
    assert err == 'csr score: --judge-api-key-env: expected one of OPENAI_API_KEY, got "AWS_SECRET_ACCESS_KEY"\n'


def test_without_a_judge_mmvet_is_skipped(tmp_path, capsys):
    answers = write_jsonl(tmp_path / "a.jsonl", [llava(0, "x = -1")])
    code, m = run(capsys, "mmvet", "--data", FIXTURES / "mmvet", "--answers", answers)
    assert code == 0 and "skipped" in m and m["missing_answers"] == 1


def make_mme(root: Path) -> None:
    for subtask in ("existence", "artwork"):
        folder = root / subtask
        image_dir, qa_dir = (folder / "images", folder / "questions_answers_YN") if subtask == "artwork" else (folder, folder)
        image_dir.mkdir(parents=True)
        qa_dir.mkdir(parents=True, exist_ok=True)
        (image_dir / "0001.jpg").write_bytes(b"\xff\xd8\xff")
        (qa_dir / "0001.txt").write_text(f"Is there a {subtask}? Please answer yes or no.\tYes\n"
                                         f"Is there no {subtask}? Please answer yes or no.\tNo\n")


def test_mme_llava_answers_share_an_id_per_image(tmp_path, capsys):
    make_mme(tmp_path / "MME")
    suffix = "\nAnswer the question using a single word or phrase."
    # llava_mme.jsonl: both questions of an image carry its id; the prompt tells them apart. Order swapped here.
    answers = write_jsonl(tmp_path / "llava-mme.jsonl", [
        llava("existence/0001.jpg", "No", "Is there no existence?" + suffix),
        llava("existence/0001.jpg", "Yes", "Is there a existence?" + suffix),
        llava("artwork/0001.jpg", "Yes", "Is there a artwork?" + suffix),
        llava("artwork/0001.jpg", "Yes", "Is there no artwork?" + suffix),
    ])
    code, m = run(capsys, "mme", "--data", tmp_path / "MME", "--answers", answers, "--split", "existence")
    assert code == 0 and (m["existence/acc"], m["existence/acc_plus"]) == (100.0, 100.0), m
    code, m = run(capsys, "mme", "--data", tmp_path / "MME", "--answers", answers, "--split", "artwork")
    assert code == 0 and (m["artwork/acc"], m["artwork/acc_plus"]) == (50.0, 0.0)
    bad = write_jsonl(tmp_path / "bad.jsonl", [llava("artwork/0001.jpg", "Yes", "Is there a cat?" + suffix)])
    code, err = run(capsys, "mme", "--data", tmp_path / "MME", "--answers", bad, "--split", "artwork")
    assert code == 2 and "bad.jsonl line 1: no MME question of image 'artwork/0001.jpg' reads 'Is there a cat?'" in err


def test_pope_llava_answers_pair_by_position_within_their_category(tmp_path, capsys):
    # LLaVA's question file numbers the three splits' questions through and names each one's category.
    questions = write_jsonl(tmp_path / "llava_pope_test.jsonl", [
        {"question_id": 100 + k, "image": "a.jpg", "text": "q", "category": "random"} for k in range(6)]
        + [{"question_id": 200, "image": "a.jpg", "text": "q", "category": "popular"}])
    texts = ["Yes", "No", "No", "No", "Yes", "Yes"]
    answers = write_jsonl(tmp_path / "llava-pope.jsonl", [llava(200, "No")]
                          + [llava(100 + k, text) for k, text in enumerate(texts)])
    code, m = run(capsys, "pope", "--data", FIXTURES / "pope", "--split", "random", "--answers", answers,
                  "--option", f"llava_questions={questions}")
    # random labels yes no yes no yes no, the answers in file order: TP 1 and 5, TN 2 and 4, FN 3, FP 6;
    # the popular answer is not scored with --split random
    assert code == 0, m
    assert (m["random/TP"], m["random/TN"], m["random/FN"], m["random/FP"]) == (2, 2, 1, 1)
    assert m["random/accuracy"] == pytest.approx(400 / 6) and m["missing_answers"] == 0
    code, err = run(capsys, "pope", "--data", FIXTURES / "pope", "--split", "random", "--answers", answers)
    assert code == 2 and "--option llava_questions=llava_pope_test.jsonl" in err


def test_one_pope_split_file_as_data(tmp_path, capsys):
    answers = write_jsonl(tmp_path / "a.jsonl", [{"question_id": k, "text": "Yes"} for k in range(1, 7)])
    code, m = run(capsys, "pope", "--data", FIXTURES / "pope" / "coco_pope_random.json", "--answers", answers)
    # labels yes no yes no yes no, all answered yes: TP 3, FP 3; the file's own ids
    assert code == 0, m
    assert (m["random/TP"], m["random/FP"], m["random/yes_ratio"], m["questions"]) == (3, 3, 100.0, 6)
    assert "popular/TP" not in m
    code, err = run(capsys, "gqa", "--data", FIXTURES / "pope" / "coco_pope_random.json", "--answers", answers)
    assert code == 2 and "--data: expected the folder of the GQA" in err


def test_scienceqa_and_seed_llava_answers_cover_every_question(tmp_path, capsys):
    sqa = write_jsonl(tmp_path / "sqa.jsonl", [llava("1", "B", "<image>\n..."), llava("2", "C. blue", "<image>\n..."),
                                               llava("3", "B", "Which?"), llava("4", "The answer is A.", "<image>")])
    code, m = run(capsys, "scienceqa_img", "--data", FIXTURES / "scienceqa", "--answers", sqa)
    # 1, 2, 3, 4 right; 5, 6, 7 missing: overall 4 / 7; IMG leaves the missing out: 3 / 3
    assert code == 0, m
    assert (m["accuracy"], m["img_accuracy"]) == (pytest.approx(400 / 7), 100.0)
    seed = write_jsonl(tmp_path / "seed.jsonl", [llava(101, "A"), llava(104, "A"), llava(105, "D")])
    code, m = run(capsys, "seedbench", "--data", FIXTURES / "seedbench", "--answers", seed)
    assert code == 0 and (m["all_accuracy"], m["image_accuracy"], m["video_accuracy"]) == (60.0, 50.0, 100.0), m


def test_llava_bench_reports_reference_and_model_scores_per_category(tmp_path, capsys):
    # The reviewer scores (reference, model): 8 6 for the complex question, 9 9 for the detail one, whose
    # answer is missing (its model score counts 0; the reference is still rated).
    def reply(body, requests):
        assert body["temperature"] == 0.2 and body["messages"][0]["role"] == "system"
        return "8 6\nAssistant 2 is shorter." if "unusual" in body["messages"][-1]["content"] else "9 9"

    server, url, requests = start_endpoint(reply)
    try:
        answers = write_jsonl(tmp_path / "a.jsonl", [llava(0, "The man irons on a car.")])
        code, m = run(capsys, "llava_wild", "--data", FIXTURES / "llava_wild", "--answers", answers,
                      "--judge-url", url, "--judge-model", "gpt-4-0314")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, m
    # summarize_gpt_review.py: relative = round(model mean / reference mean x 100, 1); scores x 10
    assert (m["relative_score/complex"], m["reference_score/complex"], m["model_score/complex"]) == (75.0, 80.0, 60.0)
    assert (m["relative_score/detail"], m["reference_score/detail"], m["model_score/detail"]) == (0.0, 90.0, 0.0)
    assert (m["relative_score"], m["reference_score"], m["model_score"]) == (35.3, 85.0, 30.0)
    assert len(requests) == 2


def test_gqa_and_mmbench_llava_answers_use_the_official_ids(tmp_path, capsys):
    gqa = write_jsonl(tmp_path / "gqa.jsonl", [llava("q1", "Red."), llava("q2", "Yes"), llava("q3", "The left one")])
    code, m = run(capsys, "gqa", "--data", FIXTURES / "gqa", "--answers", gqa)
    assert code == 0 and m["accuracy"] == 50.0 and m["missing_answers"] == 1, m  # as the CSR-format fixture
    # model_vqa_mmbench.py writes the TSV row index as question_id (and round_id, options, option_char).
    rows = [llava(i, t) for i, t in ((0, "B"), (1000000, "A."), (2000000, "The answer is D"), (3000000, "dog"))]
    mmbench = write_jsonl(tmp_path / "mmbench.jsonl", [{**r, "round_id": 0, "option_char": "ABCD"} for r in rows])
    code, m = run(capsys, "mmbench", "--data", FIXTURES / "mmbench", "--answers", mmbench)
    assert code == 0 and m["category/animal"] == 100.0, m
