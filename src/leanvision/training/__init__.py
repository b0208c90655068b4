"""Training: a small fit loop with hooks (checkpoint, EMA, AMP, LR schedule, logging) and losses (torch world)."""
