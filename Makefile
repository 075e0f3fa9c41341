# Two commands do all the set-up on a fresh machine: `make app` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
CORPUS ?= corpora/kestrel_labs
REQS   := requirements.txt requirements-dev.txt
STAMP  := $(VENV)/.installed-$(shell cat $(REQS) 2>/dev/null | sha256sum | cut -c1-12)

.PHONY: app test lint bench doctor install browser clean examples

install: $(STAMP)

$(PY):
	python3 -m venv $(VENV)

# Reinstalls only when the requirement files change.
$(STAMP): $(REQS) | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

# Debian's chromium for the real-browser test (no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils fonts-nanum >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install chromium poppler-utils fonts-nanum' (browser tests will be skipped)"; fi; }
	@fc-list 2>/dev/null | grep -qi nanum || { [ "$$(id -u)" != 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-nanum >/dev/null 2>&1 || echo "fonts-nanum not installed: Hangul shows as boxes in the headless browser"; }

app: $(STAMP)
	$(PY) -m workbench doctor --prepare
	WORKBENCH_DEFAULT_CORPUS=$(CORPUS) $(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true

test: $(STAMP) browser
	$(PY) -m workbench doctor --prepare
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .

doctor: $(STAMP)
	$(PY) -m workbench doctor

bench: $(STAMP)
	$(PY) -m workbench bench --out bench/results.json

# Example runs shipped with the project (examples/<corpus>/<run-id>/): the quick preset on every bundled corpus,
# run by the tool itself; only the result files are copied (no caches, logs or locks). Commit examples/ afterwards.
EXAMPLE_PRESET ?= quick
examples: $(STAMP)
	@set -e; tmp=$$(mktemp -d); for c in corpora/*/; do c=$${c%/}; [ -f $$c/questions.jsonl ] || continue; \
	  id=example-$$(basename $$c)-$$(date -u +%Y%m%d); \
	  $(PY) -m workbench run --corpus $$c --preset $(EXAMPLE_PRESET) --out $$tmp --run-id $$id; \
	  $(PY) -m workbench.pipeline.examples copy $$tmp/$$id; done; rm -rf $$tmp

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
