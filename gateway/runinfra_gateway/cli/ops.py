"""Operator commands of the ``runinfra`` console script: deployments, models, chat, speak, transcribe, doctor.

Inference commands go through our own SDK (``runinfra``) with an API key;
deployment commands go to the admin API (``/admin/v1``) with the admin token.
Output is a human table by default and JSON with ``--json``; progress and
errors go to stderr so stdout stays clean for pipes. Exit codes:

  0  success
  1  the gateway refused or failed the request (or ``doctor`` found a problem)
  2  bad usage (unknown flag, missing argument, unreadable file)
  3  authentication or permission failure (wrong API key or admin token)
  4  the gateway could not be reached (connection refused, timeout)
  130 interrupted
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runinfra import (
    AuthenticationError,
    PermissionDeniedError,
    RunInfra,
    RunInfraConnectionError,
    RunInfraError,
    RunInfraTimeoutError,
)

from runinfra_gateway.cli.admin_client import AdminClient, AdminError
from runinfra_gateway.cli.commands import admin_client
from runinfra_gateway.cli.table import print_table

__all__ = ["EXIT_AUTH", "EXIT_FAILED", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "register"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130

DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
EXIT_CODES_HELP = (
    "exit codes: 0 success, 1 the gateway refused or failed the request, 2 bad usage, "
    "3 wrong API key or admin token, 4 gateway unreachable"
)
AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".webm": "audio/webm",
    ".m4a": "audio/mp4",
}
MAX_AUDIO_UPLOAD_BYTES = 25 * 1024 * 1024


class CommandError(Exception):
    """A failure to report in one line, with the exit code it maps to."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint


# -- connection settings --------------------------------------------------------------------


def api_base_url(raw: str | None) -> str:
    """The ``…/v1`` base URL from a flag or ``RUNINFRA_BASE_URL`` (a bare origin gets ``/v1``)."""
    value = (raw or os.environ.get("RUNINFRA_BASE_URL") or DEFAULT_BASE_URL).strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise CommandError(f"--base-url must start with http:// or https://, got {value!r}", EXIT_USAGE)
    return value if value.endswith("/v1") else f"{value}/v1"


def origin_of(base_url: str) -> str:
    return base_url[: -len("/v1")]


def _api_key(args: argparse.Namespace) -> str:
    key = (args.api_key or os.environ.get("RUNINFRA_API_KEY") or "").strip()
    if not key:
        raise CommandError(
            "no API key: pass --api-key or set RUNINFRA_API_KEY",
            EXIT_USAGE,
            hint="create one with `runinfra keys create --scope workspace` or in the dashboard (Settings > API Keys)",
        )
    return key


def _client(args: argparse.Namespace, *, timeout: float = 120.0) -> RunInfra:
    pipeline = (args.pipeline or os.environ.get("RUNINFRA_PIPELINE_ID") or "").strip() or None
    try:
        return RunInfra(
            api_key=_api_key(args),
            base_url=api_base_url(args.base_url),
            pipeline_id=pipeline,
            timeout_seconds=timeout,
            max_retries=0,
        )
    except RunInfraError as exc:
        raise CommandError(exc.message, EXIT_USAGE) from None


@contextmanager
def sdk_errors() -> Iterator[None]:
    """Translate SDK exceptions into one-line messages and exit codes."""
    try:
        yield
    except AuthenticationError as exc:
        raise CommandError(f"the API key was refused: {exc.message}", EXIT_AUTH,
                           hint="check RUNINFRA_API_KEY; a revoked key stays refused") from None
    except PermissionDeniedError as exc:
        raise CommandError(f"{exc.type}: {exc.message}", EXIT_AUTH) from None
    except (RunInfraConnectionError, RunInfraTimeoutError) as exc:
        raise CommandError(f"cannot reach the gateway: {exc.message}", EXIT_UNREACHABLE,
                           hint="is `runinfra serve` running, and is --base-url right?") from None
    except RunInfraError as exc:
        suffix = f" (request_id={exc.request_id})" if exc.request_id else ""
        exit_code = EXIT_USAGE if exc.type == "invalid_request_options" else EXIT_FAILED
        raise CommandError(f"{exc.type}: {exc.message}{suffix}", exit_code) from None


# -- admin API over HTTP (the core's client) -------------------------------------------------


