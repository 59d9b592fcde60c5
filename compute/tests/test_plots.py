"""Step ``plot`` (the run's headline plot): a spec of panels in, ``eval_metrics.png`` + manifest out, the same whether
spawned or forked by a light fork server (the CPU worker's: no torch); a bad panel is a bad spec naming it."""

import json
import subprocess
import sys
from pathlib import Path

from csr_compute.fork_server import ForkServerProcess

PANELS = [
    {"key": "eval/toy_chair/CHAIR_I", "title": "toy_chair/CHAIR_I", "direction": "minimize", "objective": True,
     "points": [[0, 0.3], [1, 0.25]]},
    {"key": "eval/toy_pope/mean/f1", "title": "toy_pope/mean/f1", "direction": "maximize", "objective": False,
     "points": [[0, 80], [1, 82.5]]},
]


def _spec(out_dir: Path, **overrides) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {"out_dir": str(out_dir), "title": "tiny-toy-1", "panels": PANELS, **overrides}
    (out_dir / "spec.json").write_text(json.dumps(spec))
    return str(out_dir / "spec.json")


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_the_plot_step_draws_the_panels_and_lists_the_png_in_its_manifest(tmp_path, compute_env):
    out = tmp_path / "plot"
    done = subprocess.run([sys.executable, "-m", "csr_compute", "plot", "--spec", _spec(out)], env=compute_env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    png = out / "eval_metrics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["step"] == "plot" and list(manifest["files"]) == ["eval_metrics.png"]
    assert manifest["items_computed"] == 2
    assert any(e["event"] == "manifest" for e in _events(done.stdout))


def test_a_bad_panel_is_a_bad_spec_naming_it(tmp_path, compute_env):
    bad = [{**PANELS[0], "direction": "sideways"}]
    done = subprocess.run([sys.executable, "-m", "csr_compute", "plot", "--spec", _spec(tmp_path / "bad", panels=bad)],
                          env=compute_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    error = next(e for e in _events(done.stdout) if e["event"] == "error")
    assert error["kind"] == "bad_spec" and "panels[0].direction" in error["message"], error


def test_a_light_fork_server_imports_no_torch_and_forks_the_plot_step(tmp_path, compute_env):
    with ForkServerProcess(env=compute_env, log_file=str(tmp_path / "server.log"), light=True) as server:
        modules = Path(f"/proc/{server.pid}/maps").read_text()
        assert "libtorch" not in modules, "a light server must not import torch"
        out = tmp_path / "forked"
        run = server.run("plot", _spec(out), str(tmp_path / "plot.log"))
    assert run.refused is None and run.code == 0, (tmp_path / "plot.log").read_text()
    assert (out / "eval_metrics.png").is_file()
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    assert timings["startup_s"] < 1.0, timings  # a fork, not an interpreter with matplotlib to import
