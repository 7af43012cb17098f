"""zhengai.warnings — warning lifecycle, store, routing, notifications and reports."""
