"""The benchmark's own harness: a failed run fails the benchmark, named by its last line.
(The benchmark's programs are run whole by bench/test_bench.py.)"""

import sys

from bench import bench
from imagenet2017_tfds.launch import beam_boot


def test_a_failed_run_is_reported_with_its_last_line():
    try:
        bench.run(
            [
                sys.executable,
                "-c",
                "import sys; print('first', file=sys.stderr); sys.exit('the reason')",
            ]
        )
    except bench.RunFailed as e:
        assert e.last_line == "the reason" and "first" in str(e)
    else:
        raise AssertionError("a failing command was not reported")


def test_a_failed_beam_run_fails_the_benchmark_at_once(tmp_path):
    # Beam runs once were retried and their failures only counted (the DirectRunner lost
    # examples now and then); since compat.beam_fixes, a failed run fails like any other.
    attempts = tmp_path / "attempts"
    command = [
        sys.executable,
        "-c",
        f"open({str(attempts)!r}, 'a').write('x'); "
        "raise SystemExit('train: 10000 examples written, 10583 planned')",
    ]
    work, corpus = tmp_path / "work", tmp_path / "work" / "corpus"
    corpus.mkdir(parents=True)
    try:
        bench.measure(
            "ours: Beam 2 workers", lambda i: (command, False), 3, None, work, corpus, 1.0
        )
    except bench.RunFailed as e:
        assert e.last_line == "train: 10000 examples written, 10583 planned"
    else:
        raise AssertionError("a failed Beam run did not fail the benchmark")
    assert attempts.read_text() == "x"  # no second attempt


def test_a_beam_workers_boot_and_harness_are_told_apart():
    # A runner starts the boot (through a wrapper script), the boot starts the harness: one
    # SDK worker is two processes, counted apart so "SDK workers" counts workers.
    boot = [sys.executable, beam_boot.__file__, "--id=1-1", "--provision_endpoint=localhost:1"]
    assert bench.process_kind(boot) == "SDK worker boots"
    assert bench.process_kind(beam_boot.harness_command(1234)) == "SDK workers"
    assert bench.process_kind(["java", "-jar", "job-server.jar"]) == "JVM"


def test_flinks_marginal_rate_is_taken_between_the_sizes():
    builds = [
        {"workers": 1, "corpus_mb": 500, "seconds": 20.0},
        {"workers": 2, "corpus_mb": 500, "seconds": 18.0},
        {"workers": 1, "corpus_mb": 2000, "seconds": 50.0},
        {"workers": 2, "corpus_mb": 2000, "seconds": 38.0},
    ]
    m = bench.flink_marginal(builds)
    assert m["mb_per_s_1_worker"] == 1500 / 30 and m["mb_per_s_2_workers"] == 1500 / 20
    assert m["speedup_2_vs_1"] == 1.5
    # A larger corpus that took no longer gives no rate, not a negative one.
    assert bench.flink_marginal([dict(b, seconds=10.0) for b in builds]) is None


def test_a_row_whose_name_holds_a_comma_can_be_skipped():
    args = bench.parse_args(["--skip", bench.FIRST_AF, "--skip", bench.GZIP])
    assert "," in bench.FIRST_AF and args.skip == {bench.FIRST_AF, bench.GZIP}
    assert bench.parse_args(["--skip-rows"]).skip == set(bench.MEASUREMENTS)
    try:
        bench.parse_args(["--skip", "ours: first build, annotations"])
    except SystemExit as e:
        assert e.code == 2  # a name that is no row is refused, not ignored
    else:
        raise AssertionError("an unknown row name was accepted")
