"""Prefect 3 flows: thin compositions of the tasks in ``tasks/``.

* ``protect-dataset`` (flows/protect.py): [align] -> validate input -> protect, sharded by
  person -> validate release -> [evaluate -> validate metrics] -> MLflow lineage -> [publish]
* ``evaluate-release`` (flows/evaluate.py): evaluate an existing release and record it.
* ``revoke-key`` (flows/revoke.py): revoke a key fingerprint and re-protect its releases.
* ``train-prior`` (flows/train.py): train the compact prior in resumable, retried chunks.
"""
