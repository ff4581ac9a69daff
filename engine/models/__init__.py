"""Image-editing flow models behind one contract (:mod:`engine.models.backbones`), the sampler
that drives them (:mod:`engine.models.sampling`) and single edits and generations
(:mod:`engine.models.editing`). Imports only :mod:`engine.core`."""
