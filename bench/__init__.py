"""Benchmarks: sealchat's chat path side by side with a bare aiohttp broadcast (the physical
limit) and python-socketio (the peer), interleaved in one run. See bench/README.md."""
