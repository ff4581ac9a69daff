"""Carrying the model's working-size result to the photo's own resolution: guided upsampling of
the edit's local colour change (:mod:`engine.rendering.guided_upsampling`) and the call every
face uses (:func:`engine.rendering.full_resolution.carry_to_full_resolution`)."""
