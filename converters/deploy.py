"""maskipy-deploy: copy a bundle to Pis with scp, check it there, install it or roll back."""

from __future__ import annotations

import argparse
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from maskipy.edge.bundle import Bundle, bundle_files, load_bundle, sha256_file
from maskipy.edge.cli_runner import print_error, run_command
from maskipy.edge.errors import DeployError, MaskipyError

DEFAULT_STATE_DIR = "/var/lib/maskipy"
DEFAULT_CONFIG = "/etc/maskipy/config.ini"
# Remote paths travel through a remote shell: allow only characters that need no quoting there.
SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")
# Installed versions are named vNNNN-<utc time>-<sha256[:12]> (edge/swap.py).
VERSION_SHA = re.compile(r"\bv\d+-\S+-([0-9a-f]{12})\b")
# Seconds per step: a Pi Zero takes a while to import the TFLite runtime and validate.
STEP_TIMEOUT = {"status": 60, "prepare": 60, "copy": 300, "verify": 60, "install": 300, "rollback": 300,
                "cleanup": 60}


@dataclass(frozen=True)
class SshOptions:
    """How to reach the Pis: the user's own ssh config and keys, never a password prompt."""

    port: int | None = None
    identity: str | None = None
    options: tuple[str, ...] = ()
    connect_timeout: int = 10

    def _common(self) -> list[str]:
        # ssh keeps the first value it sees for an option, so the user's -o come first and win.
        args = [arg for option in self.options for arg in ("-o", option)]
        args += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        return args + (["-i", self.identity] if self.identity else [])

    def ssh(self, host: str, command: str) -> list[str]:
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", *self._common(), *port, "--", host, command]

    def scp(self, files: Sequence[Path], host: str, remote_dir: str) -> list[str]:
        port = ["-P", str(self.port)] if self.port else []
        return ["scp", "-B", "-q", *self._common(), *port, "--", *map(str, files),
                f"{_scp_host(host)}:{remote_dir}/"]


def _scp_host(host: str) -> str:
    """scp reads ``host:path``, so an IPv6 literal needs brackets."""
    user, at, name = host.rpartition("@")
    return f"{user}{at}[{name}]" if ":" in name and not name.startswith("[") else host


@dataclass(frozen=True)
class Step:
    """One command run locally against one host; ``name`` is what the summary reports."""

    name: str
    argv: list[str]


@dataclass(frozen=True)
class HostResult:
    """One row of the summary: the model the host ran before and runs now, and how long it took."""

    host: str
    ok: bool
    detail: str
    old_sha: str = "?"
    new_sha: str = "?"
    seconds: float = 0.0
    skipped: bool = False

    @property
    def result(self) -> str:
        return "skipped" if self.skipped else "ok" if self.ok else "FAILED"


@dataclass(frozen=True)
class Plan:
    """What to do on every host: the same remote layout and command, a fresh upload dir each."""

    ssh: SshOptions
    state_dir: str
    config: str
    remote_command: tuple[str, ...]
    bundle: Bundle | None

    def edge(self, *args: str) -> str:
        config = ["--config", self.config] if self.config else []
        words = [*self.remote_command, "bundle", *args, "--state-dir", self.state_dir, *config]
        return shlex.join(words)

    def status(self, host: str) -> Step:
        """``maskipy-edge bundle status`` on the host: which model it runs now."""
        return Step("status", self.ssh.ssh(host, self.edge("status")))

    def steps(self, host: str) -> tuple[list[Step], Step | None]:
        """The steps for ``host`` and the cleanup that runs after them whatever happened."""
        if self.bundle is None:
            return [Step("rollback", self.ssh.ssh(host, self.edge("rollback")))], None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        upload = f"{self.state_dir}/models/incoming/{stamp}-{secrets.token_hex(4)}"
        files = bundle_files(self.bundle.directory)
        sums = " ".join(f"{sha256_file(f)} {f.name}" for f in files)
        # umask 027: the service user reads the upload through the incoming dir's group.
        prepare = f"umask 027 && mkdir -p -- {self.state_dir}/models/incoming && mkdir -- {upload}"
        verify = f"cd -- {upload} && printf '%s  %s\\n' {sums} | sha256sum --check --strict --quiet -"
        steps = [Step("prepare", self.ssh.ssh(host, prepare)),
                 Step("copy", self.ssh.scp(files, host, upload)),
                 Step("verify", self.ssh.ssh(host, verify)),
                 Step("install", self.ssh.ssh(host, self.edge("install", upload)))]
        return steps, Step("cleanup", self.ssh.ssh(host, f"rm -rf -- {upload}"))


_print_lock = threading.Lock()


def say(host: str, text: str) -> None:
    with _print_lock:
        print(f"{host}: {text}", flush=True)


