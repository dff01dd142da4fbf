"""``softprompt serve``: one frozen T5 answering many prompts and ensembles over HTTP.

Layers, bottom up: ``catalog`` (which prompts and tasks are loaded, inputs -> rows),
``worker`` (the batching worker that owns the model: rows of many requests, one pass),
``engine`` (requests -> rows -> answers with votes; the Python API), ``app`` (FastAPI),
``server`` (model loading and uvicorn). Nothing outside ``softprompt/cli/`` imports it.
"""
