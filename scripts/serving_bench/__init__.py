"""The parts of `make bench` (scripts/bench_serving.py): inputs, servers, load clients and the report."""
