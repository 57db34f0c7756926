"""A fix to Beam 2.62.0's Java runners (Flink, Spark): a lost SDK worker is replaced.

The job servers keep each SDK worker in a cache of the job's environments
(`org.apache.beam.runners.fnexecution.control.DefaultJobBundleFactory`, in
beam-runners-java-fn-execution) for as long as the job uses it, and nothing takes a worker out
of it when its process dies. The bundle it was running fails (`StatusRuntimeException:
CANCELLED: client cancelled`), and so does every retry the engine makes: the retried task gets
the same dead worker from the cache and fails at once (`CANCELLED: call already cancelled`),
until the engine gives up. Beam 2.65.0 and 2.70.0 have the same class.

The fix, applied to that class's own source (the -sources.jar Beam publishes on Maven Central)
and compiled into a folder put before the job server's jars: a worker whose control connection
has closed (what its process's death closes; the runner's own shutdown too) is marked, and a
marked worker is taken out of the cache when a bundle asks for one, so the cache starts a new
worker (a new process through the boot program) for the retried bundle. Each edit must match
the source exactly once, so another Beam release fails loudly here instead of being patched
blindly.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

BEAM_VERSION = "2.62.0"
ARTIFACT = f"org.apache.beam:beam-runners-java-fn-execution:{BEAM_VERSION}:jar:sources"
SOURCE = "org/apache/beam/runners/fnexecution/control/DefaultJobBundleFactory.java"

_GET = "client = currentCache.cache.getUnchecked(executableStage.getEnvironment());"
# (what the source holds, what replaces it, how many times it occurs)
EDITS = [
    # Both ways a bundle takes its worker (with and without load_balance_bundles).
    (_GET, "client = liveClient(currentCache.cache, executableStage.getEnvironment());", 2),
    (
        "  protected static class WrappedSdkHarnessClient {\n",
        """  /**
   * The environment's cached worker, unless its control connection has closed (its process
   * died): then that one leaves the cache and the cache starts another.
   */
  private static WrappedSdkHarnessClient liveClient(
      LoadingCache<Environment, WrappedSdkHarnessClient> cache, Environment environment) {
    WrappedSdkHarnessClient client = cache.getUnchecked(environment);
    if (client.controlClosed) {
      LOG.warn(
          "The SDK worker {} closed its control connection (its process ended); "
              + "starting another for the next bundle.",
          client.workerId);
      cache.asMap().remove(environment, client);
      client = cache.getUnchecked(environment);
    }
    return client;
  }

  protected static class WrappedSdkHarnessClient {
    private volatile boolean controlClosed;
    private final String workerId;
""",
        1,
    ),
    (
        """      this.serverInfo = serverInfo;
      ref();
""",
        """      this.serverInfo = serverInfo;
      InstructionRequestHandler handler = environment.getInstructionRequestHandler();
      this.workerId =
          handler instanceof FnApiControlClient
              ? ((FnApiControlClient) handler).getWorkerId()
              : String.valueOf(handler);
      if (handler instanceof FnApiControlClient) {
        ((FnApiControlClient) handler).onClose(closed -> controlClosed = true);
      }
      ref();
""",
        1,
    ),
]


class PatchError(Exception):
    pass


def patched_source(text: str) -> str:
    for old, new, count in EDITS:
        found = text.count(old)
        if found != count:
            raise PatchError(
                f"{SOURCE} of beam-runners-java-fn-execution {BEAM_VERSION}: expected "
                f"{count} occurrence(s) of {old.strip()[:70]!r}, found {found}; the fix in "
                f"{__file__} must be redone for this Beam release"
            )
        text = text.replace(old, new)
    return text


JAR = "lost-worker-fix.jar"


def build(jars: Path, out: Path, run) -> Path:
    """Fetches the class's source (`mvn dependency:copy`), patches it and compiles it against
    the job server's jars into `out`/JAR (a jar: a job server sending its job to a Flink
    cluster stages every entry of its classpath as one); returns the jar.
    `run(command, what, seconds)` runs a tool."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        run(
            [
                "mvn",
                "-B",
                "-q",
                "dependency:copy",
                f"-Dartifact={ARTIFACT}",
                f"-DoutputDirectory={work}",
            ],
            f"fetching the source of {ARTIFACT} from Maven Central",
            600,
        )
        (jar,) = work.glob("*-sources.jar")
        with zipfile.ZipFile(jar) as archive:
            text = archive.read(SOURCE).decode()
        source = work / "src" / SOURCE
        source.parent.mkdir(parents=True)
        source.write_text(patched_source(text))
        classes = work / "classes"
        run(
            [
                "javac",
                "-nowarn",
                "-proc:none",
                "-encoding",
                "UTF-8",
                "--release",
                "11",
                "-cp",
                f"{jars}/*",
                "-d",
                str(classes),
                str(source),
            ],
            "compiling Beam's DefaultJobBundleFactory with the lost-worker fix",
            600,
        )
        out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out / JAR, "w") as jar:
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
    return out / JAR


if __name__ == "__main__":  # e.g. to look at the edited source
    import sys

    print(patched_source(Path(sys.argv[1]).read_text()))
