"""Task models: one family per task (detect, classify, count, segment)."""
