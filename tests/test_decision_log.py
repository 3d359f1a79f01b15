"""The decision log on real SQLite files: concurrency, durability, masking, tamper detection."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from council.decisions_cmd import add_decisions_parser
from pdp import decision_log as dl
from pdp.decision import Decision
from pdp.service import DecisionRequest

ENTRYPOINT = "council/authz/decision"
KEY = Ed25519PrivateKey.generate()


def make(i: int, input_doc: Any = None) -> tuple[Decision, DecisionRequest]:
    """Decision number ``i`` and its request; even ones allowed."""
    allow = i % 2 == 0
    reasons = () if allow else (f"denied {i}",)
    decision = Decision(
        allow=allow,
        reasons=reasons,
        obligations={"audit": i},
        decision_id=f"dec-{i:06d}",
        revision="rev-1",
        entrypoint=ENTRYPOINT,
        result={"allow": allow, "reasons": list(reasons), "obligations": {"audit": i}},
        duration_ns=1000 + i,
    )
    doc = {"user": f"u{i}", "n": i} if input_doc is None else input_doc
    return decision, DecisionRequest(ENTRYPOINT, json.dumps(doc).encode(), f"req-{i}")


def write_log(path: Path, n: int, threads: int = 1, **kwargs: Any) -> dl.DecisionLog:
    """Record ``n`` decisions from ``threads`` threads into a fresh log, close it, return it."""
    kwargs.setdefault("signing_key", KEY)
    kwargs.setdefault("flush_interval", 0.005)
    log = dl.DecisionLog(path, **kwargs)

    def worker(start: int) -> None:
        for i in range(start, n, threads):
            log.record(*make(i))

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    log.close()
    return log


def sql(path: Path, statement: str, *params: Any) -> list[tuple]:
    """Run one statement against the log directly, as a tamperer would."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def all_rows(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM decisions ORDER BY seq")]
    finally:
        conn.close()


# --- writing ------------------------------------------------------------------------------


