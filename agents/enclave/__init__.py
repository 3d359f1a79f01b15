"""Enclave executor side: a software TPM 2.0 as the job's root of trust.

- :mod:`agents.enclave.swtpm` provisions and runs swtpm (EK certificates from a local platform CA);
- :mod:`agents.enclave.tpm` performs TPM operations (PCRs, attestation keys, quotes, sealing) and
  produces evidence for the ``tpm`` verifier (:func:`agents.enclave.tpm.attest`);
- :mod:`agents.enclave.measured_launch` keeps the event log of what a job's PCRs measured.

The other modules of this package are the job's side of binding, keys, EAR checks and signing.

Nothing is imported here, so importing one module does not start the others' dependencies.
"""
