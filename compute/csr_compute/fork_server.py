"""A warm compute process per worker: imports once, forks one child per step.

    python -m csr_compute.fork_server --socket PATH [--light]

Why: a step started as ``python -m csr_compute STEP`` spends seconds before its first useful instruction
(interpreter, torch ~1 s, transformers' model classes ~2-4 s, trl); on the toy run that was more than the
compute itself. The server pays those imports once, when its worker starts, then serves each step with
``fork()``: the child shares the imported modules copy-on-write and pays only the fork and its own model
load (0.1-0.2 s for the toy models, whose classes are already imported).

What the child is, so that the activity layer keeps every guarantee it gives a spawned step:

- **Its own process group** (``setpgid``, set before the client learns the pid), so the activity's group kill on cancel or stall reaches it and
  everything it forks, exactly as for a spawned step.
- **Its stdout is the client's connection** and its stderr is the step's log file (opened in append mode):
  the JSON event lines flow to the activity unchanged, and the connection reaches EOF only when the last
  holder (the child or anything it forked) is gone, as a pipe does.
- **Its environment is the request's**: ``os.environ`` is replaced before the step runs, so CUDA_VISIBLE_DEVICES
  (read by CUDA at its first use, which never happens in the server) pins each step to its worker's GPU(s).
  A variable that modules read at import time (``HF_*``, ``PYTHON*``, ``OMP_*``, ...) cannot change after the
  server's imports: a request that differs from the server's own environment in anything but
  ``PER_STEP_ENV`` is refused, and the client runs that step as a plain spawn instead.
- **It runs only once the client knows it**: after ``fork`` the child waits on a pipe until the server has
  sent ``{"event": "fork-server", "started": pid, "start": ticks}`` (its pid and /proc start time, the process
  identity the activity checks before every kill). If the server dies before that, the child reads EOF and
  exits without running the step: a step is never both forked here and spawned by the fallback.
- **It dies with the server**: ``python -m csr_compute``'s parent watchdog (``__main__.watch_parent``) sees its
  parent change and kills its whole group, so a killed server leaves no step running; the client sees the
  connection end without an exit record and reports a retryable failure, and the step's folder lock keeps a
  retry from writing beside a survivor.

The server reaps its children and writes each one's end on that child's connection as a last line,
``{"event": "fork-server-exit", "pid", "code", "signal"}`` (after a newline, in case the child died mid-line).
It never runs torch code itself (no thread pool, no CUDA context to inherit) and stays single-threaded, so a
fork copies no lock held by another thread. It exits when its parent (the worker) goes away, on SIGTERM, and
removes its socket. Serving one request at a time is enough: a fork takes milliseconds.

``--light`` (the CPU worker's server): imports only what the steps without torch need (``WITHOUT_TORCH``:
curate, and the run's headline plot with matplotlib), a fraction of a second and of the memory; any other
step it is sent still runs, importing the rest in its child.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from .contract import EXIT_CODES

# Variables a step may set differently from the server: read at run time, never at import time.
PER_STEP_ENV = ("CUDA_VISIBLE_DEVICES",)
PER_STEP_PREFIXES = ("CSR_", "MLFLOW_")
EXIT_EVENT = "fork-server-exit"
ROOM = 4096  # blanks the client puts in the server's command line (``--room``), for show_as
HANDLED_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
MAX_REQUEST_BYTES = 1 << 20


def warm_up(light: bool = False) -> float:
    """Import what every step imports (torch, the model classes, each step module); returns the seconds it took.

    ``light``: only the modules of the steps that never touch torch, and matplotlib (the plot step's).
    """
    started = time.monotonic()
    from .__main__ import STEPS, WITHOUT_TORCH

    if light:
        for name in WITHOUT_TORCH:
            importlib.import_module(STEPS[name].split(":")[0])
        import matplotlib

        matplotlib.use("Agg")  # what the plot step selects; no display here
        import matplotlib.pyplot  # noqa: F401
        return time.monotonic() - started

    import torch  # noqa: F401
    import transformers

    for name in ("LlavaForConditionalGeneration", "LlavaProcessor", "AutoProcessor", "AutoTokenizer", "CLIPModel",
                 "CLIPProcessor", "CLIPImageProcessor", "PreTrainedTokenizerFast"):
        getattr(transformers, name, None)  # transformers imports lazily: touching the name imports the module
    for target in STEPS.values():
        importlib.import_module(target.split(":")[0])
    for optional in ("peft", "trl"):  # the DPO step's libraries: seconds to import, imported inside its run()
        try:
            importlib.import_module(optional)
        except ImportError:
            pass
    return time.monotonic() - started


def cuda_driver_loaded() -> bool:
    """True when the CUDA driver library is mapped into this process (it is loaded when CUDA is initialised)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("libcuda.so" in line for line in maps)
    except OSError:
        return False


def show_as(args: list[str]) -> bool:
    """Make this process's command line (``ps``, ``/proc/PID/cmdline``) read ``args``, NUL-separated as ``exec``
    leaves it, so that a forked step looks like the ``python -m csr_compute STEP --spec FILE`` it replaces.

    Overwrites the memory the kernel shows as the command line; there is room when the server was started
    with ``--room`` (blanks). Python copied its arguments at start-up and never reads that memory again.
    Linux only; False (nothing changed) elsewhere or without room.
    """
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        start, end = int(fields[48 - 3]), int(fields[49 - 3])  # arg_start, arg_end: fields 48 and 49
    except (OSError, ValueError, IndexError):
        return False
    data = b"\0".join(arg.encode() for arg in args) + b"\0"
    if start <= 0 or len(data) > end - start:
        return False
    import ctypes

    ctypes.memmove(start, data + b"\0" * (end - start - len(data)), end - start)
    return True


def env_mismatch(server_env: dict[str, str], step_env: dict[str, str]) -> list[str]:
    """Names of variables that differ between the server and a step and cannot be changed after the imports."""
    keys = set(server_env) | set(step_env)
    return sorted(k for k in keys if server_env.get(k) != step_env.get(k)
                  and k not in PER_STEP_ENV and not k.startswith(PER_STEP_PREFIXES))


def start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (what src/gpu/process-identity.ts records), or None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
        return stat[stat.rindex(")") + 2:].split(" ")[19]
    except (OSError, ValueError, IndexError):
        return None


def check_request(request: Any) -> str | None:
    """Why a request cannot be served (None when it can)."""
    from .__main__ import STEPS

    if not isinstance(request, dict):
        return "the request is not a JSON object"
    if request.get("step") not in STEPS:
        return f"unknown step {request.get('step')!r}"
    for key in ("spec", "log"):
        if not isinstance(request.get(key), str) or not request[key]:
            return f"{key}: expected a path"
    env = request.get("env")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return "env: expected an object of strings"
    if request.get("cwd") is not None and not isinstance(request["cwd"], str):
        return "cwd: expected a path"
    return None


class Server:
    def __init__(self, path: str, env_before_imports: dict[str, str], on_ready: Callable[[], None] = lambda: None):
        self.path = path
        self.on_ready = on_ready
        self.env = env_before_imports
        self.argv0 = sys.executable
        try:
            with open("/proc/self/cmdline", "rb") as handle:
                self.argv0 = handle.read().split(b"\0")[0].decode() or sys.executable  # as the worker wrote it
        except OSError:
            pass
        # What the imports themselves set (torch sets TORCHINDUCTOR_CACHE_DIR): a spawned step's imports would too.
        self.set_by_imports = {k: v for k, v in os.environ.items() if env_before_imports.get(k) != v}
        self.parent = os.getppid()
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}  # pid -> the connection its exit record goes to
        self.pending: dict[socket.socket, bytes] = {}  # exit records not yet fully sent
        self.wake_r, self.wake_w = socket.socketpair()
        self.stopping = False

    # ------------------------------------------------------------ the loop

    def serve(self) -> None:
        # Bound under a temporary name and renamed: a client never connects to a half-ready server.
        tmp = f"{self.path}.{os.getpid()}.tmp"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(tmp)
        self.listener.listen(64)
        os.replace(tmp, self.path)
        self.on_ready()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector through the wakeup fd
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self.stopping:
                for key, _ in self.selector.select(timeout=1.0):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        try:
                            self.wake_r.recv(4096)
                        except BlockingIOError:
                            pass
                    elif key.data == "write":
                        self._flush(key.fileobj)  # type: ignore[arg-type]
                self._reap()
                if os.getppid() != self.parent:  # the worker is gone: so are we (our children follow)
                    break
        finally:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def _stop(self, *_: Any) -> None:
        self.stopping = True

    # ------------------------------------------------------------ one request

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        try:
            conn.settimeout(10.0)  # a client that connects and says nothing must not hold the server
            request = json.loads(self._read_line(conn))
            why = check_request(request)
            if why is None:
                mismatch = env_mismatch(self.env, request["env"])
                if mismatch:
                    why = f"environment differs from the server's in {', '.join(mismatch[:5])} (read at import time)"
            if why is not None:
                conn.sendall((json.dumps({"event": "fork-server", "refused": why}) + "\n").encode())
                conn.close()
                return
            self._fork(conn, request)
        except (OSError, ValueError) as error:
            log(f"fork server: dropped a request: {error}")
            conn.close()

    @staticmethod
    def _read_line(conn: socket.socket) -> bytes:
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                raise ValueError("the client closed the connection before its request ended")
            data += chunk
            if len(data) > MAX_REQUEST_BYTES:
                raise ValueError("request too long")
        return data

    def _fork(self, conn: socket.socket, request: dict[str, Any]) -> None:
        go_r, go_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        # Signals wait until the child has its own handlers: a SIGTERM sent to the group at once must kill the
        # step, not run the server's handler in the child.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            self._child(conn, go_r, request)  # never returns
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        os.close(go_r)
        # Both sides set the group (the shells' way): when the client learns the pid, the group already exists,
        # so a kill of -pid at once cannot miss it. (The server has its own session and no terminal: so have they.)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
        try:
            conn.settimeout(None)
            conn.sendall((json.dumps({"event": "fork-server", "started": pid, "start": start_ticks(pid)}) + "\n").encode())
        except OSError as error:
            # The client does not know the child: it must not run (closing the pipe unblocks it with EOF).
            log(f"fork server: client gone before step {request['step']} started ({error}); not running it")
            os.close(go_w)
            conn.close()
            return
        self.children[pid] = conn
        os.write(go_w, b"g")
        os.close(go_w)

    def _child(self, conn: socket.socket, go_r: int, request: dict[str, Any]) -> None:
        code = EXIT_CODES["retryable"]
        try:
            os.setpgid(0, 0)  # its own process group (the server sets it too, before telling the client)
            signal.set_wakeup_fd(-1)
            for number in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(number, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
            for sock in (self.listener, self.wake_r, self.wake_w, *self.children.values(), *self.pending):
                sock.close()  # another step's connection held here would delay that step's EOF
            self.selector.close()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            os.dup2(conn.fileno(), 1)
            conn.close()
            log_fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(log_fd, 2)
            os.close(log_fd)
            if os.read(go_r, 1) != b"g":
                os._exit(0)  # the server never told the client about us: do nothing
            os.close(go_r)
            os.environ.clear()
            os.environ.update(request["env"])
            os.environ.update(self.set_by_imports)
            if request.get("cwd"):
                os.chdir(request["cwd"])
            from .__main__ import main

            sys.argv = ["csr_compute", request["step"], "--spec", request["spec"]]
            show_as([self.argv0, "-m", "csr_compute", request["step"], "--spec", request["spec"]])
            try:
                code = main(sys.argv[1:])
            except SystemExit as done:  # argparse
                code = done.code if isinstance(done.code, int) else 2
        except BaseException:  # noqa: BLE001 - whatever happens, the server's code below must not run here
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    # ------------------------------------------------------------ ends of children

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            if os.WIFSIGNALED(status):
                end = {"code": None, "signal": signal.Signals(os.WTERMSIG(status)).name}
            else:
                end = {"code": os.WEXITSTATUS(status), "signal": None}
            # After a newline: a child killed mid-line must not glue its half line to this record.
            self.pending[conn] = ("\n" + json.dumps({"event": EXIT_EVENT, "pid": pid, **end}) + "\n").encode()
            conn.setblocking(False)
            self._flush(conn)

    def _flush(self, conn: socket.socket) -> None:
        data = self.pending.get(conn, b"")
        try:
            sent = conn.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as error:  # the client went away: nobody to tell
            if error.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                log(f"fork server: could not send an exit record: {error}")
            sent = len(data)
        rest = data[sent:]
        if rest:
            self.pending[conn] = rest
            if not self._registered(conn):
                self.selector.register(conn, selectors.EVENT_WRITE, "write")
            return
        self.pending.pop(conn, None)
        if self._registered(conn):
            self.selector.unregister(conn)
        conn.close()

    def _registered(self, conn: socket.socket) -> bool:
        try:
            self.selector.get_key(conn)
            return True
        except (KeyError, ValueError):
            return False


def log(message: str) -> None:
    sys.stderr.write(message.rstrip() + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csr_compute.fork_server", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="path of the Unix socket to serve (in a private folder)")
    parser.add_argument("--room", default="", help="blanks that keep room in this command line for a forked step "
                        "to show its own there (show_as)")
    parser.add_argument("--light", action="store_true", help="import only what the steps without torch need "
                        "(curate, plot): the CPU worker's server")
    args = parser.parse_args(argv)
    env_before_imports = dict(os.environ)
    # Should an import ask torch whether CUDA is there, NVML answers: the CUDA driver stays uninitialised here,
    # so that each child initialises it for its own CUDA_VISIBLE_DEVICES (a driver initialised before fork
    # cannot be used in the child).
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    warm_s = warm_up(args.light)
    os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    torch = sys.modules.get("torch")  # not imported by a light server
    why = None
    if (torch is not None and torch.cuda.is_initialized()) or cuda_driver_loaded():
        why = "the CUDA driver was initialised"
    elif threading.active_count() > 1:
        why = f"{threading.active_count()} threads run"
    if why is not None:
        # A CUDA context or a second thread would be inherited half-alive by every child: refuse to serve.
        print(json.dumps({"event": "fork-server", "unusable": f"{why} during the imports; steps run as plain spawns"}),
              flush=True)
        return 1
    ready = {"event": "fork-server", "ready": os.getpid(), "socket": args.socket, "warm_s": round(warm_s, 2)}
    Server(args.socket, env_before_imports, on_ready=lambda: print(json.dumps(ready), flush=True)).serve()
    return 0


# ---------------------------------------------------------------- a client, for the benchmarks and tests
# (the workers' client is activities/fork-server.ts, speaking the same protocol)

@dataclass
class StepRun:
    """How a step run through a server ended: ``refused`` set when the server did not run it."""

    pid: int | None = None
    code: int | None = None
    signal: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    refused: str | None = None
    lost: bool = False  # the connection ended without an exit record (the server died)


class ForkServerProcess:
    """A fork server started as a child of this process (one per simulated worker), with a blocking client."""

    def __init__(self, env: dict[str, str] | None = None, python: str = sys.executable, log_file: str | None = None,
                 timeout_s: float = 300.0, light: bool = False):
        import subprocess
        import tempfile

        self.folder = tempfile.mkdtemp(prefix="csr-fork-")  # 0700: nobody else may ask us to run steps
        self.socket = os.path.join(self.folder, "server.sock")
        self.env = dict(os.environ if env is None else env)
        stderr = open(log_file, "a") if log_file else subprocess.DEVNULL
        self.process = subprocess.Popen([python, "-u", "-m", "csr_compute.fork_server", "--socket", self.socket,
                                         "--room", " " * ROOM, *(["--light"] if light else [])],
                                        stdout=subprocess.PIPE, stderr=stderr, env=self.env, start_new_session=True)
        if log_file:
            stderr.close()  # type: ignore[union-attr]
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        ready = json.loads(line) if line.strip() else {}
        if "ready" not in ready:
            self.close()
            raise RuntimeError(f"fork server did not start: {line.decode(errors='replace').strip() or 'no output'}")
        self.pid: int = ready["ready"]
        self.warm_s: float = ready["warm_s"]

    def launch(self, step: str, spec: str, log: str, env: dict[str, str] | None = None,
               cwd: str | None = None) -> tuple[Any, StepRun]:
        """Send one request; returns the child's stdout (a file on the connection) and the run, with ``pid`` or ``refused``."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.socket)
        request = {"step": step, "spec": spec, "log": log, "env": self.env if env is None else env, "cwd": cwd}
        conn.sendall((json.dumps(request) + "\n").encode())
        reader = conn.makefile("rb")
        first = json.loads(reader.readline() or b"{}")
        run = StepRun(pid=first.get("started"), refused=first.get("refused"))
        if run.pid is None and run.refused is None:
            run.refused = "no answer from the server"
        conn.close()  # the file object keeps the connection open
        return reader, run

    @staticmethod
    def finish(reader: Any, run: StepRun) -> StepRun:
        """Read the step's events up to the server's exit record and the connection's end."""
        run.lost = True
        for raw in reader:
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if event.get("event") == EXIT_EVENT:
                run.code, run.signal, run.lost = event["code"], event["signal"], False
            else:
                run.events.append(event)
        reader.close()
        return run

    def run(self, step: str, spec: str, log: str, env: dict[str, str] | None = None, cwd: str | None = None) -> StepRun:
        reader, run = self.launch(step, spec, log, env, cwd)
        if run.refused:
            reader.close()
            return run
        return self.finish(reader, run)

    def close(self) -> None:
        import shutil

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:  # noqa: BLE001
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "ForkServerProcess":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(main())
