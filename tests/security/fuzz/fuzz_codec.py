"""atheris target: the frame codec never raises, whatever bytes arrive.

    .venv/bin/python tests/security/fuzz/fuzz_codec.py -max_total_time=300   # make fuzz
    .venv/bin/python tests/security/fuzz/fuzz_codec.py -runs=5000           # a smoke run

Any exception other than the codec's documented outcomes is a crash that libFuzzer reports
with the input that caused it (saved as ``crash-*`` in the working directory).
"""

from __future__ import annotations

import sys

import atheris
import jwt  # noqa: F401 - imported first, so only sealchat's own modules are instrumented
import pydantic  # noqa: F401

with atheris.instrument_imports():
    from backend.protocol.codec import BadFrame, UnknownFrame, decode_request, encode
    from backend.protocol.frames import Frame


def test_one_input(data: bytes) -> None:
    for candidate in (data, data.decode("utf-8", "surrogateescape")):
        out = decode_request(candidate)
        if isinstance(out, Frame):
            if decode_request(encode(out)) != out:
                raise AssertionError("a decoded frame does not survive re-encoding")
        elif not isinstance(out, BadFrame | UnknownFrame):
            raise AssertionError(f"unexpected decode result {type(out).__name__}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
