"""Classification policy: which documents are sealed, at which level, under which key policy, and why.

- ``periods``: protection periods counted as the Civil Code counts them.
- ``basis``: the classification basis (căn cứ) parsed from how agencies write it.
- ``catalog``: catalogs of state secrets and basis look-up.
- ``decision``: the rules that decide seal, not secret or refuse.
- ``explain``: the reason for a decision in Vietnamese and English.
- ``loader``: the policy file.
"""
