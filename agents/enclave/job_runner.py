"""The process inside the sandbox: ``python -I -m agents.enclave.job_runner {enclave|plain}``.

It talks to the executor over stdin/stdout, one JSON object per line; everything a
transform prints goes to stderr so it cannot forge a protocol message.

``enclave`` mode:

1. generate the job's key pair (:class:`~agents.enclave.job_keys.JobKeys`) and send
   ``{"type": "hello", "job_public_key": {...}}``; the private halves never leave this process;
2. wait for ``{"type": "go", "ear", "jwks", "deliveries": {dataset id: delivery},
   "policy_hash"}`` (or ``{"type": "abort"}``); check that the EAR verifies with the
   verifier's keys, is affirming and names this job, this manifest and this key;
3. open each key delivery, decrypt each staged input (``/job/inputs/<id>.blob``), check it
   against the manifest's digest, and wipe the per-job keys;
4. run the transform into ``/job/out`` and sign the outputs (in-toto Statement in a DSSE
   envelope, :mod:`agents.enclave.signing`); send ``{"type": "done", ...}``.

``plain`` mode reads plaintext inputs (``/job/inputs/<id>``), runs the transform and sends
``done``: no keys, no attestation, no signature (for datasets labelled ``none``).

Any failure sends ``{"type": "error", "message"}`` and exits 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from agents.enclave import transforms
from agents.enclave.binding import canonical_json, sha256_digest
from agents.enclave.crypto import decrypt_blob, open_key_delivery, staged_aad, zeroize
from agents.enclave.ear import EARError, verify_ear
from agents.enclave.job_keys import JobKeys
from agents.enclave.signing import sign_output_dir

__all__ = ["main"]

INPUTS = Path("/job/inputs")
OUT = Path("/job/out")
MANIFEST = Path("/job/manifest.json")


class JobFailed(Exception):
    """The job cannot go on; the message goes to the executor."""


def _send(channel: IO[str], message: Mapping[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _receive(channel: IO[str]) -> dict[str, Any]:
    line = channel.readline()
    if not line:
        raise JobFailed("the executor closed the channel")
    message = json.loads(line)
    if not isinstance(message, dict):
        raise JobFailed("protocol message is not an object")
    return message


def _check_digest(dataset: Mapping[str, Any], plaintext: bytes) -> None:
    if "sha256:" + hashlib.sha256(plaintext).hexdigest() != dataset["digest"]:
        raise JobFailed(f"dataset {dataset['id']} is not the dataset the manifest names")


def _run_transform(manifest: Mapping[str, Any], inputs: Mapping[str, bytes]) -> None:
    spec = transforms.get(manifest["transform"]["name"])
    # A transform's prints must not reach the protocol channel.
    with contextlib.redirect_stdout(sys.stderr):
        spec.load().run(inputs, manifest.get("params", {}), OUT)


def _open_staged(
    dataset_id: str, deliveries: Mapping[str, Any], keys: JobKeys, job_id: str
) -> bytes:
    if dataset_id not in deliveries:
        raise JobFailed(f"no key was delivered for dataset {dataset_id}")
    key = open_key_delivery(deliveries[dataset_id], keys.agreement_key, job_id=job_id)
    try:
        blob = (INPUTS / f"{dataset_id}.blob").read_bytes()
        return decrypt_blob(key, blob, staged_aad(job_id, dataset_id))
    finally:
        zeroize(key)


def _enclave(manifest: Mapping[str, Any], channel_in: IO[str], channel_out: IO[str]) -> None:
    keys = JobKeys()
    _send(channel_out, {"type": "hello", "job_public_key": keys.public.to_doc()})
    go = _receive(channel_in)
    if go.get("type") != "go":
        raise JobFailed("the executor aborted the job")
    job_id = manifest["job_id"]
    manifest_digest = sha256_digest(canonical_json(manifest))
    try:
        ear = verify_ear(go["ear"], go["jwks"], now=time.time())
        ear.require_affirming()
    except EARError as exc:
        raise JobFailed(f"attestation result refused: {exc.message}") from exc
    if (ear.job_id, ear.manifest_digest, ear.job_public_key) != (
        job_id,
        manifest_digest,
        keys.public,
    ):
        raise JobFailed("the attestation result is for another job, manifest or key")
    inputs: dict[str, bytes] = {}
    for dataset in manifest["datasets"]:
        if dataset["encrypted"]:
            plaintext = _open_staged(dataset["id"], go["deliveries"], keys, job_id)
        else:
            # A dataset labelled secure-compute: none in a mixed job is staged in the clear.
            plaintext = (INPUTS / dataset["id"]).read_bytes()
        _check_digest(dataset, plaintext)
        inputs[dataset["id"]] = plaintext
    _run_transform(manifest, inputs)
    inputs.clear()
    envelope = sign_output_dir(
        OUT,
        signing_key=keys.signing_key,
        public=keys.public,
        manifest=manifest,
        ear=go["ear"],
        inputs=[{"dataset_id": d["id"], "digest": d["digest"]} for d in manifest["datasets"]],
        policy_hash=str(go["policy_hash"]),
    )
    _send(channel_out, {"type": "done", "envelope": str(envelope.relative_to(OUT))})


def _plain(manifest: Mapping[str, Any], channel_out: IO[str]) -> None:
    inputs = {}
    for dataset in manifest["datasets"]:
        plaintext = (INPUTS / dataset["id"]).read_bytes()
        _check_digest(dataset, plaintext)
        inputs[dataset["id"]] = plaintext
    _run_transform(manifest, inputs)
    _send(channel_out, {"type": "done", "envelope": None})


def main(argv: list[str]) -> int:
    """Run one job in ``argv[0]`` mode; see the module docstring."""
    channel_out = sys.stdout
    try:
        manifest = json.loads(MANIFEST.read_bytes())
        if argv == ["enclave"]:
            _enclave(manifest, sys.stdin, channel_out)
        elif argv == ["plain"]:
            _plain(manifest, channel_out)
        else:
            raise JobFailed(f"usage: job_runner enclave|plain (got {argv})")
    except Exception as exc:
        _send(channel_out, {"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
