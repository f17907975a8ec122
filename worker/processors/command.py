"""command: run any executable in the image on the item, unchanged.

    "processor": "command",
    "params": {
      "command": ["my-tool", "--in", "{input}", "--out", "{output_dir}/result.txt", "--seed", "{seed}"],
      "env": {"OMP_NUM_THREADS": "1"},
      "input": "file"
    }

- `{input}` is the item's input downloaded to a local file (for a shard: the header and its byte range),
  `{output_dir}` the directory whose files are uploaded, `{index}`, `{attempt}`, `{job_id}`,
  `{scratch_dir}`, and `{name}` any job or item param. Any other text, braces included, is passed
  unchanged (so inline scripts need no escaping; an unknown `{name}` is logged as a warning). Non-string
  values are substituted as JSON (`3`, `true`, `[1, 2]`).
- `input`: "file" (default when the item names an object) downloads the input; "none" does not.
- Every job and item param is also in the child's environment as SPOTMAP_PARAM_<NAME> (upper case,
  other characters as "_"), with SPOTMAP_JOB_ID, SPOTMAP_ITEM_INDEX, SPOTMAP_ATTEMPT, SPOTMAP_ITEM (JSON),
  SPOTMAP_OUTPUT_DIR, SPOTMAP_INPUT (when downloaded) and TMPDIR (a private scratch directory); then
  `env` (values substituted like arguments) on top.
- Never through a shell. The exit code decides success: non-zero fails the item with the code and the
  last stderr lines. The last line of stdout that is a JSON object is the partial result (merged with
  the `jobcore.merge` algebra; plain values merge as "first"); no such line gives null.
- A stop (SIGTERM) is forwarded to the command and its children; after `stop_grace_seconds` (default 20)
  the command is killed. See `_Group` for which process group the command runs in.
- Checkpoints: SPOTMAP_CHECKPOINT_DIR (also `{checkpoint_dir}`) is a directory holding what the command
  left there in the item's last attempt that was stopped or failed (empty at first). When the command
  ends other than successfully (stopped by a Spot reclaim, or failing), the worker saves the directory
  as the item's checkpoint if it changed (worker/checkpoints.py); the next attempt finds it restored.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from typing import IO, Any

from worker.api import ConfigError, Context, ProcessingError, processor

OWN_PARAMS = ("command", "env", "input", "stop_grace_seconds")
STDERR_TAIL_LINES = 20
MAX_LINE_BYTES = 8 << 20  # a longer stdout line is logged in pieces (and is never the partial result)

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
RESERVED = ("input", "output_dir", "scratch_dir", "checkpoint_dir", "index", "attempt", "job_id")


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def substitute(template: str, values: Mapping[str, Any], unknown: set[str] | None = None) -> str:
    """Replace each {name} whose name is in `values`; leave other text alone (names collected in
    `unknown`). A reserved name missing from `values` ({input} of an item without input) is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return as_text(values[name])
        if name in RESERVED:
            raise ConfigError(f"command: {{{name}}} is not available for this item (in {template!r})")
        if unknown is not None:
            unknown.add(name)
        return match.group(0)

    return _PLACEHOLDER.sub(replace, template)


def env_name(name: str) -> str:
    return "SPOTMAP_PARAM_" + re.sub(r"[^A-Z0-9_]", "_", name.upper())