def admin_call(
    args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None, *,
    timeout: float = 30.0, timeout_hint: str | None = None,
) -> Any:
    """One admin API request; returns the decoded JSON body or raises :class:`CommandError`."""
    try:
        return admin_client(args, timeout=timeout).request(method, path, body)
    except AdminError as exc:
        if exc.timed_out:
            raise CommandError(str(exc), EXIT_UNREACHABLE, hint=timeout_hint) from None
        if exc.status is None:
            exit_code = EXIT_USAGE if "admin token" in str(exc) or "--base-url" in str(exc) else EXIT_UNREACHABLE
            hint = None if exit_code == EXIT_USAGE else "is `runinfra serve` running, and is --base-url right?"
            raise CommandError(str(exc), exit_code, hint=hint) from None
        if exc.status == 401:
            raise CommandError(f"the admin token was refused: {exc}", EXIT_AUTH,
                               hint="use the token `runinfra serve` printed on first start, "
                               "or RUNINFRA_ADMIN_TOKEN") from None
        kind = f"{exc.type}: " if exc.type else ""
        raise CommandError(f"{kind}{exc}", EXIT_AUTH if exc.status == 403 else EXIT_FAILED) from None


# -- output -------------------------------------------------------------------------------


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def say(message: str) -> None:
    """Progress for people, on stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@contextmanager
def progress(message: str) -> Iterator[None]:
    """Print ``message…`` on stderr and, while the work runs, elapsed seconds (animated on a terminal)."""
    started = time.monotonic()
    stop = threading.Event()
    tty = sys.stderr.isatty()
    sys.stderr.write(f"{message}…")
    sys.stderr.flush()

    def tick() -> None:
        while not stop.wait(1.0):
            sys.stderr.write(f"\r{message}… {time.monotonic() - started:.0f}s" if tty else ".")
            sys.stderr.flush()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    outcome = "failed after"
    try:
        yield
        outcome = "done in"
    finally:
        stop.set()
        ticker.join()
        lead = f"\r{message}… " if tty else " "
        sys.stderr.write(f"{lead}{outcome} {time.monotonic() - started:.1f}s\n")
        sys.stderr.flush()


# -- deployments -------------------------------------------------------------------------------


def cmd_deployments_list(args: argparse.Namespace) -> int:
    deployments = admin_call(args, "GET", "/deployments").get("data", [])
    if args.json:
        print_json(deployments)
        return EXIT_OK
    rows = [
        [
            d.get("id"),
            "verified active" if d.get("status") == "active" else d.get("status"),
            d.get("backend"),
            ", ".join(d.get("verified_operations") or []),
            d.get("last_error") or "",
        ]
        for d in deployments
    ]
    print_table(rows, ["id", "status", "backend", "verified operations", "last error"])
    return EXIT_OK


def cmd_deployments_verify(args: argparse.Namespace) -> int:
    with progress(f"verifying {args.deployment_id}"):
        # Verification loads the engine and runs a real call per operation: minutes on a cold, busy machine.
        result = admin_call(
            args, "POST", f"/deployments/{AdminClient.quote(args.deployment_id)}/verify", timeout=args.timeout,
            timeout_hint=f"verification of {args.deployment_id!r} may still be running on the gateway: see "
            "`runinfra deployments list`, or wait longer with --timeout",
        )
    if args.json:
        print_json(result)
    else:
        status = result.get("status")
        if status == "active":
            print(f"{result.get('id')}: verified active ({', '.join(result.get('verified_operations') or [])})")
        else:
            print(f"{result.get('id')}: {status}: {result.get('last_error') or 'no message'}")
    return EXIT_OK if result.get("status") == "active" else EXIT_FAILED


# -- inference commands ------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    client = _client(args)
    with sdk_errors():
        models = client.models.list()
    data = list(models.get("data", []))
    if args.json:
        print_json(data)
        return EXIT_OK
    rows = [[m.get("id"), ", ".join(m.get("operations") or []), ", ".join(m.get("voices") or [])] for m in data]
    print_table(rows, ["model", "operations", "voices"])
    return EXIT_OK


def _read_prompt(args: argparse.Namespace) -> str:
    prompt = args.prompt
    if prompt is None or prompt == "-":
        if sys.stdin.isatty():
            raise CommandError("give a prompt, or pipe one on stdin", EXIT_USAGE)
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise CommandError("the prompt is empty", EXIT_USAGE)
    return str(prompt)


def cmd_chat(args: argparse.Namespace) -> int:
    client = _client(args)
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": _read_prompt(args)})
    options: dict[str, Any] = {}
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.json or args.no_stream:
        with sdk_errors():
            completion = client.chat.completions.create(model=args.model, messages=messages, **options)
        if args.json:
            print_json(completion)
        else:
            print(completion["choices"][0]["message"]["content"])
        return EXIT_OK
    with sdk_errors():
        stream = client.chat.completions.create(model=args.model, messages=messages, stream=True, **options)
        with stream:
            for chunk in stream:
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        sys.stdout.write(text)
                        sys.stdout.flush()
    sys.stdout.write("\n")
    if args.verbose:
        say(f"request_id={stream.request_id}")
    return EXIT_OK


def cmd_speak(args: argparse.Namespace) -> int:
    client = _client(args)
    output = Path(args.output)
    response_format = args.format or (output.suffix.lstrip(".").lower() or "wav")
    options: dict[str, Any] = {"response_format": response_format}
    if args.voice:
        options["voice"] = args.voice
    text = args.text
    if text == "-":
        text = sys.stdin.read()
    with progress(f"synthesising {len(text)} characters with {args.model}"), sdk_errors():
        audio = client.audio.speech.create(model=args.model, input=text, **options)
    try:
        output.write_bytes(audio.content)
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror or exc}", EXIT_USAGE) from None
    if args.json:
        print_json({"path": str(output), "bytes": len(audio.content), "content_type": audio.content_type,
                    "request_id": audio.request_id})
    else:
        print(f"wrote {output} ({len(audio.content):,} bytes, {audio.content_type})")
    return EXIT_OK


def cmd_transcribe(args: argparse.Namespace) -> int:
    client = _client(args)
    path = Path(args.file)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_AUDIO_UPLOAD_BYTES:
                raise CommandError(f"{path} is {size:,} bytes; the limit is {MAX_AUDIO_UPLOAD_BYTES:,}", EXIT_USAGE)
            audio = handle.read(MAX_AUDIO_UPLOAD_BYTES + 1)  # bounded too: a device or a pipe reports no size
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if len(audio) > MAX_AUDIO_UPLOAD_BYTES:
        raise CommandError(f"{path} is over the limit of {MAX_AUDIO_UPLOAD_BYTES:,} bytes", EXIT_USAGE)
    if not audio:
        raise CommandError(f"{path} is empty", EXIT_USAGE)
    options: dict[str, Any] = {"response_format": "verbose_json" if args.json else "json"}
    if args.language:
        options["language"] = args.language
    content_type = AUDIO_TYPES.get(path.suffix.lower())
    if content_type:
        options["content_type"] = content_type
    with progress(f"transcribing {path.name} ({len(audio):,} bytes) with {args.model}"), sdk_errors():
        result = client.audio.transcriptions.create(model=args.model, file=audio, filename=path.name, **options)
    if args.json:
        print_json(result)
    else:
        text = str(result.get("text", "")).strip()
        if args.output:
            Path(args.output).write_text(text + "\n", encoding="utf-8")
            say(f"wrote {args.output}")
        else:
            print(text)
    return EXIT_OK


# -- doctor -----------------------------------------------------------------------------------


class _Checks:
    def __init__(self, as_json: bool) -> None:
        self.results: list[dict[str, Any]] = []
        self.as_json = as_json

    def add(self, name: str, ok: bool, detail: str, fix: str | None = None) -> bool:
        self.results.append({"check": name, "ok": ok, "detail": detail, "fix": fix})
        if not self.as_json:
            mark = "ok  " if ok else "FAIL"
            print(f"[{mark}] {name}: {detail}")
            if fix and not ok:
                print(f"       fix: {fix}")
        return ok


def _get_json(url: str, timeout: float = 10.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"null")
    except (ValueError, RecursionError):  # not the gateway's JSON (another server at that URL): no body to show
        return status, None


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = _Checks(args.json)
    try:
        base = api_base_url(args.base_url)
    except CommandError as exc:
        checks.add("base URL", False, exc.message, "use the gateway's URL, e.g. http://127.0.0.1:8080/v1")
        return _doctor_done(checks)
    origin = origin_of(base)
    try:
        status, health = _get_json(f"{origin}/healthz")
        gateway_answer = health == {"status": "ok"}
        detail = f"GET {origin}/healthz answered {status}"
        if status == 200 and not gateway_answer:
            detail += ", not as a runinfra gateway does"
        reachable = checks.add("gateway reachable", status == 200 and gateway_answer, detail,
                               "check --base-url / RUNINFRA_BASE_URL")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reachable = checks.add("gateway reachable", False, f"{origin}: {getattr(exc, 'reason', exc)}",
                               "start it with `runinfra serve`, or fix --base-url / RUNINFRA_BASE_URL")
    if not reachable:
        return _doctor_done(checks)
    status, _ = _get_json(f"{origin}/readyz")
    checks.add("deployments verified", status == 200,
               "every configured deployment is verified" if status == 200 else f"/readyz answered {status}",
               "run `runinfra deployments list` to see which one failed, then `runinfra deployments verify ID`")
    key = (args.api_key or os.environ.get("RUNINFRA_API_KEY") or "").strip()
    if not key:
        checks.add("API key", False, "RUNINFRA_API_KEY is not set",
                   "create a key (`runinfra keys create --scope workspace`, or dashboard Settings > API Keys) "
                   "and export it as RUNINFRA_API_KEY")
    else:
        try:
            client = _client(args, timeout=30)
            models = client.models.list().get("data", [])
        except CommandError as exc:
            checks.add("API key", False, exc.message, exc.hint)
        except AuthenticationError as exc:
            checks.add("API key", False, f"refused: {exc.message}",
                       "the key is unknown or revoked: create a new one and update RUNINFRA_API_KEY")
        except PermissionDeniedError as exc:
            checks.add("API key scope", False, f"{exc.type}: {exc.message}",
                       "a pipeline key only works with its pipeline: set --pipeline / RUNINFRA_PIPELINE_ID to it")
        except RunInfraError as exc:
            checks.add("API key", False, f"{exc.type}: {exc.message}")
        else:
            pipeline = args.pipeline or os.environ.get("RUNINFRA_PIPELINE_ID")
            scope = f"pipeline {pipeline}" if pipeline else "workspace (model field)"
            checks.add("API key", True, f"accepted; scope: {scope}")
            operations = sorted({op for m in models for op in (m.get("operations") or [])})
            checks.add("verified operations", bool(operations),
                       f"{len(models)} model(s): " + ("; ".join(
                           f"{m.get('id')} [{', '.join(m.get('operations') or [])}]" for m in models) or "none"),
                       "no verified deployment is visible to this key: check `runinfra deployments list`")
    token = (args.admin_token or os.environ.get("RUNINFRA_ADMIN_TOKEN") or "").strip()
    if token:
        try:
            admin_call(args, "GET", "/deployments")
            checks.add("admin token", True, "accepted by /admin/v1")
        except CommandError as exc:
            checks.add("admin token", False, exc.message, exc.hint)
    return _doctor_done(checks)


def _doctor_done(checks: _Checks) -> int:
    ok = all(r["ok"] for r in checks.results)
    if checks.as_json:
        print_json({"ok": ok, "checks": checks.results})
    elif ok:
        print("all checks passed")
    return EXIT_OK if ok else EXIT_FAILED


# -- registration -----------------------------------------------------------------------------


def _key_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("API key")
    group.add_argument("--api-key", metavar="KEY", help="API key (default: $RUNINFRA_API_KEY; prefer the env var)")
    group.add_argument("--pipeline", metavar="ID",
                       help="pipeline id, for a pipeline-scoped key (default: $RUNINFRA_PIPELINE_ID)")


def _inference_parent() -> argparse.ArgumentParser:
    """``--base-url``, ``--api-key``, ``--pipeline``, ``--json``: the options of the commands that call /v1."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("gateway")
    group.add_argument("--base-url", default=None,
                       help=f"gateway URL (default: $RUNINFRA_BASE_URL or {DEFAULT_BASE_URL})")
    group.add_argument("--json", action="store_true", help="print JSON for scripts")
    _key_options(parent)
    parent.set_defaults(admin_token=None)
    return parent


