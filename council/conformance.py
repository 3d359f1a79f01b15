"""OPA's Rego conformance corpus, evaluated in Council's Wasm host.

Each case (a query over modules, data and input) becomes a Wasm module: the query is the
body of a rule that collects an object of its variables' bindings, so the module's one
entrypoint returns the query's result set. ``opa build -t wasm`` compiles it (cached by
content hash), Council's host evaluates it, and the outcome is judged twice:

* **Wasm-harness rules**, as OPA judges its own Wasm target: a strict-error case only has
  to come out undefined (Wasm has no strict mode); a non-strict error case only has to fail,
  with conflict errors recognised by their message; result sets are compared exactly.
* **Reference rules**, as OPA's Go evaluator is judged: strict cases run with strict builtin
  errors, and error codes and message texts must match.

The corpus is read in place (never copied into the project).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from council.opa_tool import OPA_VERSION, PROJECT_ROOT, find_opa
from pdp.builtins import BuiltinRegistry, BuiltinSpec, default_registry
from pdp.config import HostConfig
from pdp.engine import PolicyEngine
from pdp.errors import PDPError
from pdp.module import PolicyModule
from pdp.pool import InstancePool
from pdp.values import decode, encode, freeze, sort_key

__all__ = ["CaseResult", "ConformanceReport", "load_cases", "run_conformance"]

HARNESS_PACKAGE = "__council_conformance__"
HARNESS_RULE = "results"
DEFAULT_CACHE = PROJECT_ROOT / ".cache" / "conformance"
CONFLICT_MARKERS = ("var assignment conflict", "object insert conflict")


@dataclass(frozen=True)
class Case:
    """One conformance case: its file, position and OPA's fields."""

    file: str
    index: int
    folder: str
    spec: dict[str, Any]

    @property
    def note(self) -> str:
        """OPA's case name (not unique)."""
        return str(self.spec.get("note", ""))

    @property
    def case_id(self) -> str:
        """A unique id: file and position."""
        return f"{self.file}#{self.index}"


@dataclass
class CaseResult:
    """How one case fared under both rule sets."""

    case_id: str
    folder: str
    note: str
    wasm_pass: bool
    reference_pass: bool
    detail: str = ""


@dataclass
class ConformanceReport:
    """Totals, per-folder counts and per-case results."""

    results: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def wasm_passed(self) -> int:
        """Cases passing under OPA's Wasm-harness rules."""
        return sum(r.wasm_pass for r in self.results)

    @property
    def reference_passed(self) -> int:
        """Cases passing under the full reference rules."""
        return sum(r.reference_pass for r in self.results)

    def by_folder(self) -> dict[str, dict[str, int]]:
        """Per folder: total, Wasm-harness passes, reference passes."""
        folders: dict[str, dict[str, int]] = defaultdict(
            lambda: {"total": 0, "wasm": 0, "reference": 0}
        )
        for r in self.results:
            entry = folders[r.folder]
            entry["total"] += 1
            entry["wasm"] += r.wasm_pass
            entry["reference"] += r.reference_pass
        return dict(sorted(folders.items()))

    def to_json(self) -> dict[str, Any]:
        """The JSON report."""
        return {
            "opa_version": OPA_VERSION,
            "total": len(self.results),
            "wasm_harness": {
                "passed": self.wasm_passed,
                "failed": len(self.results) - self.wasm_passed,
            },
            "reference": {
                "passed": self.reference_passed,
                "failed": len(self.results) - self.reference_passed,
            },
            "seconds": round(self.seconds, 1),
            "folders": self.by_folder(),
            "cases": [asdict(r) for r in self.results],
        }


def _decimal_loader() -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    def construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        text = loader.construct_scalar(node)  # type: ignore[arg-type]
        return Decimal(str(text).replace("_", ""))

    Loader.add_constructor("tag:yaml.org,2002:float", construct_float)
    return Loader


