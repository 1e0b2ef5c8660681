# The template's own proof machinery, included by the Makefile while template/ is here (it goes with
# the example: docs/your-own-pipeline.md, "Removing the example").

# Not part of `make test`, so the tree stays clean: it rewrites the PNGs in docs/img/.
.PHONY: screenshots
screenshots: install ## the README's pictures -> docs/img/ (a real run, in Chromium; about 3 min)
	$(BIN)/python -m template.screenshots

# Not part of `make test`: minutes long, and its numbers are for reading, not asserting.
.PHONY: bench
bench: install ## the pipeline vs naive baselines, dbt's modes vs one dbt build -> docs/benchmarks*.* (25-50 min)
	$(BIN)/python -m template.bench.run

# The unmodified docker-compose.yaml and Dockerfile on a real Docker engine (yours, or, as root on
# Debian/Ubuntu, a private dockerd it installs and starts), then `make image` run alone: template/tests/docker/.
# .ci/run runs it after make test.
.PHONY: test-docker
test-docker: install ## docker-compose.yaml and make image's image on a real Docker engine (about 15 min)
	$(BIN)/python -m pytest -m docker --durations=0 template/tests/docker
