"""The committed gRPC stubs match their .proto contracts."""

from council.protogen import stale_files


def test_generated_stubs_are_current() -> None:
    assert stale_files() == [], "run `council proto gen` and commit the result"
