"""Score an answers file against a benchmark's official data, without running a model.

    python -m csr_compute.evaluation.score BENCHMARK --data PATH --answers FILE [--json]

FILE is JSON lines of {"question_id": ..., "text": ...} (the LLaVA evaluation answer format), with this
project's question ids or, for a file written by LLaVA's own eval scripts (detected, or ``--format
llava``), with LLaVA's (see llava_answers.py). PATH is the release folder, or for POPE and MMBench also
one split file / TSV. Prints the metrics (``--json``: one JSON object). Exit 0 on success, 2 on bad
input, 3 on a missing file (message on stderr), 1 when a configured judge cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..contract import RetryableError, SpecError
from .answers import match_answers, read_answers
from .datafiles import DataError, MissingFileError
from .registry import ScoreContext, get_benchmark, load_dataset, names
from .scoring import score


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m csr_compute.evaluation.score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", help=f"one of: {', '.join(names())}")
    parser.add_argument("--data", help="folder of the benchmark's official release (toy benchmarks: a built world's "
                        "benchmarks/<name>; `csr score` finds it)")
    parser.add_argument("--answers", required=True, help="JSON lines of {question_id, text}")
    parser.add_argument("--split", help="only this split (where the benchmark has splits)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0 = all)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a benchmark-specific field (see docs/benchmarks.md)")
    parser.add_argument("--judge-url", help="OpenAI-compatible endpoint (MM-Vet, LLaVA-Bench)")
    parser.add_argument("--judge-model", help="judge model name")
    parser.add_argument("--judge-api-key-env", help="environment variable holding the judge's API key (one listed "
                                                    "in CSR_JUDGE_KEY_ENVS)")
    parser.add_argument("--judge-cache", help="JSON-lines file keeping the judge's replies: scoring again asks nothing")
    parser.add_argument("--format", choices=("auto", "csr", "llava"), default="auto",
                        help="answer ids: this project's (csr), LLaVA's eval scripts' (llava), or detected (auto)")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    return parser


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError("--option", pair, "KEY=VALUE")
        options[key] = value
    return options


# Judge spec fields -> the flags that set them, so an error names what the user typed.
_JUDGE_FLAGS = {"judge.url": "--judge-url", "judge.model": "--judge-model", "judge.api_key_env": "--judge-api-key-env"}


def _judge(args: argparse.Namespace):
    if not args.judge_url and not args.judge_model:
        if args.judge_api_key_env or args.judge_cache:
            raise SpecError("--judge-url", None, "a judge URL and --judge-model (given: a key variable or a cache only)")
        return None
    if not (args.judge_url and args.judge_model):
        raise SpecError("--judge-url/--judge-model", args.judge_url or args.judge_model, "both or neither")
    from .judge import Judge

    try:
        judge = Judge.from_spec({"url": args.judge_url, "model": args.judge_model,
                                 "api_key_env": args.judge_api_key_env})
    except SpecError as error:
        raise SpecError(_JUDGE_FLAGS.get(error.field_path, error.field_path), error.value, error.expected) from None
    return judge.with_cache(Path(args.judge_cache)) if args.judge_cache else judge


def _data(args: argparse.Namespace, benchmark, options: dict[str, str]) -> Path:
    """The data folder; a single file (one POPE split, an MMBench TSV) stands for its folder plus option file."""
    if not args.data:
        raise SpecError("--data", None, f"the folder of the {benchmark.title} release "
                                        f"(see docs/benchmarks.md#{benchmark.name})")
    data = Path(args.data)
    if not data.is_file():
        return data
    if "file" not in benchmark.options:
        raise SpecError("--data", args.data, f"the folder of the {benchmark.title} release "
                                              f"(a single file is accepted for: pope, mmbench)")
    options.setdefault("file", data.name)
    return data.parent


def _answers(args: argparse.Namespace, benchmark, dataset, options: dict[str, str], data_dir: Path | None):
    from .llava_answers import looks_like_llava, read_llava_answers

    path = Path(args.answers)
    if args.format == "llava" or (args.format == "auto" and looks_like_llava(path)):
        return read_llava_answers(benchmark.name, path, dataset, options, data_dir or dataset.source.parent)
    return read_answers(path)


def _format(metrics: dict) -> str:
    width = max(len(name) for name in metrics)
    lines = []
    for name, value in metrics.items():
        shown = f"{value:.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
        lines.append(f"{name:<{width}}  {shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        benchmark = get_benchmark(args.benchmark, field_path="BENCHMARK")
        if args.limit < 0:
            raise SpecError("--limit", args.limit, "0 (all) or a positive number")
        options = _options(args.option)
        data_dir = _data(args, benchmark, options)
        judge = _judge(args)
        from .llava_answers import LOAD_ALL, looks_like_llava

        if args.format == "llava" or (args.format == "auto" and looks_like_llava(Path(args.answers))):
            # LLaVA's files also answer what the default load leaves out (ScienceQA text-only, SEED video).
            if benchmark.name in LOAD_ALL:
                options.setdefault(*LOAD_ALL[benchmark.name])
        dataset = load_dataset(benchmark, data_dir, split=args.split, limit=args.limit, options=options)
        answers = match_answers(dataset, _answers(args, benchmark, dataset, options, data_dir))
        metrics = score(benchmark, dataset, answers, ScoreContext(judge=judge))
    except MissingFileError as error:  # the input is not there: 3, as for a step
        sys.stderr.write(f"csr score: {error}\n")
        return 3
    except (SpecError, DataError) as error:  # DataError before FileNotFoundError: it subclasses it
        sys.stderr.write(f"csr score: {error}\n")
        return 2
    except FileNotFoundError as error:
        sys.stderr.write(f"csr score: {error}\n")
        return 3
    except RetryableError as error:  # the judge did not answer: not the input's fault, worth another try
        sys.stderr.write(f"csr score: {error}\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(metrics, sort_keys=False) + "\n")
    else:
        sys.stdout.write(f"{benchmark.title}: {len(dataset.items)} questions from {dataset.source}\n")
        sys.stdout.write(_format(metrics) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    sys.exit(main())
