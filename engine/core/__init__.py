"""The lowest layer: errors, atomic file writes, typed configuration, image reading and writing,
and the shipped assets. It imports nothing else of the engine."""