@processor("command")
def command(ctx: Context) -> Any:
    """Runs params.command (argv list, placeholders substituted) on the item; stdout's last JSON line is
    the partial result."""
    params = ctx.params
    argv_template = params.get("command")
    if (
        not isinstance(argv_template, list)
        or not argv_template
        or not all(isinstance(arg, str) for arg in argv_template)
    ):
        raise ConfigError(
            'command: params.command must be a non-empty list of strings, e.g. ["my-tool", "{input}"]'
        )
    extra_env = params.get("env") or {}
    if not isinstance(extra_env, dict) or not all(isinstance(k, str) for k in extra_env):
        raise ConfigError("command: params.env must be an object of NAME: value")
    input_mode = params.get("input") or ("file" if ctx.has_input else "none")
    if input_mode not in ("file", "none"):
        raise ConfigError(f'command: params.input must be "file" or "none", not {input_mode!r}')
    if input_mode == "file" and not ctx.has_input:
        raise ConfigError(f'command: params.input is "file" but item {ctx.index} names no object')
    try:
        grace = float(params.get("stop_grace_seconds", 20))
    except (TypeError, ValueError):
        raise ConfigError("command: params.stop_grace_seconds must be a number") from None

    values: dict[str, Any] = {k: v for k, v in params.items() if k not in OWN_PARAMS}
    checkpoint_dir = ctx.checkpoint_directory()  # restored from the last attempt's, or empty
    values.update(
        index=ctx.index,
        attempt=ctx.attempt,
        job_id=ctx.job_id,
        output_dir=str(ctx.output_dir),
        scratch_dir=str(ctx.scratch_dir),
        checkpoint_dir=str(checkpoint_dir),
    )
    child_env = dict(ctx.env)
    child_env.update({env_name(k): as_text(v) for k, v in params.items() if k not in OWN_PARAMS})
    if input_mode == "file":
        values["input"] = str(ctx.input_path())
        child_env["SPOTMAP_INPUT"] = values["input"]
    child_env.update(
        SPOTMAP_JOB_ID=ctx.job_id,
        SPOTMAP_ITEM_INDEX=str(ctx.index),
        SPOTMAP_ATTEMPT=str(ctx.attempt),
        SPOTMAP_ITEM=ctx.item.model_dump_json(),
        SPOTMAP_OUTPUT_DIR=str(ctx.output_dir),
        SPOTMAP_CHECKPOINT_DIR=str(checkpoint_dir),
        TMPDIR=str(ctx.scratch_dir),
    )
    unknown: set[str] = set()
    argv = [substitute(arg, values, unknown) for arg in argv_template]
    child_env.update({name: substitute(as_text(value), values, unknown) for name, value in extra_env.items()})
    if unknown:
        ctx.log.warning(
            "braces that are not placeholders were passed unchanged",
            extra={"names": sorted(unknown), "placeholders": sorted(values)},
        )

    executable = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=child_env.get("PATH"))
    if executable is None or not os.access(executable, os.X_OK):
        raise ConfigError(f"command: {argv[0]!r} is not an executable in this image (PATH and file mode)")
    return _run(ctx, [executable, *argv[1:]], child_env, grace, display=argv[0])


def _run(ctx: Context, argv: list[str], env: dict[str, str], grace: float, display: str) -> Any:
    ctx.log.info("starting command", extra={"argv": argv})
    last_json: list[Any] = [None]
    stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    group = _Group()
    proc: subprocess.Popen[bytes] | None = None
    readers: list[threading.Thread] = []
    try:
        with ctx.deferred_stop(check_after=False):  # never leave a child behind un-tracked
            try:
                proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=ctx.workdir,
                    env=env,
                    start_new_session=not group.shared,
                )
            except OSError as error:
                if error.errno == errno.E2BIG:
                    raise ProcessingError(too_big_for_exec(argv, env, display)) from None
                raise
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            threading.Thread(target=_pump, args=(proc.stdout, ctx, "stdout", last_json, None), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, ctx, "stderr", None, stderr_tail), daemon=True),
        ]
        for reader in readers:
            reader.start()
        ctx.check_stop()
        code = proc.wait()
    except BaseException:
        if proc is not None:
            ctx.log.warning("stopping command", extra={"pid": proc.pid, "grace_seconds": grace})
            group.stop(proc, grace, stopping=ctx.should_stop())
            _save_checkpoint(ctx)  # within the task's stop timeout: the relaunch resumes from it
        raise
    finally:
        if proc is not None:
            group.clean_up(proc)
        for reader in readers:
            reader.join(timeout=5)
    if code != 0:
        _save_checkpoint(ctx)
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        tail = "\n".join(stderr_tail)
        raise ProcessingError(
            f"command {display!r} {how}" + (f"; last stderr lines:\n{tail}" if tail else "")
        )
    ctx.log.info("command succeeded", extra={"partial": last_json[0] is not None})
    return last_json[0]


