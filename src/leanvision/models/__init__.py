"""Models: the registry, backbones, necks, heads and task models, and per-part profiling (torch world)."""
