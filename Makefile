# Two commands do all the set-up (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# A CPU build of torch where there is no GPU.  On our machines `torch==2.13.0` resolves to the
# local CPU wheel; elsewhere add TORCH_INDEX=https://download.pytorch.org/whl/cpu.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed
DEMO_DATA ?= demo-data
DEMO_OUT ?= demo-output
DEMO_ARGS ?= --frames 4000 --size 128 --seed 0
# Debian packages napari needs to run headless under Xvfb (Qt's xcb platform plugin and OpenGL).
SYSDEPS := xvfb xauth libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
           libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 \
           libfontconfig1 libgl1 libegl1 libgl1-mesa-dri libglib2.0-0

.PHONY: demo test lint install sysdeps benchmarks reproduce clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	    echo "NVIDIA GPU found: installing a CUDA build of torch"; \
	    $(PIP) install --quiet "torch>=2.1"; \
	else \
	    echo "no GPU: installing the CPU build $(TORCH_SPEC)"; \
	    $(PIP) install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple); \
	fi
	$(PIP) install --quiet -e ".[testing]"
	touch $(STAMP)

sysdeps:
	@if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "no apt-get: install Xvfb and Qt's xcb libraries with your package manager"; \
	else \
	    missing=""; for p in $(SYSDEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	    if [ -n "$$missing" ]; then \
	        echo "installing system packages:$$missing"; \
	        if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	        $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	    fi; \
	fi

demo: $(STAMP)
	$(VENV)/bin/micromotion simulate $(DEMO_DATA) $(DEMO_ARGS) --overwrite
	$(VENV)/bin/micromotion analyze $(DEMO_DATA)/transmission.tif --fluorescence $(DEMO_DATA)/fluorescence.tif \
	    --rois $(DEMO_DATA)/rois.json --methods bandpass,matched,cnn1d,cnn3d,flow --out $(DEMO_OUT) --overwrite
	$(VENV)/bin/micromotion motion $(DEMO_DATA)/transmission.tif --rois $(DEMO_DATA)/rois.json \
	    --out $(DEMO_OUT)/motion --overwrite
	@echo "report: $(DEMO_OUT)/report.png; contraction: $(DEMO_OUT)/motion/report.png"
	@if [ -n "$$DISPLAY" ] && [ -z "$$CI" ]; then \
	    $(VENV)/bin/micromotion view $(DEMO_DATA)/transmission.tif --fluorescence $(DEMO_DATA)/fluorescence.tif \
	        --rois $(DEMO_DATA)/rois.json --results $(DEMO_OUT); \
	fi

test: sysdeps $(STAMP) lint
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks

benchmarks: $(STAMP)
	$(PY) benchmarks/run_all.py --quick

reproduce: $(STAMP)
	$(PY) benchmarks/reproduce_paper.py --out reproduce-output

clean:
	rm -rf $(DEMO_DATA) $(DEMO_OUT) reproduce-output benchmark-output
