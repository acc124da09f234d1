# The two commands: `make demo` and `make test`. Both create .venv when it is
# missing (requirements/install.sh, the pinned recipe) and reuse it after.
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.mmchh-install-stamp

.PHONY: env demo test clean-demo

env: $(STAMP)

$(STAMP): requirements/install.sh requirements/runtime.txt requirements/tests.txt setup.py
	bash requirements/install.sh $(VENV)

demo: $(STAMP)
	$(PYTHON) tools/demo.py --data-dir data --work-dir work_dirs/demo

test: $(STAMP)
	$(PYTHON) -m pytest -q tests

clean-demo:
	rm -rf work_dirs/demo data/synthetic_ceph data/synthetic_ceph_coco
