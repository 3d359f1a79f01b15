"""Generate the Python stubs of Council's ``.proto`` contracts (``proto/council/v1``).

Stubs are generated next to their ``.proto`` files and committed; ``council proto gen``
regenerates them and a test fails when they are stale.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from council.opa_tool import PROJECT_ROOT

PROTO_DIR = PROJECT_ROOT / "proto" / "council"


def _include_dirs() -> list[str]:
    import grpc_tools
    from google.rpc import status_pb2

    googleapis = Path(status_pb2.__file__).resolve().parents[2]
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    return [str(PROJECT_ROOT), str(googleapis), str(well_known)]


def proto_files() -> list[Path]:
    """Every contract, relative to the project root."""
    return sorted(p.relative_to(PROJECT_ROOT) for p in PROTO_DIR.rglob("*.proto"))


def generate(out_dir: Path = PROJECT_ROOT) -> list[Path]:
    """Run protoc (from grpcio-tools) over every contract; return the files written."""
    from grpc_tools import protoc

    files = [str(p) for p in proto_files()]
    args = ["protoc", *(f"-I{d}" for d in _include_dirs())]
    args += [f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", f"--pyi_out={out_dir}"]
    code = protoc.main([*args, *files])
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    written = []
    for proto in proto_files():
        stem = out_dir / proto.with_suffix("")
        for suffix in ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi"):
            path = stem.with_name(stem.name + suffix)
            if path.exists():
                written.append(path)
    return written


def stale_files() -> list[str]:
    """Generated stubs that differ from a fresh generation (empty when up to date)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = []
        for path in fresh:
            rel = path.relative_to(tmp)
            committed = PROJECT_ROOT / rel
            if not committed.exists() or committed.read_bytes() != path.read_bytes():
                stale.append(str(rel))
        shutil.rmtree(tmp, ignore_errors=True)
    return stale
