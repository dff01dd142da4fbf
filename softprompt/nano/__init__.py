"""t5-nano: a small T5 v1.1-style model pre-trained offline by softprompt's own scripts.

* ``corpus``: English prose from Debian documentation and dictionary packages, cleaned,
  deduplicated, split and tokenised with the vendored T5 vocabulary.
* ``pretrain``: span corruption then LM adaptation (prefix LM), resumable, on CPU or CUDA.
* ``gate``: the checks a checkpoint must pass before it may ship as the embedded default.
"""