def load_cases(root: Path, folders: Iterable[str] = (), match: str = "") -> list[Case]:
    """Read every case under ``root`` (``<folder>/*.yaml``), optionally filtered."""
    wanted = set(folders)
    loader = _decimal_loader()
    cases: list[Case] = []
    for path in sorted(root.glob("*/*.yaml")):
        folder = path.parent.name
        if wanted and folder not in wanted:
            continue
        with path.open() as fh:
            doc = yaml.load(fh, Loader=loader)
        rel = str(path.relative_to(root))
        for i, spec in enumerate(doc.get("cases", [])):
            case = Case(rel, i, folder, spec)
            if match and match not in case.note and match not in case.case_id:
                continue
            cases.append(case)
    return cases


# --- turning a case into a module -------------------------------------------------------


def _term_vars(term: Any, out: dict[str, None]) -> None:
    if not isinstance(term, dict):
        return
    kind, value = term.get("type"), term.get("value")
    if kind == "var":
        if not str(value).startswith("$"):
            out[value] = None
    elif kind == "ref":
        head = value[0]
        if head.get("type") == "var":
            if head["value"] not in ("data", "input"):
                _term_vars(head, out)
        else:
            _term_vars(head, out)
        for elem in value[1:]:
            _term_vars(elem, out)
    elif kind == "call":
        for arg in value[1:]:
            _term_vars(arg, out)
    elif kind in ("array", "set"):
        for elem in value:
            _term_vars(elem, out)
    elif kind == "object":
        for k, v in value:
            _term_vars(k, out)
            _term_vars(v, out)
    # Comprehension bodies are closed scopes: their variables are not query variables.


def query_variables(body: list[dict[str, Any]]) -> list[str]:
    """The variables a query binds, from the AST of its expressions (``opa parse``)."""
    found: dict[str, None] = {}
    for expr in body:
        terms = expr.get("terms")
        if isinstance(terms, list):
            for operand in terms[1:]:
                _term_vars(operand, found)
        elif isinstance(terms, dict) and "symbols" in terms:
            for symbol in terms["symbols"]:
                _term_vars(symbol, found)
        elif isinstance(terms, dict) and "domain" in terms:
            _term_vars(terms["domain"], found)
        else:
            _term_vars(terms, found)
        for modifier in expr.get("with", []) or []:
            _term_vars(modifier.get("value"), found)
    return list(found)


def harness_module(query: str, variables: list[str]) -> str:
    """A module whose rule ``results`` collects the bindings of ``query``'s variables."""
    bindings = ", ".join(f"{json.dumps(v)}: {v}" for v in variables)
    return (
        f"package {HARNESS_PACKAGE}\n\n{HARNESS_RULE} contains {{{bindings}}} if {{\n{query}\n}}\n"
    )


@dataclass(frozen=True)
class BuiltModule:
    """Outcome of compiling a case: the module or the compiler's error."""

    wasm: bytes | None
    error: str = ""


