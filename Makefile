# The two commands: `make demo` and `make test`. Both create .venv when it is
# missing (requirements/install.sh, the pinned recipe) and reuse it after.
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.mmchh-install-stamp

.PHONY: env demo test clean-demo report-screenshot

env: $(STAMP)

$(STAMP): requirements/install.sh requirements/runtime.txt requirements/tests.txt setup.py
	bash requirements/install.sh $(VENV)

demo: $(STAMP)
	$(PYTHON) tools/demo.py --data-dir data --work-dir work_dirs/demo

# the review report's test opens it in Debian's chromium: installed here when missing (as root
# with apt-get); MMCHH_BROWSER_TESTS=skip skips that test instead (requirements/install.sh)
test: $(STAMP)
	bash requirements/install.sh --browser
	$(PYTHON) -m pytest -q tests

# docs/images/review_report.png: tools/infer.py --report with the `make demo` model on the
# synthetic Test1 X-rays (their spacing 0.6047 x 0.6 mm), opened in headless chromium
report-screenshot: $(STAMP)
	bash requirements/install.sh --browser
	$(PYTHON) tools/infer.py data/synthetic_ceph/RawImage/Test1Data \
	    --checkpoint work_dirs/demo/calibrated.pth --out-dir work_dirs/demo_report \
	    --spacing 0.6047 0.6 --report --overwrite --no-progress
	$(PYTHON) -m mmchh.visualization.review_report_browser \
	    work_dirs/demo_report/report.html docs/images/review_report.png

clean-demo:
	rm -rf work_dirs/demo data/synthetic_ceph data/synthetic_ceph_coco
