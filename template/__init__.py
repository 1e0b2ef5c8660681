"""The template's proof of itself, apart from your project: delete this folder when the project is yours.

- standin_user_api/: the stand-in for randomuser.me that the example DAG reads in make demo, make shell,
  make ui and the tests (no internet needed);
- tests/: the proofs of the template as shipped: the Docker stack on a real engine (docker/, run by
  make test-docker), the compose file against the official one (stack/), make bench at a small size
  (bench/), the stand-in API (standin_api/), the docs (repository/) and the page that turns the example
  into your own pipeline, followed on a copy (test_your_own_pipeline.py);
- bench/: `make bench`, the measured figures in docs/benchmarks*.md;
- screenshots.py and browser.py: `make screenshots`, the README's pictures.

docs/your-own-pipeline.md, "Removing the example", deletes it with the example.
"""
