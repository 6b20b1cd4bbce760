"""The developer commands behind `make` (plan, readme, mutants, caches, demo, benches), each run as
`python -m scripts.tools.<name>` from the repository root."""