def _command(subparsers: Any, name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
             description: str, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=description, epilog=EXIT_CODES_HELP, parents=parents
    )
    parser.set_defaults(handler=run_guarded(handler))
    return parser


def run_guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command; a :class:`CommandError` becomes a one-line message on stderr and its exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except CommandError as exc:
            say(f"runinfra: error: {exc.message}")
            if exc.hint:
                say(f"hint: {exc.hint}")
            return exc.exit_code
        except KeyboardInterrupt:
            say("interrupted")
            return EXIT_INTERRUPTED

    return run


def register(subparsers: Any, admin_parent: argparse.ArgumentParser) -> None:
    """Add ``deployments``, ``models``, ``chat``, ``speak``, ``transcribe`` and ``doctor`` (the core's CLI hook).

    ``admin_parent`` carries ``--base-url``, ``--admin-token`` and ``--json``.
    Each parser sets ``handler`` (``args -> exit code``) as its default.
    """
    inference = _inference_parent()
    deployments = subparsers.add_parser(
        "deployments", help="list deployments or re-run their verification (admin token)",
        description="Deployments known to the gateway, from the admin API.", epilog=EXIT_CODES_HELP,
    )
    deployment_commands = deployments.add_subparsers(dest="deployments_command", metavar="COMMAND", required=True)
    _command(deployment_commands, "list", cmd_deployments_list, "list deployments with status",
             "List deployments: status (verifying, verified active, failed), verified operations, "
             "and the failing probe's message.", [admin_parent])
    verify = _command(deployment_commands, "verify", cmd_deployments_verify, "re-run a deployment's probes",
                      "Re-run every verification probe of one deployment; exits 1 if it does not pass.",
                      [admin_parent])
    verify.add_argument("deployment_id", metavar="ID", help="deployment id")
    verify.add_argument("--timeout", type=_positive_int, default=300, metavar="SECONDS",
                        help="how long to wait for the verification to finish (default: 300)")

    _command(subparsers, "models", cmd_models, "list the models (verified deployments) your key can call",
             "List the models visible to the API key, with their verified operations and voices.", [inference])

    chat = _command(subparsers, "chat", cmd_chat, "chat with a model, streaming tokens to the terminal",
                    "Send one prompt and stream the answer token by token.", [inference])
    chat.add_argument("model", help="model (deployment) id")
    chat.add_argument("prompt", nargs="?", help="the prompt; omit or '-' to read stdin")
    chat.add_argument("--system", help="system message")
    chat.add_argument("--max-tokens", type=_positive_int, metavar="N", help="maximum tokens to generate")
    chat.add_argument("--temperature", type=float, metavar="T", help="sampling temperature")
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    chat.add_argument("-v", "--verbose", action="store_true", help="print the request id on stderr")

    speak = _command(subparsers, "speak", cmd_speak, "text to speech: write an audio file",
                     "Synthesise speech and write it to a file (format from --format or the file suffix).",
                     [inference])
    speak.add_argument("model", help="text-to-speech model id")
    speak.add_argument("text", help="text to speak; '-' reads stdin")
    speak.add_argument("-o", "--output", required=True, metavar="FILE", help="audio file to write")
    speak.add_argument("--voice", help="voice name (see `runinfra models`)")
    speak.add_argument("--format", choices=["wav", "mp3", "opus", "flac", "pcm", "aac"], help="audio format")

    transcribe = _command(subparsers, "transcribe", cmd_transcribe, "speech to text from an audio file",
                          "Transcribe an audio file; prints the text (or verbose JSON with --json).", [inference])
    transcribe.add_argument("model", help="speech-to-text model id")
    transcribe.add_argument("file", help="audio file (wav, mp3, flac, ogg, webm, m4a)")
    transcribe.add_argument("--language", help="language code, e.g. en")
    transcribe.add_argument("-o", "--output", metavar="FILE", help="write the text to FILE instead of stdout")

    doctor = _command(subparsers, "doctor", cmd_doctor, "check base URL, key, scope and verified operations",
                      "Check that the gateway answers, the deployments are verified, the API key is accepted "
                      "and what it can call; prints a fix for each failing check. The admin token is checked "
                      "too when one is given.", [admin_parent])
    _key_options(doctor)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