def _reason(completed: subprocess.CompletedProcess[str]) -> str:
    """The line of a failed command worth showing: its error line, else its last words."""
    lines = [line.strip() for line in (completed.stderr + "\n" + completed.stdout).splitlines()
             if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    return (errors or lines or [f"exit status {completed.returncode}"])[-1]


def version_sha(text: str) -> str:
    """The sha256 prefix of the first installed version named in ``text`` ("none" if it names none)."""
    match = VERSION_SHA.search(text)
    return match.group(1) if match else "none"


def current_sha(host: str, plan: Plan) -> str:
    """The sha256 prefix of the model ``host`` runs now, from its ``bundle status``."""
    current = [line for line in run_step(host, plan.status(host), last_line=False).splitlines()
               if line.startswith("current")]
    return version_sha(current[0]) if current else "none"


def run_step(host: str, step: Step, last_line: bool = True) -> str:
    """Run one step; its last stdout line (or all of it) on success, DeployError naming the step otherwise."""
    try:
        completed = subprocess.run(step.argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                   timeout=STEP_TIMEOUT[step.name], check=False)
    except subprocess.TimeoutExpired:
        raise DeployError(f"{step.name}: no answer within {STEP_TIMEOUT[step.name]} s") from None
    if completed.returncode != 0:
        hint = "; check the host name, ssh keys and that the Pi is on" if completed.returncode == 255 else ""
        raise DeployError(f"{step.name}: {_reason(completed)}{hint}")
    if not last_line:
        return completed.stdout
    out = [line for line in completed.stdout.splitlines() if line.strip()]
    return out[-1] if out else "ok"


def deploy_host(plan: Plan, host: str, dry_run: bool) -> HostResult:
    """Every step on one host, stopping at the first failure; the upload is always cleaned up."""
    steps, cleanup = plan.steps(host)
    if dry_run:
        for step in [plan.status(host), *steps, *([cleanup] if cleanup else [])]:
            say(host, f"would {step.name}: {shlex.join(step.argv)}")
        return HostResult(host, True, "dry run: nothing changed")
    started, old = time.monotonic(), "?"
    done: list[str] = []
    try:
        old = current_sha(host, plan)
        for step in steps:
            detail = run_step(host, step)
            done.append(step.name)
            say(host, f"{step.name}: {detail}")
        # The install/rollback line names the now-current version first: "installed vNNNN-...-<sha>; ..."
        return HostResult(host, True, detail, old, version_sha(detail), time.monotonic() - started)
    except DeployError as exc:
        say(host, f"FAILED {exc}")
        return HostResult(host, False, str(exc), old, old, time.monotonic() - started)
    finally:
        if cleanup is not None and done:  # nothing to clean when not even the upload dir was made
            try:
                run_step(host, cleanup)
            except DeployError as exc:
                say(host, f"warning: could not remove the upload ({exc}); the Pi prunes it within a day")


def summary(results: Sequence[HostResult]) -> str:
    """The table: host, old sha, new sha, result, time, detail; then the tally."""
    header = ("host", "old sha", "new sha", "result", "time", "detail")
    cells = [header] + [(r.host, r.old_sha, r.new_sha, r.result, f"{r.seconds:.1f} s", r.detail)
                        for r in results]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    rows = ["  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
            for row in cells]
    ok, skipped = sum(r.ok for r in results), sum(r.skipped for r in results)
    rows.append(f"{len(results)} host(s): {ok} ok, {len(results) - ok - skipped} failed, {skipped} skipped")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskipy-deploy", description=(
        "Copy a model bundle to one or more Pis over ssh, check its sha256 there, and install it "
        "with 'maskipy-edge bundle install' (validated, swapped atomically, service reloaded). "
        "Uses your ssh config and keys; never asks for a password."),
        epilog="examples: maskipy-deploy runs/convert/bundle pi@gate1 pi@gate2\n"
               "          maskipy-deploy --canary pi@gate1 --hosts gates.txt --parallel 8 BUNDLE\n"
               "          maskipy-deploy --rollback pi@gate1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", metavar="BUNDLE HOST",
                        help="the bundle directory, then hosts ([user@]host or ssh config aliases); "
                             "with --rollback only hosts")
    parser.add_argument("--hosts", metavar="FILE", help="more hosts, one per line (# starts a comment)")
    parser.add_argument("--canary", metavar="HOST", help="deploy to HOST first, alone, and stop there "
                        "if it fails")
    parser.add_argument("--rollback", action="store_true", help="make each host's previous model current")
    parser.add_argument("--dry-run", action="store_true", help="print the commands; copy and change nothing")
    parser.add_argument("-o", "--ssh-option", action="append", default=[], metavar="OPTION",
                        help="extra ssh/scp option, e.g. -o ProxyJump=bastion (repeatable)")
    parser.add_argument("-p", "--port", type=int, help="ssh port (default: ssh config or 22)")
    parser.add_argument("-i", "--identity", help="ssh private key (default: ssh config / agent)")
    parser.add_argument("--connect-timeout", type=int, default=10,
                        help="seconds to wait for ssh (default 10)")
    parser.add_argument("--remote-state-dir", default=DEFAULT_STATE_DIR,
                        help=f"the service's state dir on the Pi (default {DEFAULT_STATE_DIR})")
    parser.add_argument("--remote-config", default=DEFAULT_CONFIG,
                        help=f"the edge config on the Pi (default {DEFAULT_CONFIG}; '' for none)")
    parser.add_argument("--remote-command", default="maskipy-edge",
                        help="how to run maskipy-edge on the Pi (default maskipy-edge), e.g. "
                             "'sudo -n -u maskipy /opt/maskipy/bin/maskipy-edge'")
    parser.add_argument("-j", "--jobs", "--parallel", type=int, default=4, metavar="N",
                        help="hosts deployed at once (default 4)")
    return parser