def _save_checkpoint(ctx: Context) -> None:
    """Save the command's checkpoint directory if it changed; a failure to save is logged, never hides
    why the command stopped."""
    try:
        if ctx.checkpoints.save_directory():
            ctx.log.info("checkpoint directory saved", extra={"checkpoint": ctx.checkpoints.backend.name})
    except Exception as error:
        ctx.log.warning(f"could not save the checkpoint directory: {type(error).__name__}: {error}")


# Linux refuses to exec (E2BIG) when one argument or environment string is longer than MAX_ARG_STRLEN
# (32 pages: 128 KiB) or all of them together exceed a quarter of the stack limit (2 MiB with the usual
# 8 MiB); see execve(2), "Limits on size of arguments and environment".
MAX_ARG_STRLEN = 128 * 1024


def too_big_for_exec(argv: list[str], env: Mapping[str, str], display: str) -> str:
    """Why exec refused the command (E2BIG), naming the largest arguments and variables."""
    sizes = [(f"argument {i}", len(arg.encode()) + 1) for i, arg in enumerate(argv)]
    sizes += [(f"${name}", len(name.encode()) + len(value.encode()) + 2) for name, value in env.items()]
    total = sum(size for _, size in sizes)
    largest = sorted(sizes, key=lambda pair: -pair[1])[:3]
    shown = ", ".join(f"{name} {size:,} bytes" for name, size in largest)
    return (
        f"command {display!r} could not start: E2BIG (Argument list too long): its arguments and "
        f"environment take {total:,} bytes; the OS allows {MAX_ARG_STRLEN // 1024} KiB per argument or "
        f"variable and about 2 MiB in all (largest: {shown}). Every item param is passed as "
        f"SPOTMAP_PARAM_<NAME> and in SPOTMAP_ITEM: put large values in an input object instead"
    )


def _pump(
    stream: IO[bytes],
    ctx: Context,
    name: str,
    last_json: list[Any] | None,
    tail: collections.deque[str] | None,
) -> None:
    """Log every line of the child's stdout or stderr; remember the last JSON object line / the tail."""
    with stream:
        while True:
            raw = stream.readline(MAX_LINE_BYTES)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            ctx.log.info(line, extra={"stream": name})
            if tail is not None:
                tail.append(line)
            if last_json is not None and line.lstrip().startswith("{"):
                try:
                    value = json.loads(line)
                except (ValueError, RecursionError):  # not JSON, or nested beyond the parser
                    continue
                if isinstance(value, dict):
                    last_json[0] = value


class _Group:
    """Which process group the command runs in, and how a stop reaches it.

    When the worker leads its own process group (PID 1 of a container, a local-cloud task), the command
    stays in that group: whatever stops the task by its group reaches the command and its children too,
    SIGKILL included, so nothing outlives the task. A stop is forwarded to the whole group (the worker
    ignores its own echo: only the first stop signal counts). Otherwise (started from a shell or a test)
    the command gets a session of its own, so signals sent to its group never reach the worker's parent.
    """

    def __init__(self) -> None:
        self.shared = os.getpgid(0) == os.getpid()

    def stop(self, proc: subprocess.Popen[bytes], grace: float, stopping: bool) -> None:
        """SIGTERM to the command's group (just the command when the worker is not stopping itself), then
        SIGKILL after `grace` seconds."""
        if not self.shared:
            _signal_group(proc.pid, signal.SIGTERM)
        elif stopping:
            _signal_group(os.getpgid(0), signal.SIGTERM)
        else:
            proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            if self.shared:
                proc.kill()
            else:
                _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()

    def clean_up(self, proc: subprocess.Popen[bytes]) -> None:
        """Kill whatever the command left running in its own session (the task's end does it otherwise)."""
        if not self.shared:
            _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
