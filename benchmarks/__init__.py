"""tcp_lab benchmarks: ``python -m benchmarks [--quick] [--only NAME ...]`` (``make bench``)."""
