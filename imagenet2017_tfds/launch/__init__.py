"""Local Apache Beam engines for one build: Flink's or Spark's job server, Prism or the
DirectRunner, started on loopback with their SDK workers and stopped when the build ends
(`beam_build`); `beam_boot` starts a Python SDK worker for Beam's PROCESS environment."""
