"""zhengai.rules — the rulebook: typed model, loader/linter, override resolution, pure evaluator."""
