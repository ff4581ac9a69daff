"""Flow-matching samplers: every backbone is sampled through the same call."""