def make_plan(args: argparse.Namespace) -> tuple[Plan, list[str]]:
    """Check the arguments and the local bundle before touching any host."""
    targets = list(args.targets)
    if not args.rollback and not targets:
        raise DeployError("no bundle given; name the bundle directory, then the hosts")
    bundle = None if args.rollback else load_bundle(targets.pop(0))
    if args.hosts:
        targets += read_hosts(args.hosts)
    if args.canary:
        targets = [args.canary, *(host for host in targets if host != args.canary)]
    targets = list(dict.fromkeys(targets))  # a host named twice is deployed once
    if not targets:
        raise DeployError("no host given; name at least one [user@]host after the bundle")
    if args.jobs < 1:
        raise DeployError(f"--parallel {args.jobs}: use 1 or more")
    for host in targets:
        if host.startswith("-") or not host.strip():
            raise DeployError(f"host {host!r}: not a host name; put options before the bundle")
    paths = {"--remote-state-dir": args.remote_state_dir, "--remote-config": args.remote_config}
    for name, path in paths.items():
        if path and not SAFE_PATH.match(path):
            raise DeployError(f"{name} {path!r}: use a path of letters, digits and ._/+- only")
    if not args.dry_run:
        for tool in ("ssh", "scp"):
            if shutil.which(tool) is None:
                raise DeployError(f"{tool} not found; install OpenSSH (apt-get install openssh-client)")
    ssh = SshOptions(args.port, args.identity, tuple(args.ssh_option), args.connect_timeout)
    remote = tuple(shlex.split(args.remote_command))
    if not remote:
        raise DeployError("--remote-command is empty; give the path of maskipy-edge on the Pi")
    return Plan(ssh, args.remote_state_dir, args.remote_config, remote, bundle), targets


def read_hosts(path: str) -> list[str]:
    """Hosts from a file: one per line, blank lines and # comments ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DeployError(f"--hosts {path}: cannot read it ({exc.strerror}); "
                          f"give a file of host names") from None
    hosts = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [host for host in hosts if host]


def deploy_all(plan: Plan, hosts: list[str], *, canary: str | None, jobs: int,
               dry_run: bool) -> list[HostResult]:
    """The canary alone first (the rest skipped if it fails), then the others ``jobs`` at a time."""
    results: list[HostResult] = []
    if canary:
        results.append(deploy_host(plan, canary, dry_run))
        hosts = [host for host in hosts if host != canary]
        if not results[0].ok:
            say(canary, "canary failed; the other hosts are left as they are")
            return results + [HostResult(host, False, "not tried: the canary failed", skipped=True)
                              for host in hosts]
    # A dry run goes one host at a time so its listing reads in order.
    workers = 1 if dry_run else max(1, min(jobs, len(hosts) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results += list(pool.map(lambda host: deploy_host(plan, host, dry_run), hosts))
    return results


def deploy(args: argparse.Namespace) -> int:
    plan, hosts = make_plan(args)
    if plan.bundle is not None:
        print(f"bundle {plan.bundle.directory}: sha256 {plan.bundle.sha256[:12]}, "
              f"labels {','.join(plan.bundle.labels)}")
    if args.dry_run:
        print("dry run: nothing is copied or changed")
    results = deploy_all(plan, hosts, canary=args.canary, jobs=args.jobs, dry_run=args.dry_run)
    print(summary(results))
    failed = [r.host for r in results if not r.ok and not r.skipped]
    if failed or not all(r.ok for r in results):
        return print_error("maskipy-deploy", f"failed on {', '.join(failed)}; a host whose install step "
                           f"failed still runs its old model")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``maskipy-deploy BUNDLE HOST [HOST...]`` or ``maskipy-deploy --rollback HOST [HOST...]``."""
    return run_command("maskipy-deploy", build_parser(), deploy, argv, errors=(MaskipyError, OSError),
                       intermixed=True)


if __name__ == "__main__":
    sys.exit(main())
