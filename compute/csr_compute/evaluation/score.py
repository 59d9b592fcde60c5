"""Score an answers file against a benchmark's official data, without running a model.

    python -m csr_compute.evaluation.score BENCHMARK --data PATH --answers FILE [--json]

FILE is JSON lines of {"question_id": ..., "text": ...} (the LLaVA evaluation answer format). Prints the
metrics (``--json``: one JSON object). Exit 0 on success, 2 on bad input, 3 on a missing file (message on stderr), 1 when
a configured judge cannot be reached.
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
    parser.add_argument("--data", help="folder of the benchmark's official release (toy benchmarks: optional)")
    parser.add_argument("--answers", required=True, help="JSON lines of {question_id, text}")
    parser.add_argument("--split", help="only this split (where the benchmark has splits)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0 = all)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a benchmark-specific field (see docs/benchmarks.md)")
    parser.add_argument("--judge-url", help="OpenAI-compatible endpoint (MM-Vet, LLaVA-Bench)")
    parser.add_argument("--judge-model", help="judge model name")
    parser.add_argument("--judge-api-key-env", help="environment variable holding the judge's API key")
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


def _judge(args: argparse.Namespace):
    if not args.judge_url and not args.judge_model:
        return None
    if not (args.judge_url and args.judge_model):
        raise SpecError("--judge-url/--judge-model", args.judge_url or args.judge_model, "both or neither")
    from .judge import Judge

    return Judge.from_spec({"url": args.judge_url, "model": args.judge_model,
                            "api_key_env": args.judge_api_key_env}, field_path="--judge")


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
        dataset = load_dataset(benchmark, Path(args.data) if args.data else None, split=args.split,
                               limit=args.limit, options=_options(args.option))
        answers = match_answers(dataset, read_answers(Path(args.answers)))
        metrics = score(benchmark, dataset, answers, ScoreContext(judge=_judge(args)))
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
