"""The Helm chart (charts/modelroute), checked with a real helm binary (tests/tools.py)."""