def test_concurrent_writers_produce_a_verified_chain(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    write_log(path, 2000, threads=8, batch_max=64, checkpoint_every=100)
    rows = all_rows(path)
    assert [r["seq"] for r in rows] == list(range(1, 2001))
    assert {r["decision_id"] for r in rows} == {f"dec-{i:06d}" for i in range(2000)}
    report = dl.verify(path, KEY.public_key())
    assert report.ok, report
    assert (report.rows, report.checkpoints, report.last_seq) == (2000, 20, 2000)
    assert report.key_id == dl.key_id(KEY.public_key())
    assert sql(path, "PRAGMA journal_mode")[0][0] == "wal"


def test_row_contents(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    write_log(path, 2)
    row = dl.show(path, "dec-000001")
    assert row is not None
    assert row["input"] == {"user": "u1", "n": 1}
    assert row["result"] == {
        "allow": False,
        "reasons": ["denied 1"],
        "obligations": {"audit": 1},
        "defined": True,
        "result": {"allow": False, "reasons": ["denied 1"], "obligations": {"audit": 1}},
    }
    assert (row["seq"], row["request_id"], row["revision"], row["duration_ns"]) == (
        2,
        "req-1",
        "rev-1",
        1001,
    )
    assert row["prev_hash"] == dl.show(path, "dec-000000")["hash"]  # type: ignore[index]
    assert dl.show(path, "nope") is None
    assert [r["decision_id"] for r in dl.tail(path, 5)] == ["dec-000000", "dec-000001"]
    assert [r["seq"] for r in dl.rows_after(path, 1)] == [2]


def test_close_writes_everything_queued(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    # A gather interval far longer than the test: close() must cut it short, not wait it out.
    log = dl.DecisionLog(path, signing_key=KEY, batch_max=100_000, flush_interval=60)
    start = time.monotonic()
    for i in range(500):
        log.record(*make(i))
    log.close()
    assert time.monotonic() - start < 10
    assert len(all_rows(path)) == 500
    log.close()  # idempotent
    with pytest.raises(dl.DecisionLogError, match="closed"):
        log.record(*make(500))


def test_flush_makes_recorded_decisions_visible(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with dl.DecisionLog(path, signing_key=None, flush_interval=60) as log:
        for i in range(10):
            log.record(*make(i))
        log.flush()
        assert len(dl.tail(path, 100)) == 10


def test_backpressure_blocks_instead_of_dropping(tmp_path: Path) -> None:
    path = tmp_path / "log.db"

    def slow_mask(_request: DecisionRequest, _decision: Decision) -> list[str]:
        time.sleep(0.0005)
        return []

    write_log(path, 300, threads=4, batch_max=4, queue_max=8, mask=slow_mask)
    assert len(all_rows(path)) == 300
    assert dl.verify(path).ok


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    write_log(path, 10)
    log = dl.DecisionLog(path, signing_key=KEY)
    for i in range(10, 15):
        log.record(*make(i))
    log.flush()
    report = dl.verify(path, KEY.public_key())
    assert report.ok and (report.last_seq, report.checkpointed_seq) == (15, 10)
    assert "5 after the last checkpoint" in str(report)
    log.close()
    report = dl.verify(path, KEY.public_key())
    assert report.ok and report.rows == 15 and report.checkpoints == 2


def test_two_writers_on_one_file_share_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    logs = [dl.DecisionLog(path, signing_key=KEY, batch_max=8) for _ in range(2)]
    for i in range(200):
        logs[i % 2].record(*make(i))
    for log in logs:
        log.close()
    report = dl.verify(path, KEY.public_key())
    assert report.ok and report.rows == 200


def test_a_log_keeps_its_key(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    write_log(path, 1)
    with pytest.raises(dl.DecisionLogError, match="signed by key"):
        dl.DecisionLog(path, signing_key=Ed25519PrivateKey.generate())
    with pytest.raises(dl.DecisionLogError, match="no key"):
        dl.DecisionLog(path, signing_key=None)


def test_writer_failure_is_reported_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(dl.DecisionLog, "_commit", broken)
    log = dl.DecisionLog(tmp_path / "log.db", signing_key=None, flush_interval=0)
    log.record(*make(0))
    with pytest.raises(dl.DecisionLogError, match="writer failed"):
        log.flush()
    with pytest.raises(dl.DecisionLogError, match="writer failed"):
        log.record(*make(1))
    with pytest.raises(dl.DecisionLogError, match="1 decisions not written"):
        log.close()


# --- masking ------------------------------------------------------------------------------


def test_mask_erases_paths(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    doc = {
        "password": "hunter2",
        "user": {"name": "ann", "ssn": "078-05-1120"},
        "cards": ["4111", "5500", "keep"],
        "a/b": "slash",
    }
    seen: list[str] = []

    def mask(request: DecisionRequest, decision: Decision) -> list[str]:
        seen.append(threading.current_thread().name)
        return [
            "/input/password",
            "/input/user/ssn",
            "/input/cards/0",
            "/input/cards/1",
            "/input/a~1b",
            "/input/missing/path",
            "/result/obligations",
        ]

    decision, request = make(7, doc)
    with dl.DecisionLog(path, signing_key=KEY, mask=mask) as log:
        log.record(decision, request)
    row = dl.show(path, decision.decision_id)
    assert row is not None
    assert row["input"] == {"user": {"name": "ann"}, "cards": ["keep"]}
    assert row["erased"] == [
        "/input/password",
        "/input/user/ssn",
        "/input/cards/0",
        "/input/cards/1",
        "/input/a~1b",
        "/result/obligations",
    ]
    assert "obligations" not in row["result"]["result"]
    assert row["result"]["obligations"] == {"audit": 7}
    assert decision.result["obligations"] == {"audit": 7}  # the caller's copy is untouched
    assert row["error"] is None
    assert seen and all(name.startswith("decision-log") for name in seen)
    assert dl.verify(path, KEY.public_key()).ok


def test_mask_whole_input() -> None:
    assert dl.erase_paths({"a": 1}, {"b": 2}, ["/input"]) == (None, {"b": 2}, ["/input"])
    assert dl.erase_paths([1, 2, 3], None, ["/input/2", "/input/x", "/input/9"]) == (
        [1, 2],
        None,
        ["/input/2"],
    )


def raising_mask(_request: DecisionRequest, _decision: Decision) -> list[str]:
    raise RuntimeError("policy exploded")


@pytest.mark.parametrize(
    ("mask", "error"),
    [
        (raising_mask, "RuntimeError: policy exploded"),
        (lambda _r, _d: "/input/password", "not a list of paths"),
        (lambda _r, _d: None, "NoneType, not a list of paths"),
        (lambda _r, _d: ["/data/password"], "must start with /input or /result"),
        (lambda _r, _d: [7], "is not a JSON Pointer"),
    ],
)
def test_a_failing_mask_stores_nothing_unmasked(tmp_path: Path, mask: Any, error: str) -> None:
    path = tmp_path / "log.db"
    with dl.DecisionLog(path, signing_key=KEY, mask=mask) as log:
        log.record(*make(3, {"password": "hunter2-secret"}))
    row = dl.show(path, "dec-000003")
    assert row is not None
    assert row["input"] is None
    assert row["result"] == {
        "allow": False,
        "reasons": ["denied 3"],
        "obligations": None,
        "defined": True,
        "result": None,
    }
    assert error in row["error"]
    assert b"hunter2-secret" not in b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert dl.verify(path, KEY.public_key()).ok


# --- tamper detection ---------------------------------------------------------------------

N_ROWS, EVERY = 310, 50  # checkpoints at 50, 100, ..., 300 and the final one at 310


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pristine") / "log.db"
    write_log(path, N_ROWS, threads=3, batch_max=32, checkpoint_every=EVERY)
    return path


@pytest.fixture
def log_copy(pristine: Path, tmp_path: Path) -> Path:
    path = tmp_path / "log.db"
    shutil.copy(pristine, path)
    return path


def rehash_from(path: Path, seq: int) -> None:
    """Recompute the chain from ``seq`` on, as a tamperer without the signing key would."""
    rows = all_rows(path)
    prev = rows[seq - 2]["hash"] if seq > 1 else dl.GENESIS_HASH
    updates = []
    for row in rows[seq - 1 :]:
        row["prev_hash"] = prev
        prev = dl.row_hash(row)
        updates.append((row["prev_hash"], prev, row["seq"]))
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("UPDATE decisions SET prev_hash = ?, hash = ? WHERE seq = ?", updates)
    conn.close()


def test_pristine_log_verifies(pristine: Path) -> None:
    report = dl.verify(pristine, KEY.public_key())
    assert report.ok, report
    assert (report.rows, report.checkpoints) == (N_ROWS, N_ROWS // EVERY + 1)


def tamper_input(path: Path) -> None:
    sql(path, """UPDATE decisions SET input = '{"user":"mallory","n":99}' WHERE seq = 99""")


def tamper_result(path: Path) -> None:
    flip = "CASE WHEN json_extract(result, '$.allow') THEN json('false') ELSE json('true') END"
    sql(path, f"UPDATE decisions SET result = json_set(result, '$.allow', {flip}) WHERE seq = 99")


def tamper_delete(path: Path) -> None:
    sql(path, "DELETE FROM decisions WHERE seq = 99")


def tamper_swap(path: Path) -> None:
    sql(path, "UPDATE decisions SET seq = -1 WHERE seq = 99")
    sql(path, "UPDATE decisions SET seq = 99 WHERE seq = 100")
    sql(path, "UPDATE decisions SET seq = 100 WHERE seq = -1")


def tamper_edit_and_rehash_row(path: Path) -> None:
    tamper_input(path)
    row = all_rows(path)[98]
    sql(path, "UPDATE decisions SET hash = ? WHERE seq = 99", dl.row_hash(row))


def tamper_rewrite_chain(path: Path) -> None:
    tamper_input(path)
    rehash_from(path, 99)


def tamper_signature(path: Path) -> None:
    (sig,) = sql(path, "SELECT signature FROM checkpoints WHERE idx = 2")[0]
    raw = bytearray(base64.b64decode(sig))
    raw[0] ^= 1
    sql(path, "UPDATE checkpoints SET signature = ? WHERE idx = 2", base64.b64encode(raw).decode())


def tamper_checkpoint_hash(path: Path) -> None:
    # Make checkpoint #2 agree with a rewritten chain; the signature no longer does.
    tamper_rewrite_chain(path)
    (h,) = sql(path, "SELECT hash FROM decisions WHERE seq = 100")[0]
    sql(path, "UPDATE checkpoints SET hash = ? WHERE idx = 2", h)


def tamper_truncate(path: Path) -> None:
    sql(path, "DELETE FROM decisions WHERE seq > 260")


def tamper_drop_checkpoint(path: Path) -> None:
    sql(path, "DELETE FROM checkpoints WHERE idx = 3")


def tamper_strip_key(path: Path) -> None:
    sql(path, "DELETE FROM meta WHERE key IN ('public_key', 'key_id')")


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "problem"),
    [
        (tamper_input, 99, "row content does not match its hash"),
        (tamper_result, 99, "row content does not match its hash"),
        (tamper_delete, 99, "seq 99 missing"),
        (tamper_swap, 99, "rows reordered"),
        (tamper_edit_and_rehash_row, 100, "prev_hash does not match the hash of seq 99"),
        (tamper_rewrite_chain, 100, "checkpoint #2 hash differs from the chain"),
        (tamper_signature, 100, "checkpoint #2 has an invalid signature"),
        (tamper_checkpoint_hash, 100, "checkpoint #2 has an invalid signature"),
        (tamper_truncate, 300, "log truncated: checkpoint #6 covers seq 300"),
        (tamper_drop_checkpoint, 200, "checkpoint #3 is missing"),
        (tamper_strip_key, 50, "checkpoint #1 is signed, but the log names no public key"),
    ],
)
def test_tampering_is_detected(log_copy: Path, tamper: Any, bad_seq: int, problem: str) -> None:
    tamper(log_copy)
    report = dl.verify(log_copy)
    assert not report.ok
    assert report.first_bad_seq == bad_seq, report
    assert problem in (report.problem or ""), report


def test_rekeyed_log_fails_against_the_trusted_key(log_copy: Path) -> None:
    # A tamperer with write access rewrites a row, re-chains and re-signs with their own key:
    # internally consistent, so only the trusted public key exposes it.
    tamper_rewrite_chain(log_copy)
    forger = Ed25519PrivateKey.generate()
    pem = forger.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sql(log_copy, "UPDATE meta SET value = ? WHERE key = 'public_key'", pem.decode())
    sql(log_copy, "UPDATE meta SET value = ? WHERE key = 'key_id'", dl.key_id(forger.public_key()))
    (log_id,) = sql(log_copy, "SELECT value FROM meta WHERE key = 'log_id'")[0]
    conn = sqlite3.connect(log_copy)
    conn.row_factory = sqlite3.Row
    for cp in [dict(r) for r in conn.execute("SELECT * FROM checkpoints")]:
        (h,) = conn.execute("SELECT hash FROM decisions WHERE seq = ?", [cp["seq"]]).fetchone()
        cp.update(hash=h, key_id=dl.key_id(forger.public_key()))
        sig = base64.b64encode(forger.sign(dl._checkpoint_payload(log_id, cp))).decode()
        conn.execute(
            "UPDATE checkpoints SET hash = ?, key_id = ?, signature = ? WHERE idx = ?",
            [h, cp["key_id"], sig, cp["idx"]],
        )
    conn.commit()
    conn.close()
    assert dl.verify(log_copy).ok
    report = dl.verify(log_copy, KEY.public_key())
    assert not report.ok and "not the given" in (report.problem or "")


def test_damaged_structure_is_a_failed_report(log_copy: Path) -> None:
    sql(log_copy, "DROP TABLE checkpoints")
    report = dl.verify(log_copy)
    assert not report.ok and "damaged" in (report.problem or "")


# --- encoding and keys --------------------------------------------------------------------


def test_canonical_encoding() -> None:
    assert dl.canonical({"b": [1, 2.5, None], "a": "é😀\n"}) == (
        b'{"a":"\\u00e9\\ud83d\\ude00\\n","b":[1,2.5,null]}'
    )
    with pytest.raises(ValueError):
        dl.canonical(float("nan"))


def test_row_hash_is_sha256_of_canonical_row() -> None:
    row = {
        "seq": 1,
        "decision_id": "d",
        "timestamp_ns": 1_700_000_000_000_000_000,
        "entrypoint": "e/p",
        "revision": "r",
        "request_id": "",
        "input": '{"q":"\\"é"}',
        "result": "{}",
        "erased": "[]",
        "error": None,
        "duration_ns": 5,
        "prev_hash": dl.GENESIS_HASH,
        "hash": "ignored",
    }
    expected = {k: v for k, v in row.items() if k != "hash"}
    assert dl.row_hash(row) == hashlib.sha256(dl.canonical(expected)).hexdigest()


def test_signing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "log.pem"
    key = dl.load_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = dl.load_signing_key(path)
    assert dl.key_id(again.public_key()) == dl.key_id(key.public_key())
    assert dl.key_id(dl.load_public_key(path)) == dl.key_id(key.public_key())
    with pytest.raises(dl.DecisionLogError, match="no signing key"):
        dl.load_signing_key(tmp_path / "absent.pem", create=False)


# --- CLI ----------------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="council")
    add_decisions_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli(log_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pub = tmp_path / "pub.pem"
    pub.write_bytes(
        KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    db = str(log_copy)
    assert run_cli("decisions", "verify", "--db", db, "--public-key", str(pub)) == 0
    assert "ok: 310 decisions" in capsys.readouterr().out

    assert run_cli("decisions", "tail", "--db", db, "-n", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].split()[0] == "310"
    assert "deny" in lines[0] or "deny" in lines[1]

    assert run_cli("decisions", "show", "dec-000005", "--db", db) == 0
    assert json.loads(capsys.readouterr().out)["result"]["reasons"] == ["denied 5"]
    assert run_cli("decisions", "show", "nope", "--db", db) == 1

    tamper_delete(log_copy)
    assert run_cli("decisions", "verify", "--db", db) == 1
    assert "seq 99 missing" in capsys.readouterr().err
    assert run_cli("decisions", "verify", "--db", str(tmp_path / "absent.db")) == 1
    assert "no decision log" in capsys.readouterr().err
