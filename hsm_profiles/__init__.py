"""Token profiles shipped with niemphongd, one TOML file per token family (see daemon/hsm_profiles.py)."""
