# The two commands of the README: `make demo` and `make test`. Each sets up its own venv,
# shared between clones and reused while requirements.txt is unchanged (TensorFlow is 2 GB).
PYTHON ?= python3
REQ_HASH := $(shell $(PYTHON) -c "import hashlib,sys;print(hashlib.sha256(open('requirements.txt','rb').read()+sys.version.encode()).hexdigest()[:16])")
VENV ?= $(HOME)/.cache/imagenet2017-tfds/venv-$(REQ_HASH)
STAMP := $(VENV)/.installed
RUN := PYTHONPATH=$(CURDIR) PATH=$(VENV)/bin:$$PATH

# The oldest TFDS the package supports (setup.py's lower bound), tested beside the pinned one:
# TFDS is pure Python, so it goes into its own folder, ahead of the venv's on PYTHONPATH. The
# engines (Flink, Spark, Prism) run TFDS the same way as the DirectRunner: not repeated there.
TFDS_OLDEST := 4.9.7
OLDEST := $(dir $(VENV))tensorflow-datasets-$(TFDS_OLDEST)

.PHONY: venv demo test test-quick test-oldest lint format bench beam-build cluster-build

venv: $(STAMP)

# No prerequisite: the hash in the venv's name already tracks requirements.txt.
$(STAMP):
	mkdir -p $(dir $(VENV))
	flock $(VENV).lock sh -c '[ -f $(STAMP) ] || { \
	  $(PYTHON) -m venv $(VENV) && \
	  $(VENV)/bin/pip install --quiet --upgrade pip && \
	  $(VENV)/bin/pip install --quiet -r requirements.txt && touch $(STAMP); }'

demo: venv
	$(RUN) python examples/demo.py

test: venv
	$(RUN) ruff check . && $(RUN) ruff format --check .
	$(RUN) python -m pytest -q tests bench/test_harness.py bench/test_bench.py bench/test_beam_data_loss.py imagenet2017/imagenet2017_dataset_builder_test.py

# The suite without the tests that start Flink, Spark (Java, Maven), Prism (Go) or the storage
# servers (root, Go): a few minutes.
test-quick: venv
	$(RUN) ruff check . && $(RUN) ruff format --check .
	$(RUN) python -m pytest -q -m "not engines and not stores" tests bench/test_harness.py bench/test_bench.py bench/test_beam_data_loss.py imagenet2017/imagenet2017_dataset_builder_test.py

# The suite on the oldest TFDS setup.py allows: what TFDS's version can change. Not the
# engine and cluster tests (the engines run TFDS's Beam writer as the DirectRunner does), and of
# the store tests only those through TFDS's own write path into a store (tfds_write).
test-oldest: venv
	[ -d $(OLDEST) ] || { rm -rf $(OLDEST).tmp && $(VENV)/bin/pip install --quiet --no-deps \
	  --target $(OLDEST).tmp tensorflow-datasets==$(TFDS_OLDEST) && mv $(OLDEST).tmp $(OLDEST); }
	$(RUN) PYTHONPATH=$(CURDIR):$(OLDEST) python -m pytest -q -m "not engines and (not stores or tfds_write)" tests bench/test_harness.py bench/test_bench.py bench/test_beam_data_loss.py imagenet2017/imagenet2017_dataset_builder_test.py

lint: venv
	$(RUN) ruff check . && $(RUN) ruff format --check .

format: venv
	$(RUN) ruff format . && $(RUN) ruff check --fix .

# The four benchmarks docs/performance.md reports (stores.py and cluster.py need root); each
# writes its JSON to bench/out/.
bench: venv
	$(RUN) python bench/bench.py
	$(RUN) python bench/engine.py
	$(RUN) python bench/stores.py
	$(RUN) python bench/report.py
	$(RUN) python bench/cluster.py

# One build through Apache Beam on a local engine (`imagenet2017-tfds beam-build`): RUNNER=flink or
# spark (Beam's Flink or Spark job server from Maven Central, cached), prism (built with
# `go install`, cached) or direct; WORKERS SDK worker processes. The environment passes through (IMAGENET2017_CHECKSUMS).
RUNNER ?= flink
CONFIG ?= clsloc
WORKERS ?= 2
beam-build: venv
	@[ -n "$(MANUAL_DIR)" ] && [ -n "$(DATA_DIR)" ] || { echo "make beam-build needs" \
	  "MANUAL_DIR=<the downloaded archives> DATA_DIR=<where to write>"; exit 2; }
	$(RUN) python -m imagenet2017_tfds.tools.cli beam-build --runner $(RUNNER) --config '$(CONFIG)' \
	  --manual_dir $(MANUAL_DIR) --data_dir $(DATA_DIR) --workers $(WORKERS) $(BEAM_BUILD_ARGS)

# One build on a simulated cluster (root, Java, Go): a Flink JobManager and two TaskManager
# hosts, the launcher on a fourth, the archives and the dataset moving only through a fake GCS
# (`python -m imagenet2017_tfds.launch.cluster_build`, docs/beam.md). KILL_HOST_AFTER=S loses
# worker-2 S seconds after the job was submitted. The dataset is downloaded into OUT.
cluster-build: venv
	@[ -n "$(MANUAL_DIR)" ] && [ -n "$(OUT)" ] || { echo "make cluster-build needs" \
	  "MANUAL_DIR=<a local folder of the archives> OUT=<a local folder to download into>"; exit 2; }
	$(RUN) python -m imagenet2017_tfds.launch.cluster_build --runner $(RUNNER) --config '$(CONFIG)' \
	  --manual_dir $(MANUAL_DIR) --out $(OUT) --workers $(WORKERS) \
	  $(if $(KILL_HOST_AFTER),--kill_host_after $(KILL_HOST_AFTER)) $(CLUSTER_BUILD_ARGS)
