# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv/ at the repo root and install squish_tf into it (editable).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job on the built-in offline dataset (shapes10, 64 px): saved_models/demo/.
# --min_train_steps=0 keeps the demo's short budgets (6 ancestor epochs, 375 steps);
# `squish` alone trains at least 12000 steps (job.budget.scale_budgets).
# --cost=latency --targets=1.5x,3x --generations=4: the demo aims at milliseconds and gives a
# family of two SquishedNets from one lineage, 1.5x and 3x over the ancestor (docs/family.md);
# 3x is usually met by the third generation and the run stops there: the fourth spreads the
# steps thinner (no generation asked for a cut it cannot recover from) and is a spare.
# --baselines=none: the width ladder would more than double the demo's time (each rung trains
# as long as a member); the report says so, and --baselines=ladder on the same command trains it.
# --final_init=inherit: each member's final stage is the distilled fine-tune of its inherited
# weights only; `best` (the default) also trains each member from scratch for the whole run's
# epochs, which takes the demo past 10 minutes on a 2-core machine.
demo: $(STAMP)
	$(BIN)/squish --min_train_steps=0 --cost=latency --targets=1.5x,3x --generations=4 --baselines=none --final_init=inherit

# One pytest worker per core (pytest-xdist); tests/conftest.py keeps each module in one worker.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto tests

# Benchmark scripts: each prints measured figures (not part of `make test`).
# evolution_vs_width.py trains everything for three seeds: about an hour on 2 cores.
# data_scale.py writes a 13,000-image JPEG folder to /tmp/data_scale (kept for the
# next time; --cleanup=all deletes it) and runs the main job on 2,600 of them.
# budgets.py runs the main job with the command's defaults on scikit-learn's digits (~50 min).
# device_aim.py evolves for tflm and for cpu_fp32 (four demo runs, two seeds): about an hour.
bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/synthesis_overhead.py
	$(BIN)/python benchmarks/export_sizes.py
	$(BIN)/python benchmarks/speed_pairs.py
	$(BIN)/python benchmarks/channel_multiple.py
	$(BIN)/python benchmarks/evolution_vs_width.py --seeds=0,1,2
	$(BIN)/python benchmarks/speed_target.py --seeds=0
	$(BIN)/python benchmarks/data_scale.py
	$(BIN)/pip install --quiet scikit-learn==1.9.1  # the digits only; not a squish_tf dependency
	$(BIN)/python benchmarks/budgets.py

clean:
	rm -rf $(VENV) .compat-venv .mediapipe-venv build *.egg-info .pytest_cache

# The Jetson bundle in an older TensorFlow (2.12, the oldest for Python 3.11;
# the device runs 2.7). Not part of `make test`: it downloads TensorFlow into
# its own venv. A bundle and a Jetson pack are made with the main .venv, then checked in
# .compat-venv (the pack measured into a device profile), which the main .venv reads back.
COMPAT_VENV := .compat-venv
COMPAT_STAMP := $(COMPAT_VENV)/.installed-stamp
COMPAT_DIR := build/compat

.PHONY: compat

$(COMPAT_STAMP):
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install --quiet --upgrade pip
	$(COMPAT_VENV)/bin/pip install --quiet tensorflow-cpu==2.12.1 numpy==1.23.5
	touch $@

compat: $(STAMP) $(COMPAT_STAMP)
	$(BIN)/python tests/compat/make_jetson_bundle.py --work_dir=$(COMPAT_DIR)
	$(COMPAT_VENV)/bin/python tests/compat/check_jetson_bundle.py $(COMPAT_DIR)
	$(BIN)/python tests/compat/read_jetson_profile.py $(COMPAT_DIR)

# MediaPipe Tasks' ImageClassifier on every exported .tflite (tests/test_export_formats.py).
# mediapipe needs absl-py 2.x, tensorflow-model-optimization 1.x: its own venv, with absl-py 2
# and mediapipe ahead of the main .venv's packages. Not part of `make test` (a download).
MEDIAPIPE_VENV := .mediapipe-venv
MEDIAPIPE_STAMP := $(MEDIAPIPE_VENV)/.installed-stamp

.PHONY: mediapipe

$(MEDIAPIPE_STAMP): $(STAMP)
	$(PYTHON) -m venv $(MEDIAPIPE_VENV)
	$(MEDIAPIPE_VENV)/bin/pip install --quiet mediapipe==1.2.2 absl-py==2.5.1
	$(BIN)/python -c "import site; print(site.getsitepackages()[0])" > \
	  $$($(MEDIAPIPE_VENV)/bin/python -c "import site; print(site.getsitepackages()[0])")/main_venv.pth
	touch $@

mediapipe: $(MEDIAPIPE_STAMP)
	PYTHONPATH=$(CURDIR) $(MEDIAPIPE_VENV)/bin/python -m pytest -q -p no:cacheprovider \
	  -k mediapipe tests/test_export_formats.py