class CaseBuilder:
    """Compiles cases with the pinned ``opa``, caching by content hash.

    Thread-safe: each build works in its own temporary directory and cache files are
    written atomically.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.opa = find_opa()
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.capabilities = self._capabilities()

    def _capabilities(self) -> Path:
        """OPA's capabilities plus the test-only ``test.sleep``, which cases may call."""
        proc = subprocess.run(
            [str(self.opa), "capabilities", "--current"], capture_output=True, text=True, check=True
        )
        caps = json.loads(proc.stdout)
        caps["builtins"].append(
            {
                "name": "test.sleep",
                "decl": {
                    "type": "function",
                    "args": [{"type": "string"}],
                    "result": {"type": "null"},
                },
            }
        )
        text = json.dumps(caps, sort_keys=True)
        path = self._cached(hashlib.sha256(text.encode()).hexdigest()[:16], ".caps.json")
        if not path.exists():
            self._store(path, text.encode())
        return path

    def _cached(self, key: str, suffix: str) -> Path:
        return self.cache_dir / f"{key}{suffix}"

    def _store(self, path: Path, data: bytes) -> None:
        tmp = path.with_suffix(path.suffix + f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def variables(self, query: str) -> list[str]:
        """The query's variables, via ``opa parse`` (cached)."""
        key = hashlib.sha256(f"vars\0{OPA_VERSION}\0{query}".encode()).hexdigest()
        path = self._cached(key, ".vars.json")
        if path.exists():
            return json.loads(path.read_text())
        source = f"package __q\n\n__q if {{\n{query}\n}}\n"
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "q.rego"
            file.write_text(source)
            proc = subprocess.run(
                [str(self.opa), "parse", "--format", "json", str(file)],
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode != 0:
            raise ValueError(f"query does not parse: {proc.stderr.strip()}")
        ast = json.loads(proc.stdout)
        variables = query_variables(ast["rules"][0]["body"])
        self._store(path, json.dumps(variables).encode())
        return variables

    def build(self, case: Case) -> BuiltModule:
        """Compile the case's modules plus its harness into a Wasm module."""
        spec = case.spec
        try:
            variables = self.variables(spec["query"])
        except ValueError as exc:
            return BuiltModule(None, str(exc))
        modules = [str(m) for m in spec.get("modules", [])]
        harness = harness_module(spec["query"], variables)
        key = hashlib.sha256(
            json.dumps([OPA_VERSION, harness, modules, self.capabilities.name]).encode()
        ).hexdigest()
        wasm_path, err_path = self._cached(key, ".wasm"), self._cached(key, ".err")
        if wasm_path.exists():
            return BuiltModule(wasm_path.read_bytes())
        if err_path.exists():
            return BuiltModule(None, err_path.read_text())
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            names = []
            for i, source in enumerate(modules):
                name = f"test-{i}.rego"
                (work / name).write_text(source)
                names.append(name)
            (work / "harness.rego").write_text(harness)
            names.append("harness.rego")
            proc = subprocess.run(
                [
                    str(self.opa),
                    "build",
                    "-t",
                    "wasm",
                    "-e",
                    f"{HARNESS_PACKAGE}/{HARNESS_RULE}",
                    "--capabilities",
                    str(self.capabilities),
                    "-o",
                    "bundle.tar.gz",
                    *names,
                ],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                error = (proc.stderr or proc.stdout).strip()
                self._store(err_path, error.encode())
                return BuiltModule(None, error)
            from pdp.bundle import read_bundle

            wasm = read_bundle(work / "bundle.tar.gz").wasm
        self._store(wasm_path, wasm)
        return BuiltModule(wasm)


# --- judging ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Expected-side values: Decimals to numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _row_key(row: dict[str, Any], sort_bindings: bool) -> Any:
    normalised = {
        name: sorted(value, key=sort_key) if sort_bindings and isinstance(value, list) else value
        for name, value in row.items()
    }
    return freeze(normalised)


def _rows_equal(
    actual: list[dict[str, Any]], expected: list[dict[str, Any]], spec: dict[str, Any]
) -> bool:
    sort_bindings = bool(spec.get("sort_bindings"))
    if spec.get("ignore_generated_vars"):
        actual = [{k: v for k, v in r.items() if not k.startswith("__localq")} for r in actual]
    exp = {_row_key(_plain(r), sort_bindings) for r in expected}
    act = {_row_key(r, sort_bindings) for r in actual}
    if exp == act:
        return True
    if sort_bindings:
        return False
    # A set-valued binding comes back as an array in OPA's order; compare it unordered.
    exp_u = {_row_key(_plain(r), True) for r in expected}
    act_u = {_row_key(r, True) for r in actual}
    return exp_u == act_u


@dataclass
class _Outcome:
    rows: list[dict[str, Any]] | None = None
    error: PDPError | None = None


def _input_bytes(spec: dict[str, Any]) -> bytes | None:
    if "input_term" in spec:
        return encode(decode(str(spec["input_term"]), lenient=True)).encode()
    if "input" in spec:
        return encode(_plain(spec["input"])).encode()
    return None


def judge(spec: dict[str, Any], harness: _Outcome, strict: _Outcome) -> tuple[bool, bool, str]:
    """Return (Wasm-harness pass, reference pass, detail) for one case."""
    want_code = spec.get("want_error_code")
    want_text = spec.get("want_error")
    expects_error = bool(want_code or want_text)
    has_result = "want_result" in spec

    # Wasm-harness rules.
    if expects_error and spec.get("strict_error"):
        # No strict mode in Wasm: the failing builtin makes its expression undefined, so
        # the case comes out undefined, or with the rows OPA lists when it lists some.
        if has_result:
            wasm_ok = harness.rows is not None and _rows_equal(
                harness.rows, spec["want_result"], spec
            )
        else:
            wasm_ok = harness.error is not None or harness.rows == []
    elif expects_error:
        if harness.error is None:
            wasm_ok = False
        elif want_code == "eval_conflict_error":
            wasm_ok = any(m in harness.error.message for m in CONFLICT_MARKERS)
        else:
            wasm_ok = True
    else:
        wasm_ok = (
            harness.error is None
            and harness.rows is not None
            and _rows_equal(harness.rows, spec.get("want_result", []), spec)
        )

    # Reference rules: every present expectation, independently.
    ref = strict
    if expects_error:
        ref_ok = (
            ref.error is not None
            and (not want_code or ref.error.code == want_code)
            and (not want_text or want_text in ref.error.message)
        )
    else:
        ref_ok = (
            ref.error is None
            and ref.rows is not None
            and _rows_equal(ref.rows, spec.get("want_result", []), spec)
        )

    detail = ""
    if not (wasm_ok and ref_ok):
        got = (
            f"error {harness.error.code}: {harness.error.message}"
            if harness.error
            else f"rows {harness.rows}"
        )
        if ref is not harness and ref.error is not None:
            got += f" | strict error {ref.error.code}: {ref.error.message}"
        want = f"error {want_code or ''} {want_text or ''}".strip() if expects_error else ""
        if has_result:
            want += f" rows {_plain(spec['want_result'])}"
        detail = f"want {want.strip()}; got {got}"
    return wasm_ok, ref_ok, detail[:2000]


# --- running ----------------------------------------------------------------------------


def _sleep_builtin(ctx: Any, duration: Any) -> Any:
    """Test-only: sleep for a Go duration string and return null (conformance ``time``)."""
    from pdp.builtins.base import string_arg

    text = string_arg(duration, 1)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            time.sleep(float(text[: -len(suffix)]) * units[suffix])
            return None
    time.sleep(float(text))
    return None


def conformance_registry() -> BuiltinRegistry:
    """Every host builtin plus the test-only ``test.sleep`` OPA's runner registers."""
    registry = default_registry().copy()
    registry.register(BuiltinSpec("test.sleep", _sleep_builtin, deterministic=False))
    return registry


def _wasmtime_version() -> str:
    from importlib.metadata import version

    return version("wasmtime")


class _Evaluator:
    """Evaluates built cases in one shared engine."""

    def __init__(self, engine: PolicyEngine, registry: BuiltinRegistry, cache_dir: Path) -> None:
        self.engine = engine
        self.registry = registry
        self.cache_dir = cache_dir
        # Compiled code is only valid for the same wasmtime build and settings.
        self._engine_key = f"{_wasmtime_version()}-{engine.config.optimize}"

    def _module(self, wasm: bytes) -> PolicyModule:
        digest = hashlib.sha256(wasm + self._engine_key.encode()).hexdigest()
        path = self.cache_dir / f"{digest}.cwasm"
        if path.exists():
            try:
                return PolicyModule(
                    self.engine, wasm, registry=self.registry, precompiled=path.read_bytes()
                )
            except PDPError:
                path.unlink(missing_ok=True)
        module = PolicyModule(self.engine, wasm, registry=self.registry)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(module.serialize())
        tmp.replace(path)
        return module

    def run(self, case: Case, built: BuiltModule) -> CaseResult:
        spec = case.spec
        if built.wasm is None:
            return CaseResult(
                case.case_id,
                case.folder,
                case.note,
                False,
                False,
                f"build failed: {built.error[:1500]}",
            )
        try:
            module = self._module(built.wasm)
            input_json = _input_bytes(spec)
            data = _plain(spec.get("data", {}))
        except (PDPError, ValueError) as exc:
            return CaseResult(
                case.case_id, case.folder, case.note, False, False, f"load failed: {exc}"
            )
        pool = InstancePool(module, data, size=1)
        eid = module.entrypoint_id(f"{HARNESS_PACKAGE}/{HARNESS_RULE}")
        try:
            harness = self._eval(pool, eid, input_json, strict=False)
            strict = (
                self._eval(pool, eid, input_json, strict=True)
                if spec.get("strict_error")
                else harness
            )
        finally:
            pool.close()
        wasm_ok, ref_ok, detail = judge(spec, harness, strict)
        return CaseResult(case.case_id, case.folder, case.note, wasm_ok, ref_ok, detail)

    @staticmethod
    def _eval(pool: InstancePool, eid: int, input_json: bytes | None, strict: bool) -> _Outcome:
        try:
            with pool.instance() as inst:
                result = inst.evaluate(eid, input_json, strict)
        except PDPError as exc:
            return _Outcome(error=exc)
        rows = result[0]["result"] if result else []
        return _Outcome(rows=list(rows))


def run_conformance(
    root: Path,
    *,
    folders: Iterable[str] = (),
    match: str = "",
    cache_dir: Path = DEFAULT_CACHE,
    workers: int = 0,
    progress: Callable[[CaseResult], None] | None = None,
) -> ConformanceReport:
    """Build and evaluate every selected case; return the report."""
    started = time.monotonic()
    cases = load_cases(root, folders, match)
    builder = CaseBuilder(cache_dir)
    config = HostConfig(optimize=False, pool_size=1, eval_timeout=10.0)
    report = ConformanceReport()
    with PolicyEngine(config) as engine:
        evaluator = _Evaluator(engine, conformance_registry(), cache_dir)

        def one(case: Case) -> CaseResult:
            return evaluator.run(case, builder.build(case))

        # One more worker than CPUs: each case spends part of its time waiting on an opa
        # subprocess, which the extra worker fills with compilation.
        with ThreadPoolExecutor(max_workers=workers or (os.cpu_count() or 2) + 1) as pool:
            for result in pool.map(one, cases):
                report.results.append(result)
                if progress:
                    progress(result)
    report.seconds = time.monotonic() - started
    return report


def format_summary(report: ConformanceReport) -> Iterator[str]:
    """Human-readable lines: per folder, totals, and the final ``N passed, N failed``."""
    yield f"{'folder':40} {'cases':>6} {'wasm':>6} {'ref':>6}"
    for folder, counts in report.by_folder().items():
        mark = "" if counts["wasm"] == counts["total"] else "  *"
        yield f"{folder:40} {counts['total']:6} {counts['wasm']:6} {counts['reference']:6}{mark}"
    total = len(report.results)
    yield (
        f"reference rules: {report.reference_passed} passed, "
        f"{total - report.reference_passed} failed"
    )
    yield f"Wasm-harness rules ({report.seconds:.0f}s):"
    yield f"{report.wasm_passed} passed, {total - report.wasm_passed} failed"


def clear_cache(cache_dir: Path = DEFAULT_CACHE) -> None:
    """Remove the build cache."""
    shutil.rmtree(cache_dir, ignore_errors=True)
