"""One module per benchmark, each defining ``BENCHMARK``; modules starting with "_" are shared helpers."""
