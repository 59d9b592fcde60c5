"""``npm run bench``: speed and memory figures, each a ratio against a baseline run side by side.

    python compute/benchmarks/bench.py [NAME ...] [--out bench/results.json] [--quick]

Each benchmark is one function below, registered in ``BENCHMARKS``, returning a record
``{name, baseline, project, ratio, unit, settings, machine, ...extra figures}``; ``ratio`` is
project / baseline for rates (higher is better) and baseline / project for costs. A benchmark that cannot
run here (no toy world built) returns a record with ``skipped`` and the reason. The table goes to stdout,
the records to ``--out``. Not part of ``npm test``: timings are measured, never asserted. On a CPU the
rates are per CPU second of this process (one torch thread, ``CSR_TORCH_THREADS``), which other jobs on a
shared machine do not change; wall-clock rates are recorded beside them. On a GPU they are wall-clock.

- ``generate_toy``: tree search, this package vs the reference-style loop (one node per call, prompt
  re-encoded per node), on the toy world's trained LVLM and prompts; tokens/s.
- ``generate_mid``: the same on a random mid-size LLaVA (``random_llava.py``, shape ``mid``) with the real
  prompt length (576 image tokens); also ``peak_kv_bytes`` against ``min_kv_bytes``.
- ``reward``: CLIP scoring of a tree's sentences, batched (the reward step's ``ClipScorer``) vs one sentence
  at a time; sentences/s.
- ``resume_cost``: generate killed at 50 % of its prompts and restarted: finished prompts computed again
  (the project) vs a step without per-prompt resume, which redoes all of them (the baseline).
- ``orchestration_overhead``: with ``--run ID``, a finished run's share of wall time during which no compute
  step ran (compute = the union of the compute-step activities' intervals, so steps side by side count once),
  what filled it (``outside_compute_s``: seconds per light activity), its median step-to-step gap
  (``bench/orchestration-overhead.ts``), and the steps' process
  start (``startup_s``) + model load (``load_s``) vs compute (``step_compute_s``), summed over the run from the
  manifests' ``timings``; also each iteration's own share (``by_iteration``: its child workflow's start to the
  next one's) and the median over the trained iterations (``iteration_share_median``, iteration 0 being the
  baseline evaluation plus the run's preparation); skipped without it.
- ``workers_scaling``: generate + reward of one toy iteration's prompts (configs/toy.yaml's ``prompts.limit``,
  256; 16 with ``--quick``) as 1 shard on one worker vs 2 shards on two at once, each step forked by its
  worker's warm ``csr_compute.fork_server`` (as the workers launch steps; ``CSR_FORK_SERVER=0``: a
  ``python -m csr_compute`` process per step) with one torch thread and the spec a toy run sends; wall seconds (a
  parallelism figure: the load average is in ``machine``), ratio = 1-worker / 2-worker wall. Per worker:
  ``waiting_s`` (its end -> the phase's last end), ``startup_load_s`` (the manifests' ``timings``), ``compute_s``
  and ``idle_s`` = waiting + start-up/load; ``same_trees``: the 2 shards' candidates equal the 1 shard's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "compute"))

# The reference settings (configs/llava15-7b.yaml) with sentences cut short enough for a CPU.
SEARCH = {"num_beams": 5, "num_token_beams": 5, "num_beam_groups": 5, "diversity_penalty": 3.0, "keep_top": 1,
          "keep_bottom": 2, "batch_size": 32, "prompts_in_flight": 8}


def machine() -> dict[str, Any]:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


def record(name: str, baseline: float | None, project: float | None, unit: str, settings: dict, higher_is_better=True,
           **extra: Any) -> dict[str, Any]:
    ratio = None
    if baseline and project:
        ratio = round(project / baseline if higher_is_better else baseline / project, 2)
    return {"name": name, "baseline": baseline, "project": project, "ratio": ratio, "unit": unit,
            "settings": settings, "machine": machine(), **extra}


def _generate_record(name: str, model: str, prompts: list[dict], images_dir: str, params: dict, device: str,
                     dtype: str, note: str) -> dict[str, Any]:
    from generate_vs_reference import compare

    from csr_compute.models import load_lvlm
    from csr_compute.steps.generate import GenerateParams

    lvlm = load_lvlm(model, device, dtype)
    figures = compare(lvlm, GenerateParams(**params), prompts, images_dir)
    settings = {"model": note, "prompts": len(prompts), "prompt_tokens_mean": figures["prompt_tokens_mean"],
                "device": figures["device"], "dtype": figures["dtype"], **figures["params"]}
    cpu = figures["device"] == "cpu"
    rate = "tokens_per_cpu_s" if cpu else "tokens_per_s"
    return record(name, figures[f"reference_{rate}"], figures[f"batched_{rate}"],
                  "tokens per CPU second" if cpu else "tokens/s", settings,
                  wall_tokens_per_s={"baseline": figures["reference_tokens_per_s"], "project": figures["batched_tokens_per_s"]},
                  identical_share=figures["identical_candidate_share"], peak_kv_bytes=figures["peak_kv_bytes"],
                  min_kv_bytes=figures["min_kv_bytes"],
                  kv_ratio=round(figures["peak_kv_bytes"] / max(figures["min_kv_bytes"], 1), 3),
                  baseline_s=figures["reference_s"], project_s=figures["batched_s"], tokens=figures["batched_tokens"])


def _toy_world() -> Path | None:
    """The default world (toyworld seed 0, what ``npm start`` builds) when it is built, else the newest one.

    Other worlds (sweeps over world seeds) may be newer; the figures are comparable only on the same world.
    """
    from csr_compute.toyworld.build import world_dir

    root = Path(os.environ.get("CSR_TOYWORLD_ROOT") or Path(os.environ.get("CSR_HOME") or ROOT / ".csr") / "toyworld")
    built = lambda d: (d / "lvlm" / "config.json").is_file() and (d / "prompts.json").is_file()  # noqa: E731
    default = world_dir(root, seed=0)
    if built(default):
        return default
    worlds = [d for d in root.glob("*") if built(d)]
    return max(worlds, key=lambda d: d.stat().st_mtime) if worlds else None


def generate_toy(args: argparse.Namespace) -> dict[str, Any]:
    world = _toy_world()
    if world is None:
        return {"name": "generate_toy", "skipped": "no toy world built (npx csr toyworld build)", "machine": machine()}
    from csr_compute.config import load_config

    prompts = json.loads((world / "prompts.json").read_text())[:8 if args.quick else 32]
    # configs/toy.yaml's generate section; pruning by self-reward (calibrated pruning would time CLIP too).
    toy = load_config(ROOT / "configs" / "toy.yaml").generate
    params = {f: getattr(toy, f) for f in ("num_beams", "num_token_beams", "num_beam_groups", "diversity_penalty",
                                           "max_new_tokens", "max_length", "keep_top", "keep_bottom", "batch_size",
                                           "prompts_in_flight")}
    return _generate_record("generate_toy", str(world / "lvlm"), prompts, str(world / "images"), params, args.device,
                            args.dtype, f"toy world {world.name} (trained), configs/toy.yaml generate, prune_by self_reward")


def generate_mid(args: argparse.Namespace) -> dict[str, Any]:
    from random_llava import build_random_llava

    from csr_compute.fixtures.tiny_models import build_images_and_prompts

    tmp = Path(tempfile.mkdtemp(prefix="bench-mid-"))
    model = build_random_llava(tmp / "lvlm", "mid")
    count = 2 if args.quick else 8
    images, prompts_file = build_images_and_prompts(tmp / "data", count=count)
    prompts = json.loads(prompts_file.read_text())
    params = {**SEARCH, "max_new_tokens": 12, "max_length": 640}
    return _generate_record("generate_mid", str(model), prompts, str(images), params, args.device, args.dtype,
                            "random LLaVA 'mid' (CLIP 1x64, Llama 4x256, 576 image tokens)")


def reward(args: argparse.Namespace) -> dict[str, Any]:
    import random

    from PIL import Image

    from csr_compute.fixtures.tiny_models import WORDS, build_images_and_prompts, build_tiny_clip
    from csr_compute.models import load_clip
    from csr_compute.search.clip_score import ClipScorer

    world = _toy_world()
    if world is not None and (world / "clip" / "config.json").is_file():
        clip_dir, note = world / "clip", f"toy world {world.name} CLIP"
        image = Image.open(next((world / "images").glob("*.png"))).convert("RGB")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench-reward-"))
        clip_dir, note = build_tiny_clip(tmp / "clip"), "tiny random CLIP"
        images, _ = build_images_and_prompts(tmp / "data", count=1)
        image = Image.open(next(images.glob("*.png"))).convert("RGB")
    rng = random.Random(0)
    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) + " ." for _ in range(128 if args.quick else 512)]
    clip = load_clip(clip_dir, args.device)
    batched, single = ClipScorer(clip.model, clip.processor, clip.device, 64), ClipScorer(clip.model, clip.processor, clip.device, 1)
    started, cpu_started = time.perf_counter(), time.process_time()
    ours = batched.score(image, sentences)
    batched_s, batched_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    started, cpu_started = time.perf_counter(), time.process_time()
    theirs = [single.score(image, [s])[0] for s in sentences]  # one call per sentence, image encoded each time
    single_s, single_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    agree = max(abs(a - b) for a, b in zip(ours, theirs))
    settings = {"model": note, "sentences": len(sentences), "batch_size": 64, "device": clip.device}
    cpu = clip.device == "cpu"
    baseline, project = (single_cpu, batched_cpu) if cpu else (single_s, batched_s)
    return record("reward", round(len(sentences) / baseline, 1), round(len(sentences) / project, 1),
                  "sentences per CPU second" if cpu else "sentences/s", settings, max_abs_difference=round(agree, 6),
                  wall_sentences_per_s={"baseline": round(len(sentences) / single_s, 1),
                                        "project": round(len(sentences) / batched_s, 1)})


def resume_cost(args: argparse.Namespace) -> dict[str, Any]:
    from csr_compute.fixtures.tiny_models import build_images_and_prompts, build_tiny_lvlm

    tmp = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    model = build_tiny_lvlm(tmp / "lvlm")
    images, prompts_file = build_images_and_prompts(tmp / "data", count=16)
    params = {**SEARCH, "max_new_tokens": 6, "max_length": 52, "batch_size": 8, "prompts_in_flight": 2}
    spec = {"out_dir": str(tmp / "out"), "model": str(model), "prompts_file": str(prompts_file),
            "images_dir": str(images), "device": "cpu", "seed": 0, "params": params}
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "compute"), "CSR_TORCH_THREADS": os.environ.get("CSR_TORCH_THREADS", "1")}
    command = [sys.executable, "-m", "csr_compute", "generate", "--spec", str(tmp / "spec.json")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    for line in process.stdout:
        event = json.loads(line)
        if event.get("event") == "progress" and "phase" not in event and event.get("done", 0) >= 8:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len((tmp / "out" / "trees.jsonl").read_text().splitlines())
    subprocess.run(command, env=env, check=True, capture_output=True)
    manifest = json.loads((tmp / "out" / "manifest.json").read_text())
    redone = manifest["items_computed"] - (16 - finished)  # finished prompts computed a second time
    settings = {"prompts": 16, "killed_after": finished, "prompts_in_flight": 2, "model": "tiny random LLaVA"}
    return {**record("resume_cost", float(finished), float(redone), "prompts redone per shard", settings,
                     higher_is_better=False),
            "note": f"the {params['prompts_in_flight']} prompts in flight at the kill lose their partial trees"}


def _run_phase(steps: list[tuple[str, dict]], env: dict[str, str],
               servers: list[Any] | None = None) -> tuple[float, list[float]]:
    """Start one step per worker at once, as the workers do; wait for all of them.

    With ``servers`` (one warm ``csr_compute.fork_server`` per worker, started with the worker, as
    ``CSR_FORK_SERVER`` makes the workers do) each step is forked there; without, it is its own
    ``python -m csr_compute`` process. Returns the phase's wall seconds and each worker's own seconds
    (its step's launch to its end).
    """
    import threading

    started = time.monotonic()
    ends: list[float | None] = [None] * len(steps)
    failures: list[str] = []
    processes = []
    for i, (step, spec) in enumerate(steps):
        out = Path(spec["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")  # where the activity writes it
        log = out / f"{step}.log"
        if servers is None:
            with open(log, "w") as log_file:
                processes.append(subprocess.Popen([sys.executable, "-m", "csr_compute", step, "--spec", str(out / "spec.json")],
                                                  stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True))
            continue

        def through_server(i: int = i, step: str = step, out: Path = out, log: Path = log) -> None:
            run = servers[i].run(step, str(out / "spec.json"), str(log), env=env)
            ends[i] = time.monotonic() - started
            if run.code != 0:
                failures.append(f"{step} {run.refused or f'exited {run.code} {run.signal}'}; see {log}")

        thread = threading.Thread(target=through_server)
        thread.start()
        processes.append(thread)
    while None in ends and servers is None:  # poll, so that each worker's end is its own (a blocking wait would serialise them)
        for i, process in enumerate(processes):
            if ends[i] is None and process.poll() is not None:
                ends[i] = time.monotonic() - started
        time.sleep(0.02)
    for (step, spec), process in zip(steps, processes):
        if servers is not None:
            process.join()
        elif process.returncode != 0:
            failures.append(f"{step} exited {process.returncode}; see {spec['out_dir']}/{step}.log")
    if failures:
        raise RuntimeError("; ".join(failures))
    return max(ends), ends  # type: ignore[type-var, return-value]


def _candidate_texts(trees_files: list[Path]) -> dict[str, list[str]]:
    return {r["id"]: [n["text"] for n in r["nodes"]] for f in trees_files
            for r in map(json.loads, f.read_text().splitlines())}


def workers_scaling(args: argparse.Namespace) -> dict[str, Any]:
    """Generate + reward of one iteration's prompts: 1 shard on one worker vs 2 shards on two workers at once.

    The specs are the ones ``src/shared/plan.ts`` builds for a toy run (configs/toy.yaml's sections whole,
    CLIP for calibrated pruning); each step is forked by its worker's warm fork server (started before the
    phases, as a worker starts its server; ``CSR_FORK_SERVER=0``: its own ``python -m csr_compute`` process), with
    one torch thread, and reward starts when every generate shard has finished, as in ``workflows/csr-iteration.ts``.
    """
    from csr_compute.fork_server import ForkServerProcess

    world = _toy_world()
    if world is None:
        return {"name": "workers_scaling", "skipped": "no toy world built (npx csr toyworld build)", "machine": machine()}
    from csr_compute.config import load_config

    config = load_config(ROOT / "configs" / "toy.yaml").to_dict()
    count = 16 if args.quick else config["prompts"]["limit"]  # one toy iteration's sample: 256 prompts
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    prompts_file = tmp / "prompts.json"  # the iteration's sample, as the sample-prompts activity writes it
    prompts_file.write_text(json.dumps(json.loads((world / "prompts.json").read_text())[:count]))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "compute"), "CSR_TORCH_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    forked = os.environ.get("CSR_FORK_SERVER", "1") != "0"
    load_before = round(os.getloadavg()[0], 2)
    runs: dict[str, Any] = {}
    for workers in (1, 2):
        # The workers' warm processes start with the workers, before any step: not part of a phase.
        servers = [ForkServerProcess(env=env, log_file=str(tmp / f"fork-server-{workers}-{i}.log"))
                   for i in range(workers)] if forked else None
        root = tmp / f"workers-{workers}"
        generate = [("generate", {
            "out_dir": str(root / "generate" / f"shard-{i}"), "model": str(world / "lvlm"), "prompts_file": str(prompts_file),
            "images_dir": str(world / "images"), "shard": {"index": i, "count": workers}, "params": config["generate"],
            **({"clip": str(world / "clip"), "reward": config["reward"]} if config["generate"]["prune_by"] == "calibrated" else {}),
            "seed": config["seed"] + 1, "device": args.device}) for i in range(workers)]
        reward = [("reward", {
            "out_dir": str(root / "reward" / f"shard-{i}"), "trees": [str(Path(spec["out_dir"]) / "trees.jsonl")],
            "clip": str(world / "clip"), "images_dir": str(world / "images"), "params": config["reward"],
            "device": args.device}) for i, (_, spec) in enumerate(generate)]
        try:
            phases = {name: _run_phase(steps, env, servers) for name, steps in (("generate", generate), ("reward", reward))}
        finally:
            for server in servers or []:
                server.close()
        per_worker = []
        for i in range(workers):
            timings = [json.loads((Path(steps[i][1]["out_dir"]) / "manifest.json").read_text()).get("timings", {})
                       for steps in (generate, reward)]
            waiting = sum(wall - ends[i] for wall, ends in phases.values())  # its own end -> the phase's last end
            startup_load = sum(t.get("startup_s", 0.0) + t.get("load_s", 0.0) for t in timings)
            per_worker.append({"generate_s": round(phases["generate"][1][i], 2), "reward_s": round(phases["reward"][1][i], 2),
                               "compute_s": round(sum(t.get("compute_s", 0.0) for t in timings), 2),
                               "waiting_s": round(waiting, 2), "startup_load_s": round(startup_load, 2),
                               "idle_s": round(waiting + startup_load, 2)})
        runs[str(workers)] = {"wall_s": round(sum(wall for wall, _ in phases.values()), 2),
                              "generate_wall_s": round(phases["generate"][0], 2),
                              "reward_wall_s": round(phases["reward"][0], 2), "workers": per_worker,
                              "trees": [str(Path(spec["out_dir"]) / "trees.jsonl") for _, spec in generate],
                              "scored": [str(Path(spec["out_dir"]) / "scored.jsonl") for _, spec in reward]}
    one = _candidate_texts([Path(f) for f in runs["1"]["trees"]])
    two = _candidate_texts([Path(f) for f in runs["2"]["trees"]])
    scored_one = _candidate_texts([Path(f) for f in runs["1"]["scored"]])
    scored_two = _candidate_texts([Path(f) for f in runs["2"]["scored"]])
    settings = {"model": f"toy world {world.name}", "prompts": count, "generate": "configs/toy.yaml generate",
                "reward": "configs/toy.yaml reward", "torch_threads_per_worker": 1, "device": args.device,
                "launch": "fork server per worker" if forked else "spawn per step (CSR_FORK_SERVER=0)",
                "outputs": str(tmp)}
    return {**record("workers_scaling", runs["1"]["wall_s"], runs["2"]["wall_s"], "seconds wall (1 worker, 2 workers)",
                     settings, higher_is_better=False),
            "one_worker": {k: v for k, v in runs["1"].items() if k not in ("trees", "scored")},
            "two_workers": {k: v for k, v in runs["2"].items() if k not in ("trees", "scored")},
            "same_prompts": sorted(one) == sorted(two) and len(one) == count, "same_trees": one == two,
            "same_scored_prompts": sorted(scored_one) == sorted(scored_two) == sorted(one),
            "load_average_1m_at_start": load_before}


def orchestration_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """A finished run's non-compute share and step-to-step gaps, from its Temporal histories (``--run ID``)."""
    import re

    if not args.run:
        return {"name": "orchestration_overhead", "machine": machine(),
                "skipped": "needs --run ID: a finished toy run on an otherwise idle stack (other runs' queueing counts as gaps)"}
    out = subprocess.run(["npx", "tsx", str(ROOT / "bench" / "orchestration-overhead.ts"), args.run], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    median = float(re.search(r"median ([0-9.]+)s", out).group(1))
    wall, compute, summed = (float(x) for x in re.search(
        r"run wall time ([0-9.]+)s, compute \(union of compute-step activities\) ([0-9.]+)s, sum of step wall times ([0-9.]+)s",
        out).groups())
    share = round((wall - compute) / wall, 4)
    outside = {name: float(v) for name, v in re.findall(r"(\w+) ([0-9.]+)s", out.split("outside compute: ", 1)[1].splitlines()[0])}
    idle = re.search(r"no activity running: ([0-9.]+)s", out)
    if idle:  # workflow tasks, child starts, continue-as-new: time in which no activity ran at all
        outside["no_activity"] = float(idle.group(1))
    # Each step's wall time split by its manifest's timings, summed over the run's steps.
    split = re.search(r"step time split: startup ([0-9.]+)s, load ([0-9.]+)s, compute ([0-9.]+)s over (\d+) steps "
                      r"\((\d+) without timings\)", out)
    parts = {} if split is None else {
        "startup_s": float(split.group(1)), "load_s": float(split.group(2)), "step_compute_s": float(split.group(3)),
        "steps_timed": int(split.group(4)), "steps_without_timings": int(split.group(5))}
    # Per iteration: "it<N> <wall>s <share>%" for each iteration's window (bench/orchestration-overhead.ts).
    by_iteration = [{"iteration": int(n), "wall_s": float(w), "share": round(float(p) / 100, 4)}
                    for n, w, p in re.findall(r"it(\d+) ([0-9.]+)s ([0-9.]+)%", out.split("per iteration", 1)[-1])]
    trained = [row["share"] for row in by_iteration if row["iteration"] > 0]
    iteration_share = sorted(trained)[len(trained) // 2] if trained else None
    return {**record("orchestration_overhead", wall, compute, "seconds (run wall, compute)", {"run": args.run}),
            "share": share, "iteration_share_median": iteration_share, "by_iteration": by_iteration,
            "median_gap_s": median, "ratio": None, "step_wall_sum_s": summed,
            "outside_compute_s": outside, **parts}


BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "generate_toy": generate_toy, "generate_mid": generate_mid, "reward": reward, "resume_cost": resume_cost,
    "orchestration_overhead": orchestration_overhead, "workers_scaling": workers_scaling,
}


def table(records: list[dict[str, Any]]) -> str:
    lines = [f"{'name':<14} {'baseline':>10} {'project':>10} {'ratio':>7}  unit / notes"]
    for r in records:
        if "skipped" in r:
            lines.append(f"{r['name']:<14} {'-':>10} {'-':>10} {'-':>7}  skipped: {r['skipped']}")
            continue
        extra = []
        if "share" in r:
            extra.append(f"non-compute share {r['share']:.1%}, median step gap {r['median_gap_s']} s")
        if "startup_s" in r:
            extra.append(f"steps: start {r['startup_s']} s + load {r['load_s']} s vs compute {r['step_compute_s']} s")
        if "identical_share" in r:
            extra.append(f"identical {r['identical_share']:.1%}")
        if "same_trees" in r:
            idle = ", ".join(str(w["idle_s"]) for w in r["two_workers"]["workers"])
            extra.append(f"2 workers idle {idle} s, same trees {r['same_trees']}, load {r['machine']['load_average_1m']}")
        if "peak_kv_bytes" in r:
            extra.append(f"peak KV {r['peak_kv_bytes'] / 2**20:.1f} MiB = {r['kv_ratio']}x min")
        ratio = "-" if r["ratio"] is None else f"{r['ratio']}x"
        lines.append(f"{r['name']:<14} {r['baseline']:>10} {r['project']:>10} {ratio:>7}  {r['unit']}"
                     + (f"; {', '.join(extra)}" if extra else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--quick", action="store_true", help="fewer prompts and sentences (a smoke run)")
    parser.add_argument("--run", help="orchestration_overhead: workflow id of a finished run")
    args = parser.parse_args(argv)
    import difflib

    import torch

    torch.set_num_threads(int(os.environ.get("CSR_TORCH_THREADS", "1")))
    for name in args.names:
        if name not in BENCHMARKS:
            close = difflib.get_close_matches(name, BENCHMARKS, n=1)
            parser.error(f"unknown benchmark {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    records = []
    for name in args.names or list(BENCHMARKS):
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        records.append(BENCHMARKS[name](args))
    print(table(records))
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() and args.names else []
    merged = {r["name"]: r for r in previous} | {r["name"]: r for r in records}  # a partial run updates its records
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(list(merged.values()), indent=2) + "\n")
    print(f"[bench] wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
