"""Boot of a Python SDK worker for Beam's PROCESS environment, in place of Beam's container
boot (`go install github.com/apache/beam/sdks/v2/python/container@v2.77.0` builds it, but it
cannot run here: it makes a venv for every worker with `python -m venv
--system-site-packages`, which sees the base interpreter's packages, not those of the venv the
workers run in, and stops with `Apache Beam is not installed in the runtime environment`; with
RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1 it would pip-install the staged packages into that
shared venv, from every worker at once).

The runner (Flink's job server, Prism) starts `COMMAND --id=W --provision_endpoint=H:P
--logging_endpoint=H:P --artifact_endpoint=H:P --control_endpoint=H:P` for every SDK worker,
where COMMAND is the `environment_config` of the pipeline, e.g.
`environment_config={"command": "/path/boot"}` with /path/boot a two-line wrapper:
`#!/bin/sh` / `exec /venv/bin/python /path/beam_boot.py "$@"`. Like Beam's boot, this asks
the provision service for the pipeline options, fetches the files the submitter staged
(`setup_file`'s sdist `workflow.tar.gz`, `extra_packages`), installs them, and runs the SDK
harness (`apache_beam.runners.worker.sdk_worker_main`) in a child process, whose end it logs
(pid, exit status or signal) for the launcher to name a worker that died.

Unlike Beam's boot it never touches the venv it runs in (several workers share it):
packages are installed with `pip install --no-deps --target` into a folder of their own,
named by the hash of what was staged and shared by every later worker on this machine
(BEAM_BOOT_CACHE, default TMPDIR/beam-boot-<uid>), and put first on sys.path. Their
dependencies must already be in the venv; a `requirements_file` is refused, as pip
--target would install every requirement again beside the venv.

Needs only apache-beam (and pip) in the venv: it imports nothing of the staged packages.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from datetime import datetime
from typing import NoReturn

import grpc
from apache_beam.portability import common_urns
from apache_beam.portability.api import (
    beam_artifact_api_pb2,
    beam_artifact_api_pb2_grpc,
    beam_provision_api_pb2,
    beam_provision_api_pb2_grpc,
    beam_runner_api_pb2,
)
from google.protobuf import json_format

# Staged names the Python SDK's stager gives (apache_beam/runners/portability/stager.py).
WORKFLOW = "workflow.tar.gz"  # setup_file's sdist
EXTRA_PACKAGES = "extra_packages.txt"  # lists the extra_packages files
REQUIREMENTS = "requirements.txt"
PACKAGE_SUFFIXES = (".tar.gz", ".whl", ".zip")


def log(message: str) -> None:
    """To stderr, and to BEAM_BOOT_LOG when set: runners may discard a worker's output (Flink's
    job server does)."""
    now = datetime.now().astimezone().isoformat(timespec="milliseconds")
    line = f"{now} beam_boot[{os.getpid()}]: {message}"
    print(line, file=sys.stderr, flush=True)
    if os.environ.get("BEAM_BOOT_LOG"):
        with open(os.environ["BEAM_BOOT_LOG"], "a") as f:
            f.write(line + "\n")


def fail(message: str) -> NoReturn:
    log(message)
    raise SystemExit(1)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in (
        "id",
        "provision_endpoint",
        "logging_endpoint",
        "artifact_endpoint",
        "control_endpoint",
        "semi_persist_dir",
    ):
        parser.add_argument("--" + name, default="")
    parser.add_argument("--harness_of", type=int, help="run the SDK harness for this boot")
    args, _ = parser.parse_known_args(argv)
    args.id = args.id.strip("'\"")  # Prism passes --id='...' with the quotes
    return args


def provision_info(endpoint: str, worker_id: str):
    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        request = beam_provision_api_pb2.GetProvisionInfoRequest()
        return stub.GetProvisionInfo(request, metadata=[("worker_id", worker_id)]).info


def staged_name(dependency) -> str | None:
    if dependency.role_urn != common_urns.artifact_roles.STAGING_TO.urn:
        return None
    payload = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dependency.role_payload)
    return payload.staged_name


def fetch_staged(endpoint: str, worker_id: str, dependencies, folder: str) -> dict[str, str]:
    """Staged name -> local path of every artifact the submitter staged."""
    os.makedirs(folder, exist_ok=True)
    files = {}
    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)
        for dependency in dependencies:
            name = staged_name(dependency)
            if name is None:
                fail(f"a staged artifact has no name (role {dependency.role_urn})")
            path = os.path.join(folder, os.path.basename(name))
            request = beam_artifact_api_pb2.GetArtifactRequest(artifact=dependency)
            with open(path, "wb") as out:
                for chunk in stub.GetArtifact(request, metadata=[("worker_id", worker_id)]):
                    out.write(chunk.data)
            files[os.path.basename(name)] = path
    return files


def packages_to_install(files: dict[str, str]) -> list[str]:
    if REQUIREMENTS in files:
        fail(
            "the pipeline staged a requirements_file; this boot installs only "
            "setup_file and extra_packages (pip --target would reinstall every requirement "
            "beside the venv). Install the requirements into the workers' venv instead."
        )
    packages = []
    if EXTRA_PACKAGES in files:
        with open(files[EXTRA_PACKAGES]) as f:
            packages += [files[line.strip()] for line in f if line.strip()]
    if WORKFLOW in files:
        packages.append(files[WORKFLOW])
    return packages


def content_digest(path: str) -> bytes:
    """What a package holds, not when it was built: an sdist of the same source gets a new
    mtime in every build, and would otherwise be installed again for every job."""
    digest = hashlib.sha256(os.path.basename(path).encode())
    if path.endswith(".tar.gz"):
        with tarfile.open(path) as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                f = tar.extractfile(member)
                digest.update(member.name.encode() + b"\0" + (f.read() if f else b""))
    elif path.endswith((".whl", ".zip")):
        with zipfile.ZipFile(path) as z:
            for name in sorted(z.namelist()):
                digest.update(name.encode() + b"\0" + z.read(name))
    else:
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.digest()


def install(packages: list[str], cache: str) -> str | None:
    """pip-installs the packages into a folder of their own, once per machine for the same
    content (the workers of a job, and later jobs); returns that folder."""
    if not packages:
        return None
    digest = hashlib.sha256(b"".join(content_digest(p) for p in packages)).hexdigest()
    target = os.path.join(cache, "site-" + digest[:16])
    os.makedirs(cache, exist_ok=True)
    with open(target + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the workers of one stage start together
        if os.path.isdir(target):
            os.utime(target)  # when it was last used
            return target
        start = time.monotonic()
        partial = tempfile.mkdtemp(dir=cache, prefix=".partial-")
        # No build isolation and no index: build with the venv's setuptools, offline.
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            partial,
            *packages,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            fail(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
        os.rename(partial, target)
        names = ", ".join(os.path.basename(p) for p in packages)
        log(f"installed {names} into {target} in {time.monotonic() - start:.1f} s")
    return target


def main(argv=None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.harness_of:
        return harness(args.harness_of)
    info = provision_info(args.provision_endpoint, args.id)
    semi_persistent = args.semi_persist_dir or tempfile.mkdtemp(prefix="beam-sdk-")
    artifact_endpoint = info.artifact_endpoint.url or args.artifact_endpoint
    files = fetch_staged(
        artifact_endpoint, args.id, info.dependencies, os.path.join(semi_persistent, "staged")
    )
    cache = os.environ.get("BEAM_BOOT_CACHE") or os.path.join(
        tempfile.gettempdir(), f"beam-boot-{os.getuid()}"
    )
    site = install(packages_to_install(files), cache)
    log(f"worker {args.id}: packages from {site or 'the venv alone'}")
    if site is not None:
        sys.path.insert(0, site)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [site, os.environ.get("PYTHONPATH")])
        )

    # What sdk_worker_main reads; service descriptors in protobuf's text format.
    os.environ["WORKER_ID"] = args.id
    os.environ["PIPELINE_OPTIONS"] = json_format.MessageToJson(info.pipeline_options)
    os.environ["SEMI_PERSISTENT_DIRECTORY"] = semi_persistent
    os.environ["RUNNER_CAPABILITIES"] = " ".join(info.runner_capabilities)
    for variable, endpoint, fallback in [
        ("CONTROL_API_SERVICE_DESCRIPTOR", info.control_endpoint, args.control_endpoint),
        ("LOGGING_API_SERVICE_DESCRIPTOR", info.logging_endpoint, args.logging_endpoint),
        ("STATUS_API_SERVICE_DESCRIPTOR", info.status_endpoint, ""),
    ]:
        url = endpoint.url or fallback
        if url:
            os.environ[variable] = f"url: {json.dumps(url)}"
    try:
        status = run_harness(args.id)
    finally:
        if not args.semi_persist_dir:
            shutil.rmtree(semi_persistent, ignore_errors=True)
    sys.exit(status if status >= 0 else 128 - status)


def run_harness(worker_id: str) -> int:
    """Runs the SDK harness in a child process, as Beam's boot does, and logs how it ended:
    the runner sees a lost worker only as a broken connection, this process sees its exit
    status (BEAM_BOOT_LOG: `worker ID: the SDK harness (pid P) died: killed by signal 9
    (SIGKILL)`). The runner stops a worker with SIGTERM, passed on to the harness."""
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
        child.send_signal(signum)

    child = subprocess.Popen(harness_command(os.getpid()))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    name = f"worker {worker_id}: the SDK harness (pid {child.pid})"
    log(f"{name} started")
    status = child.wait()
    if stopping:
        log(f"{name} stopped by the runner ({how_ended(status)})")
        return 0
    log(f"{name} {'ended' if status == 0 else 'died'}: {how_ended(status)}")
    return status


def harness_command(boot_pid: int) -> list[str]:
    """The command line of the SDK harness's process that boot `boot_pid` starts."""
    return [sys.executable, os.path.abspath(__file__), f"--harness_of={boot_pid}"]


def how_ended(status: int) -> str:
    """A Popen return code in words: `killed by signal 9 (SIGKILL)` or `exit status 1`."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-status} ({name})"
    return f"exit status {status}"


def harness(boot_pid: int) -> None:
    """The SDK harness's process: killed with its boot (Linux's PR_SET_PDEATHSIG), so a worker
    the runner kills outright (SIGKILL after SIGTERM) leaves no harness behind."""
    import ctypes
    import runpy

    prctl = getattr(ctypes.CDLL(None), "prctl", None)
    if prctl is not None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != boot_pid:  # the boot ended before the line above
        raise SystemExit(1)
    runpy.run_module("apache_beam.runners.worker.sdk_worker_main", run_name="__main__")


if __name__ == "__main__":
    main()
