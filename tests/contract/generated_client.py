"""Generate the contract's client (OpenAPI Generator, Java) and run ChatApi.md's examples."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

GENERATOR = "openapi-generator-cli"
PACKAGE = "openapi_client"  # ChatApi.md's examples import this name


def generator_args(package: str = PACKAGE) -> tuple[str, ...]:
    return (
        "generate",
        "-g",
        "python",
        f"--additional-properties=library=asyncio,packageName={package}",
    )


CONTRACT_HOST = "http://datamonkey.org/api/v1"


@dataclass(frozen=True)
class GeneratedClient:
    spec: Path  # the document the live server served
    source: Path  # the generator's output (docs/ChatApi.md, openapi_client/, ...)
    site: Path  # where the package is pip-installed (put it on PYTHONPATH)
    workdir: Path


def _missing(what: str) -> None:
    # CI installs both (see README); a laptop may lack Java.
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required for the contract test")
    pytest.skip(f"{what} not available")


def generator_command() -> list[str]:
    if shutil.which("java") is None:
        _missing("a Java runtime (java)")
    venv_bin = str(Path(sys.executable).parent)
    tool = shutil.which(GENERATOR, path=venv_bin) or shutil.which(GENERATOR)
    if tool is None:
        _missing(f"{GENERATOR} (pip install openapi-generator-cli)")
    assert tool is not None
    return [tool]


def generate(spec: Path, out_dir: Path, package: str = PACKAGE) -> Path:
    """Generate the python/asyncio client from `spec` into `out_dir`."""
    command = [*generator_command(), *generator_args(package), "-i", str(spec), "-o", str(out_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return out_dir


def install(client_dir: Path, target: Path) -> Path:
    """pip-install the generated package into `target` (deps come from this venv)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(target),
        str(client_dir),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"installing the generated client failed:\n{result.stdout}\n{result.stderr}")
    return target


def client_env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


# --- The examples of ChatApi.md -------------------------------------------------------------


@dataclass(frozen=True)
class ExampleRun:
    script: str
    returncode: int
    stdout: str
    stderr: str

    def report(self) -> str:
        return (
            f"--- script ---\n{self.script}\n--- exit {self.returncode} ---\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def runnable_example(example: str, host: str, values: Mapping[str, str]) -> str:
    """ChatApi.md's example, made runnable: the top-level `async with` goes into
    `async def main()` run by `asyncio.run`; only the host and the placeholders change."""
    host_line = f'host = "{CONTRACT_HOST}"'
    if example.count(host_line) != 1:
        raise AssertionError(f"the example does not set the host as expected:\n{example}")
    source = example.replace(host_line, f"host = {host!r}")
    for placeholder, value in values.items():
        if placeholder not in source:
            raise AssertionError(f"placeholder {placeholder!r} not in the example:\n{example}")
        source = source.replace(placeholder, value)

    lines = source.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("async with ")), None)
    if start is None:
        raise AssertionError(f"no top-level `async with` in the example:\n{example}")
    body = textwrap.indent("\n".join(lines[start:]), "    ")
    head = "\n".join(lines[:start])
    return f"import asyncio\n{head}\n\nasync def main():\n{body}\n\nasyncio.run(main())\n"


def run_example(script: str, site: Path, workdir: Path, name: str) -> ExampleRun:
    path = workdir / f"example_{name}.py"
    path.write_text(script)
    result = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,
        env=client_env(site),
    )
    return ExampleRun(script, result.returncode, result.stdout, result.stderr)


def placeholder_values(
    operation: str, token: str, conversation_id: str, message: str
) -> dict[str, str]:
    """The example placeholders of ChatApi.md and what replaces them."""
    values = {"'user_token_example'": repr(token)}
    if operation != "create_conversation" and operation != "list_user_conversations":
        values["'conversation_id_example'"] = repr(conversation_id)
    if operation == "send_conversation_message":
        values["openapi_client.SendConversationMessageRequest()"] = (
            f"openapi_client.SendConversationMessageRequest(message={message!r})"
        )
    return values


def success_line(operation: str) -> str:
    return f"The response of ChatApi->{operation}:"


def failure_line(operation: str) -> str:
    return f"Exception when calling ChatApi->{operation}"


def printed_repr_field(output: str, name: str) -> str | None:
    match = re.search(rf"\b{name}='([^']*)'", output)
    return match.group(1) if match else None
