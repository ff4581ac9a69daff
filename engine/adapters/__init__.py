"""Low-rank adapters on a backbone: plain LoRA files, folding and module surgery
(:mod:`engine.adapters.lora`) and the multi-style mixture-of-experts LoRA (:mod:`engine.adapters.moe`).
Imports only :mod:`engine.models` and :mod:`engine.core`."""
