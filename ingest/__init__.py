"""zhengai.ingest — the ground floor: records on the wire, validation and aggregation.

Nothing here imports from rules/, connectors/, warnings/ or the composition root.
"""
