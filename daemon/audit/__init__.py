"""The tamper-evident audit trail: one record per call, in a hash-chained log with token checkpoints.

``entries`` defines the file format, ``log`` appends to it durably,
``trail`` records every call, ``verify`` checks a whole log, ``reader``
reads records back, and ``token_key`` keeps the checkpoint key and anchors
in the token. See docs/audit.md.
"""
